package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/internal/testserver"
)

// scriptedEditor is a $EDITOR for tests: call n copies the file it is
// given to seen<n>, replaces it with out<n> if the test wrote one (else
// saves it unchanged), and exits with exit<n> (default 0). With block<n>
// it writes started<n> and waits until it is killed; with interrupt<n> it
// sends SIGINT to its parent (kvctl, which runs it through sh -c exec),
// writes sent<n> and waits for go<n>; with wait<n> it writes started<n>
// and waits for go<n>.
type scriptedEditor struct {
	t   *testing.T
	dir string
}

func newScriptedEditor(t *testing.T) *scriptedEditor {
	t.Helper()
	dir := t.TempDir()
	script := fmt.Sprintf(`#!/bin/sh
d=%q
n=$(cat "$d/count" 2>/dev/null || echo 0); n=$((n+1)); echo $n > "$d/count"
cp "$1" "$d/seen$n"
if [ -f "$d/block$n" ]; then
	touch "$d/started$n"
	while :; do sleep 0.05; done
fi
if [ -f "$d/wait$n" ]; then
	touch "$d/started$n"
	while [ ! -f "$d/go$n" ]; do sleep 0.05; done
fi
if [ -f "$d/interrupt$n" ]; then
	kill -INT $PPID
	touch "$d/sent$n"
	while [ ! -f "$d/go$n" ]; do sleep 0.05; done
fi
if [ -f "$d/out$n" ]; then cp "$d/out$n" "$1"; fi
exit $(cat "$d/exit$n" 2>/dev/null || echo 0)
`, dir)
	if err := os.WriteFile(filepath.Join(dir, "editor"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return &scriptedEditor{t: t, dir: dir}
}

func (e *scriptedEditor) path() string { return filepath.Join(e.dir, "editor") }

// set writes the file name<n> (out, exit, block).
func (e *scriptedEditor) set(name string, n int, content string) {
	e.t.Helper()
	if err := os.WriteFile(filepath.Join(e.dir, name+strconv.Itoa(n)), []byte(content), 0o644); err != nil {
		e.t.Fatal(err)
	}
}

// calls is how often the editor ran.
func (e *scriptedEditor) calls() int {
	b, _ := os.ReadFile(filepath.Join(e.dir, "count"))
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return n
}

// seen is what call n was given.
func (e *scriptedEditor) seen(n int) string {
	e.t.Helper()
	b, err := os.ReadFile(filepath.Join(e.dir, "seen"+strconv.Itoa(n)))
	if err != nil {
		e.t.Fatal(err)
	}
	return string(b)
}

// reset forgets the calls so far.
func (e *scriptedEditor) reset() {
	e.t.Helper()
	entries, _ := os.ReadDir(e.dir)
	for _, en := range entries {
		if en.Name() != "editor" {
			os.Remove(filepath.Join(e.dir, en.Name()))
		}
	}
}

// editFixture is a node with a parts tree (schema Part) and one record.
type editFixture struct {
	s      *testserver.Server
	cl     *api.Client
	ed     *scriptedEditor
	config string // XDG_CONFIG_HOME
	key    api.Key
}

func newEditFixture(t *testing.T, ctx context.Context) *editFixture {
	t.Helper()
	s := testserver.Start(t)
	db := testserver.Open(t, t.TempDir(), s.Addr)
	parts := db.Tree("parts")
	v, err := parts.RegisterSchema(ctx, definition[Part](t))
	if err != nil {
		t.Fatal(err)
	}
	p := Part{Name: "R1", Dims: Dims{W: 1.5, H: 2}, Lots: []Lot{{Code: "L1", Qty: 5}},
		Stock: map[int]Bin{7: {Count: 3}}, Made: now}
	data, err := api.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	res, err := parts.Create(ctx, v, data)
	if err != nil {
		t.Fatal(err)
	}
	return &editFixture{s: s, cl: api.NewClient(s.Addr, nil), ed: newScriptedEditor(t), config: t.TempDir(), key: res.Key}
}

// kv runs kvctl against the node with the scripted editor and the
// fixture's config directory.
func (f *editFixture) kv(ctx context.Context, t *testing.T, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	env := map[string]string{"SHELF_HTTP": f.s.Addr, "EDITOR": f.ed.path(), "XDG_CONFIG_HOME": f.config}
	var out, errb bytes.Buffer
	c := &cli{stdin: strings.NewReader(stdin), stdout: &out, stderr: &errb,
		getenv: func(k string) string { return env[k] }, now: time.Now}
	code = c.main(ctx, args)
	return out.String(), errb.String(), code
}

// noBorrows checks that no record is borrowed (GET /v1/borrows).
func (f *editFixture) noBorrows(ctx context.Context, t *testing.T, after string) {
	t.Helper()
	bs, err := f.cl.Borrows(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(bs) != 0 {
		t.Fatalf("after %s: borrows left: %+v", after, bs)
	}
}

// part reads the record back as the typed API would.
func (f *editFixture) part(ctx context.Context, t *testing.T, key api.Key) (Part, api.Record) {
	t.Helper()
	r, err := f.cl.Get(ctx, "parts", key)
	if err != nil {
		t.Fatal(err)
	}
	var p Part
	if err := api.Unmarshal(r.Data, &p); err != nil {
		t.Fatalf("stored value does not decode as Part: %v", err)
	}
	return p, r
}

func TestEditOnServer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	f := newEditFixture(t, ctx)
	id := strconv.FormatUint(f.key.ID, 10)

	// A first invalid edit (a negative uint32, an unknown field, a bad
	// time), fixed on the second call.
	bad := `{"name": "R2", "dims": {"w": 1.5, "h": 2}, "lots": [{"code": "L1", "qty": -1}],
		"stock": {"7": {"count": 3}}, "colour": "red", "made": "yesterday"}`
	good := `{"name": "R2", "dims": {"w": 1.5, "h": 2}, "lots": [{"code": "L1", "qty": 6}],
		"stock": {"7": {"count": 3}, "-2": {"count": 1}}, "made": "2026-11-25T08:30:00Z"}`
	f.ed.set("out", 1, bad)
	f.ed.set("out", 2, good)
	out, errs, code := f.kv(ctx, t, "", "edit", "parts", id)
	if code != 0 {
		t.Fatalf("edit: code %d\nstdout %s\nstderr %s", code, out, errs)
	}
	if out != "updated parts "+f.key.String()+"\n" || f.ed.calls() != 2 {
		t.Fatalf("edit: %d editor calls, stdout %q", f.ed.calls(), out)
	}
	var first any
	if err := json.Unmarshal([]byte(f.ed.seen(1)), &first); err != nil || first.(map[string]any)["name"] != "R1" {
		t.Fatalf("the editor was given %q (%v)", f.ed.seen(1), err)
	}
	second := f.ed.seen(2)
	wantLines(t, second, "// kvctl: the value does not match schema version 1 of parts:",
		"// kvctl: colour: no such field in the schema", "// kvctl: lots[0].qty: -1 is negative, want a uint32",
		`// kvctl: made: "yesterday" is not an RFC 3339 time`, "// kvctl: fix the value below", `"colour": "red"`)
	if !strings.Contains(errs, "registered client kvctl@") {
		t.Errorf("stderr does not report the registration: %q", errs)
	}
	p, r := f.part(ctx, t, f.key)
	if p.Name != "R2" || p.Lots[0].Qty != 6 || !p.Made.Equal(time.Date(2026, 11, 25, 8, 30, 0, 0, time.UTC)) ||
		p.Stock[-2].Count != 1 || p.Stock[7].Count != 3 || r.Schema != 1 {
		t.Fatalf("after edit: %+v (schema %d)", p, r.Schema)
	}
	f.noBorrows(ctx, t, "edit")
	h, err := f.cl.History(ctx, "parts", f.key)
	if err != nil || len(h) != 2 || h[0].Action != api.AuditBorrowed || h[1].Action != api.AuditReturned {
		t.Fatalf("history: %+v %v", h, err)
	}
	me := h[0].Client

	// The operator client is remembered: no second registration.
	cls, err := f.cl.Clients(ctx)
	if err != nil {
		t.Fatal(err)
	}
	nclients := len(cls)

	// Abort with an empty file.
	f.ed.reset()
	f.ed.set("out", 1, "\n")
	if _, errs, code := f.kv(ctx, t, "", "edit", "parts", id); code != 0 || !strings.Contains(errs, "aborted (empty file)") {
		t.Fatalf("abort: code %d, stderr %q", code, errs)
	}
	f.noBorrows(ctx, t, "an aborted edit")
	if p2, _ := f.part(ctx, t, f.key); p2.Name != "R2" {
		t.Fatalf("abort changed the record: %+v", p2)
	}

	// No change.
	f.ed.reset()
	if out, errs, code := f.kv(ctx, t, "", "edit", "parts", id, "-o", "json"); code != 0 || !strings.Contains(errs, "no change") || !strings.Contains(out, `"changed": false`) {
		t.Fatalf("unchanged: code %d, stdout %q, stderr %q", code, out, errs)
	}
	f.noBorrows(ctx, t, "an unchanged edit")

	// An invalid edit, then the error file saved as it is: abort.
	f.ed.reset()
	f.ed.set("out", 1, `{"name": 5}`)
	if _, errs, code := f.kv(ctx, t, "", "edit", "parts", id); code != 0 || f.ed.calls() != 2 || !strings.Contains(errs, "aborted (saved unchanged after an error)") {
		t.Fatalf("abort after an error: code %d, %d calls, stderr %q", code, f.ed.calls(), errs)
	}
	f.noBorrows(ctx, t, "an edit aborted after an error")

	// Not JSON at all: reopened with the parse error.
	f.ed.reset()
	f.ed.set("out", 1, `{"name": "R3",`)
	f.ed.set("out", 2, "")
	if _, _, code := f.kv(ctx, t, "", "edit", "parts", id); code != 0 || !strings.Contains(f.ed.seen(2), "// kvctl: the value is not valid JSON") {
		t.Fatalf("bad JSON: code %d, second file %q", code, f.ed.seen(2))
	}
	f.noBorrows(ctx, t, "an edit with bad JSON")

	// The editor fails.
	f.ed.reset()
	f.ed.set("out", 1, good)
	f.ed.set("exit", 1, "3")
	if _, errs, code := f.kv(ctx, t, "", "edit", "parts", id); code != exitError || !strings.Contains(errs, "nothing changed: editor") {
		t.Fatalf("editor failure: code %d, stderr %q", code, errs)
	}
	f.noBorrows(ctx, t, "an editor failure")

	// Interrupted (SIGTERM, SIGHUP, or Ctrl-C outside the editor cancel the
	// command's context) while the editor runs: the editor is stopped and
	// the borrow returned.
	f.ed.reset()
	f.ed.set("block", 1, "")
	ictx, icancel := context.WithCancel(ctx)
	done := make(chan int, 1)
	lost := make(chan string, 1)
	go func() {
		_, _, code := f.kv(ictx, t, "", "edit", "parts", id)
		done <- code
	}()
	waitFile(t, filepath.Join(f.ed.dir, "started1"))
	bs, err := f.cl.Borrows(ctx, "parts")
	if err != nil || len(bs) != 1 || bs[0].Client != me {
		t.Fatalf("while editing: borrows %+v %v", bs, err)
	}
	icancel()
	select {
	case code := <-done:
		if code != exitError {
			t.Fatalf("interrupted edit: code %d", code)
		}
	case <-ctx.Done():
		t.Fatal("the interrupted edit did not end")
	}
	f.noBorrows(ctx, t, "an interrupted edit")

	// The borrow is taken over while editing: the update is refused, the
	// edited value kept in the file the error names.
	other, err := f.cl.RegisterClient(ctx, "ws-7")
	if err != nil {
		t.Fatal(err)
	}
	f.ed.reset()
	f.ed.set("wait", 1, "")
	f.ed.set("out", 1, `{"name": "lost"}`)
	go func() {
		_, errs, code := f.kv(ctx, t, "", "edit", "parts", id)
		lost <- errs
		done <- code
	}()
	waitFile(t, filepath.Join(f.ed.dir, "started1"))
	if _, err := f.cl.TakeOver(ctx, "parts", f.key, other.ID, "urgent", 0); err != nil {
		t.Fatal(err)
	}
	f.ed.set("go", 1, "")
	if code := <-done; code != exitConflict {
		t.Fatalf("edit whose borrow was taken: code %d", code)
	}
	errs = <-lost
	_, kept, ok := strings.Cut(errs, "the edited value is kept in ")
	if !ok || strings.Contains(errs, "could not be returned") {
		t.Fatalf("edit whose borrow was taken: stderr %q", errs)
	}
	keptFile := strings.TrimSuffix(strings.TrimSpace(kept), ")")
	t.Cleanup(func() { os.RemoveAll(filepath.Dir(keptFile)) })
	if b, err := os.ReadFile(keptFile); err != nil || !strings.Contains(string(b), `"lost"`) {
		t.Fatalf("kept file %s: %q %v", keptFile, b, err)
	}
	if _, err := f.cl.Return(ctx, "parts", f.key, other.ID); err != nil {
		t.Fatal(err)
	}

	// Held by another client: refused before the editor runs, naming it.
	if _, err := f.cl.Borrow(ctx, "parts", f.key, other.ID, 0); err != nil {
		t.Fatal(err)
	}
	f.ed.reset()
	if _, errs, code := f.kv(ctx, t, "", "edit", "parts", id); code != exitConflict || !strings.Contains(errs, "ws-7") || f.ed.calls() != 0 {
		t.Fatalf("borrowed by another: code %d, %d calls, stderr %q", code, f.ed.calls(), errs)
	}
	if _, err := f.cl.Return(ctx, "parts", f.key, other.ID); err != nil {
		t.Fatal(err)
	}
	if cls, err := f.cl.Clients(ctx); err != nil || len(cls) != nclients+1 {
		t.Fatalf("clients: %d (want %d: kvctl's and ws-7) %v", len(cls), nclients+1, err)
	}
}

func TestRecordWritesOnServer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	f := newEditFixture(t, ctx)
	id := strconv.FormatUint(f.key.ID, 10)
	run := func(want int, stdin string, args ...string) (string, string) {
		t.Helper()
		out, errs, code := f.kv(ctx, t, stdin, args...)
		if code != want {
			t.Fatalf("kvctl %q: code %d, want %d\nstdout %s\nstderr %s", args, code, want, out, errs)
		}
		return out, errs
	}

	// update from an argument and from stdin; an incompatible value.
	out, _ := run(0, "", "update", "parts", id, `{"name": "U1", "made": "2026-12-01T00:00:00Z", "stock": {"3": {"count": 9}}}`)
	if out != "updated parts "+f.key.String()+"\n" {
		t.Fatalf("update: %q", out)
	}
	if p, _ := f.part(ctx, t, f.key); p.Name != "U1" || p.Stock[3].Count != 9 || p.Made.Day() != 1 {
		t.Fatalf("after update: %+v", p)
	}
	run(0, `{"name": "U2", "lots": [{"code": "A", "qty": 1}]}`, "update", "parts", id, "-")
	if p, _ := f.part(ctx, t, f.key); p.Name != "U2" || len(p.Lots) != 1 {
		t.Fatalf("after update from stdin: %+v", p)
	}
	_, errs := run(exitConflict, "", "update", "parts", id, `{"name": "U3", "dims": {"w": "wide"}}`)
	wantLines(t, errs, "does not match schema version 1 of parts", "dims.w: a string, want a number")
	_, errs = run(exitError, "", "update", "parts", id, `[1, 2]`)
	wantLines(t, errs, "must be a JSON object")
	f.noBorrows(ctx, t, "update")

	// checkout, then update keeps the borrow; return ends it.
	out, _ = run(0, "", "checkout", "parts", id, "--ttl", "10m")
	wantLines(t, out, "checked out parts "+f.key.String(), "expires in 10m0s")
	run(0, "", "update", "parts", id, `{"name": "U4"}`)
	bs, err := f.cl.Borrows(ctx, "parts")
	if err != nil || len(bs) != 1 || bs[0].Expires.IsZero() {
		t.Fatalf("after checkout and update: %+v %v", bs, err)
	}
	run(0, "", "return", "parts", id)
	f.noBorrows(ctx, t, "return")
	_, errs = run(exitConflict, "", "return", "parts", id)
	wantLines(t, errs, "not borrowed")

	// Another client's borrow is named in the refusal of update and delete.
	other, err := f.cl.RegisterClient(ctx, "ws-7")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.cl.Borrow(ctx, "parts", f.key, other.ID, 0); err != nil {
		t.Fatal(err)
	}
	_, errs = run(exitConflict, "", "update", "parts", id, `{"name": "U5"}`)
	wantLines(t, errs, "ws-7")
	_, errs = run(exitConflict, "", "delete", "parts", id)
	wantLines(t, errs, "ws-7")
	// The state number may be set while another client holds it? No: refused.
	_, errs = run(exitConflict, "", "state", "parts", id, "2")
	wantLines(t, errs, "borrowed")
	if _, err := f.cl.Return(ctx, "parts", f.key, other.ID); err != nil {
		t.Fatal(err)
	}

	// release, then update and edit are refused; state works; revise
	// makes the next draft, unborrowed.
	out, _ = run(0, "", "release", "parts", id)
	wantLines(t, out, "released parts "+f.key.String())
	f.noBorrows(ctx, t, "release")
	_, errs = run(exitConflict, "", "update", "parts", id, `{"name": "U6"}`)
	wantLines(t, errs, "released")
	_, errs = run(exitConflict, "", "edit", "parts", id)
	wantLines(t, errs, "released")
	_, errs = run(exitConflict, "", "release", "parts", id)
	wantLines(t, errs, "released already")
	out, _ = run(0, "", "state", "parts", id, "3", "-o", "json")
	var st writeOutcome
	if json.Unmarshal([]byte(out), &st) != nil || st.State == nil || *st.State != 3 || !st.Changed {
		t.Fatalf("state json: %s", out)
	}
	if _, r := f.part(ctx, t, f.key); r.State != 3 || !r.Released {
		t.Fatalf("after state: %+v", r)
	}
	_, errs = run(exitUsage, "", "state", "parts", id, "three")
	wantLines(t, errs, `"three" is not an integer`)
	out, _ = run(0, "", "revise", "parts", id, "-o", "json")
	var rv writeOutcome
	if json.Unmarshal([]byte(out), &rv) != nil || rv.Key != (api.Key{ID: f.key.ID, Rev: f.key.Rev + 1}) {
		t.Fatalf("revise json: %s", out)
	}
	f.noBorrows(ctx, t, "revise")
	_, errs = run(exitConflict, "", "revise", "parts", f.key.String())
	wantLines(t, errs, "exists")

	// The new draft (the latest) is edited, then deleted.
	run(0, "", "update", "parts", id, `{"name": "V2"}`)
	if p, _ := f.part(ctx, t, rv.Key); p.Name != "V2" {
		t.Fatalf("draft after update: %+v", p)
	}
	out, _ = run(0, "", "delete", "parts", id)
	if out != "deleted parts "+rv.Key.String()+"\n" {
		t.Fatalf("delete: %q", out)
	}
	if _, err := f.cl.Get(ctx, "parts", rv.Key); api.CodeOf(err) != api.CodeNotFound {
		t.Fatalf("deleted draft: %v", err)
	}
	f.noBorrows(ctx, t, "delete")
	_, errs = run(exitNotFound, "", "delete", "parts", rv.Key.String())
	wantLines(t, errs, "does not exist")

	// --client names the client to act as; an unknown one is refused.
	out, _ = run(0, "", "put", "parts", `{"name": "N1"}`)
	id = strings.Split(strings.TrimSpace(out), "/")[0]
	run(0, "", "checkout", "parts", id, "--client", "ws-7")
	if bs, err := f.cl.Borrows(ctx, "parts"); err != nil || len(bs) != 1 || bs[0].Client != other.ID {
		t.Fatalf("checkout --client ws-7: %+v %v", bs, err)
	}
	run(0, "", "return", "parts", id, "--client", other.ID)
	_, errs = run(exitNotFound, "", "checkout", "parts", id, "--client", "nobody")
	wantLines(t, errs, "--client nobody: no such registered client")

	// Each write of update has its own key (K.borrow, K.update, K.return):
	// the same command again with the same key applies none of them twice.
	nk, err := api.ParseKey(id)
	if err != nil {
		t.Fatal(err)
	}
	run(0, "", "update", "parts", id, `{"name": "once"}`, "--idempotency-key", "upd-1")
	_, r1 := f.part(ctx, t, nk)
	run(0, "", "update", "parts", id, `{"name": "once"}`, "--idempotency-key", "upd-1")
	if _, r2 := f.part(ctx, t, nk); r2.Index != r1.Index || r1.Index == 0 {
		t.Fatalf("the repeated update was applied again: index %d, then %d", r1.Index, r2.Index)
	}
	f.noBorrows(ctx, t, "a repeated update")
}

// TestMain runs kvctl's main when the test binary is started as kvctl
// (KVCTL_TEST_MAIN=1), for the tests of signals.
func TestMain(m *testing.M) {
	if os.Getenv("KVCTL_TEST_MAIN") == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

// waitFile polls for a file the scripted editor writes.
func waitFile(t *testing.T, path string) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; {
		if _, err := os.Stat(path); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not appear", path)
		}
		time.Sleep(10 * time.Millisecond) // polling a file another process writes
	}
}

// TestEditSignals runs kvctl edit as a process: SIGTERM while the editor
// runs stops the editor and returns the borrow; SIGINT while the editor
// runs is the editor's, and the edit goes on.
func TestEditSignals(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	f := newEditFixture(t, ctx)
	id := strconv.FormatUint(f.key.ID, 10)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	start := func() (*exec.Cmd, *bytes.Buffer) {
		t.Helper()
		cmd := exec.CommandContext(ctx, self, "edit", "parts", id)
		cmd.Env = append(os.Environ(), "KVCTL_TEST_MAIN=1", "SHELF_HTTP="+f.s.Addr, "EDITOR="+f.ed.path(),
			"VISUAL=", "XDG_CONFIG_HOME="+f.config, "SHELF_CLIENT=")
		var errb bytes.Buffer
		cmd.Stderr = &errb
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd, &errb
	}

	// SIGTERM (or SIGHUP: the terminal went away) while editing.
	f.ed.set("block", 1, "")
	cmd, errb := start()
	waitFile(t, filepath.Join(f.ed.dir, "started1"))
	if bs, err := f.cl.Borrows(ctx, "parts"); err != nil || len(bs) != 1 {
		t.Fatalf("while editing: %+v %v", bs, err)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); cmd.ProcessState.ExitCode() != exitError {
		t.Fatalf("after SIGTERM: %v, stderr %s", err, errb)
	}
	f.noBorrows(ctx, t, "SIGTERM")

	// Ctrl-C in the editor: kvctl goes on, the edit is checked in.
	f.ed.reset()
	f.ed.set("interrupt", 1, "")
	f.ed.set("out", 1, `{"name": "after ctrl-c"}`)
	cmd, errb = start()
	waitFile(t, filepath.Join(f.ed.dir, "sent1"))
	f.ed.set("go", 1, "")
	if err := cmd.Wait(); err != nil {
		t.Fatalf("edit with Ctrl-C in the editor: %v, stderr %s", err, errb)
	}
	if p, _ := f.part(ctx, t, f.key); p.Name != "after ctrl-c" {
		t.Fatalf("after the edit: %+v", p)
	}
	f.noBorrows(ctx, t, "an edit with Ctrl-C in the editor")
}
