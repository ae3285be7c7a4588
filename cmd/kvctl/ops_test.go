package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shelfdb/shelf/api"
)

// kvEnv runs kvctl with the given environment.
func kvEnv(t *testing.T, env map[string]string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	c := &cli{stdin: strings.NewReader(""), stdout: &out, stderr: &errb,
		getenv: func(k string) string { return env[k] }, now: func() time.Time { return now }}
	code = c.main(context.Background(), args)
	return out.String(), errb.String(), code
}

func TestCommandHelp(t *testing.T) {
	// Three ways to ask, one answer; the command does not run (there is
	// no server).
	var first string
	for _, args := range [][]string{{"help", "put"}, {"put", "-h"}, {"put", "--help"}, {"put", "parts", "--help"}} {
		out, errs, code := kv(t, nil, "", args...)
		if code != 0 || errs != "" {
			t.Fatalf("kvctl %q: code %d, stderr %q", args, code, errs)
		}
		if first == "" {
			first = out
		} else if out != first {
			t.Fatalf("kvctl %q:\n%s\ndiffers from kvctl help put:\n%s", args, out, first)
		}
	}
	wantLines(t, first, "Usage:\n  kvctl put TREE JSON|-\n\nCreate a record from JSON", "\nExamples:\n  kvctl put parts '{\"name\": \"R1\", \"qty\": 10}'\n",
		"Global flags (-s, -o, --timeout")
	if strings.Contains(first, "\nFlags:") {
		t.Errorf("put has no flags of its own:\n%s", first)
	}

	// A command's own flags with their defaults; a subcommand's only.
	out, _, code := kv(t, nil, "", "help", "list")
	wantLines(t, out, "Flags:\n", "  --limit int ", "  --after string ", "  --all ")
	if code != 0 || strings.Contains(out, "--cacert string") {
		t.Fatalf("help list (global flags listed?): %d\n%s", code, out)
	}
	out, _, _ = kv(t, nil, "", "leases", "take", "-h")
	if out2, _, _ := kv(t, nil, "", "help", "leases", "take"); out2 != out {
		t.Fatalf("help leases take:\n%s\nleases take -h:\n%s", out2, out)
	}
	wantLines(t, out, "kvctl leases take TREE ID[/REV] --to CLIENT", "--to string", "--ttl duration")
	if strings.Contains(out, "--client") || strings.Contains(out, "--force") {
		t.Fatalf("leases take help lists return's flags:\n%s", out)
	}
	out, _, _ = kv(t, nil, "", "help", "certs", "issue")
	wantLines(t, out, "kvctl certs issue --ca DIR NAME", "--hosts string")
	out, _, code = kv(t, nil, "", "certs", "-h")
	wantLines(t, out, "kvctl certs init --dir DIR", "kvctl certs gossip-key")
	if code != 0 {
		t.Fatalf("certs -h: %d", code)
	}

	// Every command has help, and it prints (rather than runs).
	for name := range commands {
		if _, ok := commandHelp[name]; !ok {
			t.Errorf("command %q has no help entry", name)
			continue
		}
		out, errs, code := kv(t, nil, "", "help", name)
		if code != 0 || errs != "" || !strings.HasPrefix(out, "Usage:\n  kvctl "+name) || !strings.Contains(out, "Examples:") {
			t.Errorf("help %s: code %d, stderr %q:\n%s", name, code, errs, out)
		}
	}
}

// hangingServer accepts requests and answers none until the test ends.
func hangingServer(t *testing.T) string {
	done := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-done:
		}
	}))
	t.Cleanup(func() { close(done); srv.Close() })
	return strings.TrimPrefix(srv.URL, "http://")
}

func TestTimeout(t *testing.T) {
	addr := hangingServer(t)
	_, errs, code := kvEnv(t, map[string]string{"SHELF_HTTP": addr}, "status", "--timeout", "200ms")
	if code != exitUnreachable || errs != "kvctl: timed out after 200ms waiting for "+addr+" to answer GET /v1/status (--timeout)\n" {
		t.Fatalf("status --timeout 200ms on a hanging node: code %d, stderr %q", code, errs)
	}
	// From the environment, and before the command; as JSON.
	_, errs, code = kvEnv(t, map[string]string{"SHELF_HTTP": addr, "SHELF_TIMEOUT": "150ms"}, "-o", "json", "get", "parts", "1")
	var e struct{ Error jsonError }
	if code != exitUnreachable || json.Unmarshal([]byte(errs), &e) != nil || e.Error.Code != "timeout" ||
		e.Error.Message != "timed out after 150ms waiting for "+addr+" to answer GET /v1/trees/parts/records/1 (--timeout)" {
		t.Fatalf("SHELF_TIMEOUT=150ms get -o json: code %d, stderr %q", code, errs)
	}
	// A write's retries stop at the deadline too: the first node hangs,
	// so the failover never gets to send it elsewhere.
	f := newFake(t, 0)
	_, errs, code = kvEnv(t, map[string]string{"SHELF_HTTP": addr + "," + host(f)}, "--timeout", "300ms", "put", "parts", "{}")
	if code != exitUnreachable || !strings.HasPrefix(errs, "kvctl: timed out after 300ms waiting for "+addr+" to answer POST /v1/trees/parts/records (--timeout); "+
		"the write may have been applied: run kvctl again with --idempotency-key ") {
		t.Fatalf("put on a hanging node: code %d, stderr %q", code, errs)
	}
	if _, errs, code = kvEnv(t, map[string]string{"SHELF_TIMEOUT": "soon"}, "status"); code != exitUsage || !strings.HasPrefix(errs, `kvctl: SHELF_TIMEOUT "soon": want a duration`) {
		t.Fatalf("bad SHELF_TIMEOUT: %d %q", code, errs)
	}
	// 0: no bound (the answer comes).
	f = newFake(t, 0)
	if _, errs, code = kvEnv(t, map[string]string{"SHELF_HTTP": host(f), "SHELF_TIMEOUT": "0"}, "status"); code != 0 {
		t.Fatalf("SHELF_TIMEOUT=0 status: %d %q", code, errs)
	}
}

func TestJSONErrors(t *testing.T) {
	f := newFake(t, 3)
	for _, tc := range []struct {
		args []string
		code int
		want jsonError
	}{
		{[]string{"get", "parts", "9"}, exitNotFound, jsonError{Code: "not_found", Message: "parts 9 not found"}},
		{[]string{"get", "parts"}, exitUsage, jsonError{Code: "usage", Message: "get: missing arguments", Usage: "kvctl get TREE ID[/REV]"}},
		{[]string{"sttaus"}, exitUsage, jsonError{Code: "usage", Message: `unknown command "sttaus"; did you mean "status"?`}},
		{[]string{"leases", "return", "parts", "2/1", "--client", "c9"}, exitConflict, jsonError{Code: "not_borrowed", Message: "parts 2/1 is not borrowed by c9"}},
		{[]string{"-s", deadAddr(t), "status"}, exitUnreachable, jsonError{Code: "unreachable"}},
	} {
		out, errs, code := kv(t, f, "", append([]string{"-o", "json"}, tc.args...)...)
		var got struct {
			Error jsonError `json:"error"`
		}
		if err := json.Unmarshal([]byte(errs), &got); err != nil || code != tc.code || out != "" || strings.Count(errs, "\n") != 1 {
			t.Errorf("kvctl -o json %q: code %d, stdout %q, stderr %q (%v)", tc.args, code, out, errs, err)
			continue
		}
		if tc.want.Message == "" {
			got.Error.Message = ""
		}
		if got.Error != tc.want {
			t.Errorf("kvctl -o json %q: error %+v, want %+v", tc.args, got.Error, tc.want)
		}
	}
}

func TestWatchCompactedExits(t *testing.T) {
	f := newFake(t, 0)
	f.events = []eventStep{
		{page: api.EventPage{Next: 12, Events: []api.Event{{Index: 12, Type: api.EventCreated, Tree: "parts", Key: api.Key{ID: 1, Rev: 1}, Time: now}}}},
		{err: api.Errorf(api.CodeCompacted, "events after index 12 are no longer kept")},
	}
	out, errs, code := kv(t, f, "", "watch", "-from", "11", "-o", "json")
	if code != exitError || strings.Count(out, "\n") != 1 {
		t.Fatalf("watch over a compaction: code %d, stdout %q", code, out)
	}
	var e struct{ Error jsonError }
	if json.Unmarshal([]byte(errs), &e) != nil || e.Error.Code != "compacted" ||
		!strings.HasPrefix(e.Error.Message, "watch: events after index 12 are no longer kept by the cluster, so some would be missed; watch again with -from now") {
		t.Fatalf("watch over a compaction: stderr %q", errs)
	}
}

// When its node goes away, watch goes on at the next node of -s after the
// last event it printed, and prints no event twice.
func TestWatchMovesToAnotherNode(t *testing.T) {
	a, b := newFake(t, 0), newFake(t, 0)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ev := func(i uint64) api.Event {
		return api.Event{Index: i, Type: api.EventCreated, Tree: "parts", Key: api.Key{ID: i, Rev: 1}, Time: now}
	}
	a.events = []eventStep{
		{page: api.EventPage{Next: 58, Events: []api.Event{ev(57), ev(58)}}},
		{cut: true}, {cut: true}, {cut: true}, {cut: true}, // gone for good
	}
	b.events = []eventStep{
		// b's answer overlaps what a gave: 58 is not printed again.
		{page: api.EventPage{Next: 60, Events: []api.Event{ev(58), ev(59), ev(60)}}},
		{err: api.Errorf(api.CodeUnavailable, "shutting down")},
		{page: api.EventPage{Next: 61, Events: []api.Event{ev(61)}}},
		{cancel: cancel},
	}
	watchRetry.first = time.Millisecond
	t.Cleanup(func() { watchRetry.first = 100 * time.Millisecond })
	out, errs, code := kvCtx(ctx, t, nil, "", "-s", host(a)+","+host(b), "watch", "-o", "json")
	if code != 0 {
		t.Fatalf("watch: code %d, stderr %s", code, errs)
	}
	var idx []uint64
	for l := range strings.SplitSeq(strings.TrimSpace(out), "\n") {
		var e api.Event
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		idx = append(idx, e.Index)
	}
	if !slices.Equal(idx, []uint64{57, 58, 59, 60, 61}) {
		t.Fatalf("watched indexes %v, want 57..61 once each", idx)
	}
	if !strings.Contains(errs, "kvctl: watch: now watching "+b.srv.URL+" (was "+a.srv.URL+"), resuming after index 58\n") ||
		!strings.Contains(errs, "shutting down; trying the nodes again (resuming after index 60)\n") {
		t.Fatalf("watch stderr:\n%s", errs)
	}
	var bcalls []string
	for _, c := range b.calls {
		if strings.HasPrefix(c, "GET /v1/events") {
			bcalls = append(bcalls, c)
		}
	}
	if len(bcalls) < 3 || bcalls[0] != "GET /v1/events?from=58&wait=30s" || bcalls[2] != "GET /v1/events?from=60&wait=30s" {
		t.Fatalf("event requests to the second node: %q", bcalls)
	}
}

// A node that stops answering (a hung process, a partition) is left after
// the long poll plus --timeout, for the next node.
func TestWatchLeavesAHungNode(t *testing.T) {
	hung, live := hangingServer(t), newFake(t, 0)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	live.events = []eventStep{
		{page: api.EventPage{Next: 8, Events: []api.Event{{Index: 8, Type: api.EventCreated, Tree: "parts", Key: api.Key{ID: 8, Rev: 1}, Time: now}}}},
		{cancel: cancel},
	}
	watchWait = 50 * time.Millisecond
	t.Cleanup(func() { watchWait = 30 * time.Second })
	out, errs, code := kvCtx(ctx, t, nil, "", "-s", hung+","+host(live), "--timeout", "100ms", "watch", "-from", "7", "-o", "json")
	if code != 0 || !strings.HasPrefix(out, `{"index":8,`) {
		t.Fatalf("watch: code %d, stdout %q, stderr %q", code, out, errs)
	}
	if !strings.Contains(errs, "timed out after 150ms waiting for the next events from http://"+hung+" (--timeout); trying the nodes again (resuming after index 7)\n") ||
		!strings.Contains(errs, "now watching "+live.srv.URL+" (was http://"+hung+"), resuming after index 7\n") {
		t.Fatalf("watch stderr:\n%s", errs)
	}
	if live.calls[0] != "GET /v1/events?from=7&wait=50ms" {
		t.Fatalf("calls to the live node %q", live.calls)
	}
}

// With no node answering for --timeout, watch gives up (exit 5).
func TestWatchGivesUp(t *testing.T) {
	watchRetry.first = time.Millisecond
	t.Cleanup(func() { watchRetry.first = 100 * time.Millisecond })
	_, errs, code := kv(t, nil, "", "-s", deadAddr(t)+","+deadAddr(t), "--timeout", "200ms", "watch")
	if code != exitUnreachable || !strings.Contains(errs, "kvctl: watch: no node answered for 200ms (--timeout): cannot reach server") {
		t.Fatalf("watch with no node: code %d, stderr %q", code, errs)
	}
}

func TestCompleteTrees(t *testing.T) {
	f := newFake(t, 0)
	if out, errs, code := kv(t, f, "", "__complete", "trees"); code != 0 || out != "parts\n" {
		t.Fatalf("__complete trees: %d %q %q", code, out, errs)
	}
	// No node: no names, no error (the shell just offers nothing).
	if out, errs, code := kvAt(context.Background(), t, deadAddr(t), "", "__complete", "trees"); code != 0 || out != "" || errs != "" {
		t.Fatalf("__complete trees without a node: %d %q %q", code, out, errs)
	}
}

// completionCases are command lines (the last word being completed) and
// words the completion must offer; a leading "!" marks a word it must not.
var completionCases = []struct {
	line string
	want []string
}{
	{"kvctl ", []string{"status", "leases", "completion", "help", "!__complete"}},
	{"kvctl lea", []string{"leases", "!list"}},
	{"kvctl leases ", []string{"return", "take", "history", "parts", "tools"}},
	{"kvctl leases take --", []string{"--to", "--ttl", "--reason", "--timeout", "!--client"}},
	{"kvctl -s h:1 get ", []string{"parts", "tools"}},
	{"kvctl get p", []string{"parts", "!tools"}},
	{"kvctl get parts ", []string{"!parts"}},
	{"kvctl -o ", []string{"table", "json"}},
	{"kvctl members ", []string{"remove", "!parts"}},
	{"kvctl completion ", []string{"bash", "zsh"}},
	{"kvctl help ", []string{"put", "watch"}},
	{"kvctl list parts -", []string{"--limit", "--all", "-s", "--timeout", "!--s"}},
	{"kvctl leases history parts --", []string{"--timeout", "!--client", "!--to"}},
	{"kvctl version --client ", []string{"!parts"}},
	{"kvctl -s h:1 version --client get ", []string{"!parts"}},
	{"kvctl leases return --client ws-7 ", []string{"parts"}},
}

// checkCompletion runs the completion script in shell with the cases, kvctl
// being a shell function that logs its arguments and lists two trees.
func checkCompletion(t *testing.T, shell string, driver string) {
	script, errs, code := kv(t, nil, "", "completion", shell)
	if code != 0 {
		t.Fatalf("completion %s: %d %s", shell, code, errs)
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "kvctl."+shell)
	if err := os.WriteFile(file, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	bin, err := exec.LookPath(shell)
	if err != nil {
		t.Fatalf("the %s completion test needs %s: %v", shell, shell, err)
	}
	for _, tc := range completionCases {
		cmd := exec.Command(bin, "-c", driver, shell, file, tc.line)
		cmd.Env = append(os.Environ(), "KVCTL_LOG="+filepath.Join(dir, "log"))
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %q: %v\n%s", shell, tc.line, err, out)
		}
		got := strings.Fields(string(out))
		for _, w := range tc.want {
			if not, ok := strings.CutPrefix(w, "!"); ok {
				if slices.Contains(got, not) {
					t.Errorf("%s %q offers %q: %q", shell, tc.line, not, got)
				}
			} else if !slices.Contains(got, w) {
				t.Errorf("%s %q does not offer %q: %q", shell, tc.line, w, got)
			}
		}
	}
	// The tree names come from "kvctl [-s ADDR] __complete trees".
	log, _ := os.ReadFile(filepath.Join(dir, "log"))
	if !strings.Contains(string(log), "-s h:1 __complete trees\n") {
		t.Fatalf("kvctl calls of the %s completion:\n%s", shell, log)
	}
}

func TestCompletionBash(t *testing.T) {
	checkCompletion(t, "bash", `
source "$1"
kvctl() { echo "$*" >> "$KVCTL_LOG"; printf 'parts\ntools\n'; }
read -ra COMP_WORDS <<< "$2"
[[ $2 == *" " ]] && COMP_WORDS+=("")
COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
_kvctl
printf '%s\n' "${COMPREPLY[@]}"
`)
}

func TestCompletionZsh(t *testing.T) {
	checkCompletion(t, "zsh", `
compdef() { :; }
source "$1"
kvctl() { echo "$*" >> "$KVCTL_LOG"; printf 'parts\ntools\n'; }
compadd() { [[ $1 == -- ]] && shift; local w; for w in "$@"; do [[ $w == ${cur}* ]] && print -r -- $w; done; return 0; }
_files() { :; }
words=(${=2})
[[ $2 == *" " ]] && words+=("")
CURRENT=${#words}
_kvctl || true # 1: nothing to offer
`)
}
