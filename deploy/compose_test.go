// Package deploy_test runs the office deployment of deploy/ for real: it
// builds the FROM scratch image with build.sh, makes certificates with
// init.sh, brings compose.yaml up under a project name of its own, writes
// through the three containers with an embedded client over TLS, kills
// the leader's container, cuts another leader off the network, upgrades
// the nodes one at a time to a rebuilt image, and checks that every
// acknowledged create is in the cluster with its value.
//
// It takes 3-5 minutes, so it runs only when asked for with -compose
// (.ci/run does: go test ./deploy -compose). It needs a Docker engine and
// docker compose (or docker-compose), and says so when they are missing.
// Nothing is pulled: the image is FROM scratch.
package deploy_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/client"
)

// Bounds of the test's waits and requests.
const (
	stepWait   = 2 * time.Minute  // a container healthy, the writer making progress
	cmdWait    = 3 * time.Minute  // one docker or build command
	opTimeout  = 15 * time.Second // one create
	writeEvery = 20 * time.Millisecond
	progress   = 40 // acknowledged creates between two steps
	tree       = "deploy"
)

var services = []string{"kv1", "kv2", "kv3"}

var composeFlag = flag.Bool("compose", false, "run the compose office cluster test (3-5 minutes; needs Docker)")

// env is a compose project of the test: its name, the compose command and
// the variables compose.yaml reads.
type env struct {
	t       *testing.T
	compose []string // "docker compose" or "docker-compose"
	project string
	vars    []string // KEY=VALUE for compose, build.sh and init.sh
	certs   string
	prefix  string         // subnet prefix: node i is prefix.(10+i)
	ports   map[string]int // published HTTP port on 127.0.0.1, by service
	network string
	hc      *http.Client
	ids     map[string]string // container id by service, until recreated
	token   string            // the admin token kv1 wrote (auth is on)
}

// run runs a command with the test's variables and returns its combined
// output; it fails the test on error unless allowFail.
func (e *env) run(allowFail bool, name string, args ...string) (string, error) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cmdWait)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), e.vars...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		err = fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
		if !allowFail {
			e.t.Fatal(err)
		}
	}
	return string(out), err
}

// set sets a variable for the commands the test runs.
func (e *env) set(k, v string) {
	e.vars = slices.DeleteFunc(e.vars, func(kv string) bool { return strings.HasPrefix(kv, k+"=") })
	e.vars = append(e.vars, k+"="+v)
}

// dc runs a compose command of the project.
func (e *env) dc(allowFail bool, args ...string) (string, error) {
	e.t.Helper()
	full := append(append(append([]string{}, e.compose[1:]...), "-p", e.project, "-f", "compose.yaml"), args...)
	return e.run(allowFail, e.compose[0], full...)
}

// container returns the container id of a service.
func (e *env) container(svc string) string {
	e.t.Helper()
	if id := e.ids[svc]; id != "" {
		return id
	}
	out, _ := e.dc(false, "ps", "-q", svc)
	id := strings.TrimSpace(out)
	if id == "" {
		e.t.Fatalf("service %s has no container", svc)
	}
	e.ids[svc] = id
	return id
}

// api returns an HTTP API client of a service through its published port.
func (e *env) api(svc string) *api.Client {
	return api.NewClient(fmt.Sprintf("https://127.0.0.1:%d", e.ports[svc]), e.hc).WithToken(e.token)
}

// adminToken copies the first admin token out of kv1's volume (compose
// turns auth on; kv1 writes it on its first start), as an operator would.
func (e *env) adminToken(dir string) string {
	e.t.Helper()
	e.run(false, "docker", "cp", e.container("kv1")+":/data/admin.token", filepath.Join(dir, "admin.token"))
	b, err := os.ReadFile(filepath.Join(dir, "admin.token"))
	if err != nil {
		e.t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// waitFor polls cond until it holds, failing the test after stepWait with
// the last reason cond gave.
func waitFor(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(stepWait)
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %v: %s", what, stepWait, why)
		}
		time.Sleep(250 * time.Millisecond) // poll interval, not synchronisation
	}
}

// waitHealthy waits until Docker reports the services' health checks
// (kvnode -healthcheck: /readyz) healthy.
func (e *env) waitHealthy(svcs ...string) {
	e.t.Helper()
	waitFor(e.t, fmt.Sprintf("%v healthy", svcs), func() (bool, string) {
		for _, s := range svcs {
			out, err := e.run(true, "docker", "inspect", "-f", "{{.State.Health.Status}}", e.container(s))
			if st := strings.TrimSpace(out); err != nil || st != "healthy" {
				return false, fmt.Sprintf("%s is %q", s, st)
			}
		}
		return true, ""
	})
}

// leader returns the service that leads, as the reachable nodes see it;
// the services in not are neither asked nor accepted as the leader.
func (e *env) leader(not ...string) string {
	e.t.Helper()
	var lead string
	waitFor(e.t, "a leader", func() (bool, string) {
		var why []string
		for _, s := range services {
			if slices.Contains(not, s) {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			st, err := e.api(s).Status(ctx)
			cancel()
			switch {
			case err != nil:
				why = append(why, fmt.Sprintf("%s: %v", s, err))
			case st.Leader == "" || st.NoLeader || slices.Contains(not, st.Leader):
				why = append(why, fmt.Sprintf("%s: leader %q", s, st.Leader))
			default:
				lead = st.Leader
				return true, ""
			}
		}
		return false, strings.Join(why, "; ")
	})
	return lead
}

// writer creates records through an embedded client until stopped and
// remembers what the client acknowledged.
type writer struct {
	db   *client.DB
	stop chan struct{}
	done chan struct{}

	mu      sync.Mutex
	acked   map[api.Key]int64 // acknowledged creates and their value
	pending int               // of which acknowledged while offline (in the outbox)
	failed  int               // creates that returned an error
	lastErr error
	tried   int64
}

func (w *writer) run() {
	defer close(w.done)
	tick := time.NewTicker(writeEvery)
	defer tick.Stop()
	for n := int64(1); ; n++ {
		select {
		case <-w.stop:
			return
		case <-tick.C:
		}
		data, err := api.EncodeValue(map[string]any{"n": n})
		if err != nil {
			panic(err) // a map of an int always encodes
		}
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		res, err := w.db.Tree(tree).Create(ctx, 0, data)
		cancel()
		w.mu.Lock()
		w.tried = n
		if err != nil {
			w.failed++
			w.lastErr = err
		} else {
			w.acked[res.Key] = n
			if res.Pending {
				w.pending++
			}
		}
		w.mu.Unlock()
	}
}

func (w *writer) count() (acked, pending, failed int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.acked), w.pending, w.failed
}

// progress waits until the writer has had progress more creates
// acknowledged by the cluster (not merely queued offline).
func (w *writer) progress(t *testing.T, what string) {
	t.Helper()
	a0, p0, _ := w.count()
	waitFor(t, what, func() (bool, string) {
		a, p, f := w.count()
		w.mu.Lock()
		last := w.lastErr
		w.mu.Unlock()
		return (a-p)-(a0-p0) >= progress, fmt.Sprintf("%d acknowledged by the cluster since, %d failed, last error %v", (a-p)-(a0-p0), f, last)
	})
}

// step is one line of the run's summary.
type step struct {
	what string
	took time.Duration
}

func TestComposeOfficeCluster(t *testing.T) {
	if !*composeFlag || testing.Short() {
		t.Skip("builds images and runs a compose cluster for 3-5 minutes: run with go test ./deploy -compose (.ci/run does)")
	}
	compose := composeCommand(t)
	start := time.Now()
	var steps []step
	mark := func(what string, since time.Time) {
		steps = append(steps, step{what, time.Since(since).Round(100 * time.Millisecond)})
		t.Logf("compose test: %s (%v)", what, time.Since(since).Round(100*time.Millisecond))
	}

	tmp := t.TempDir()
	suffix := randomHex(t, 4)
	e := &env{t: t, compose: compose, project: "shelftest" + suffix, certs: filepath.Join(tmp, "certs"), ports: map[string]int{}, ids: map[string]string{}}
	e.prefix = freeSubnet(t)
	e.network = e.project + "_shelf"
	img1 := "shelf-composetest:" + suffix + "-v1"
	img2 := "shelf-composetest:" + suffix + "-v2"
	ver1, ver2 := "composetest-"+suffix+"-v1", "composetest-"+suffix+"-v2"
	for _, s := range services {
		e.ports[s] = freePort(t)
		e.vars = append(e.vars, fmt.Sprintf("SHELF_%s_PORT=127.0.0.1:%d", strings.ToUpper(s), e.ports[s]))
	}
	e.vars = append(e.vars, "SHELF_CERTS="+e.certs, "SHELF_SUBNET_PREFIX="+e.prefix, "SHELF_IMAGE="+img1, "SHELF_LOG_LEVEL=info")
	if goroot := os.Getenv("GOROOT"); goroot != "" {
		e.vars = append(e.vars, "PATH="+filepath.Join(goroot, "bin")+string(os.PathListSeparator)+os.Getenv("PATH"))
	}

	// Teardown on every exit path: the logs when failing, the project
	// with its volumes and network, the images built.
	t.Cleanup(func() {
		if t.Failed() {
			if out, err := e.dc(true, "logs", "--no-color", "--tail", "80"); err == nil {
				t.Logf("compose logs:\n%s", out)
			}
		}
		if _, err := e.dc(true, "down", "-v", "--remove-orphans", "-t", "10"); err != nil {
			t.Errorf("teardown: %v", err)
		}
		_, _ = e.run(true, "docker", "rmi", "-f", img1, img2)
	})

	// Build the image twice (the second is the upgrade) and make the
	// certificates, with the scripts an operator uses.
	t0 := time.Now()
	e.set("IMAGE", img1)
	e.set("VERSION", ver1)
	e.run(false, "./build.sh")
	e.set("IMAGE", img2)
	e.set("VERSION", ver2)
	e.run(false, "./build.sh")
	e.run(false, "./init.sh")
	mark("built images "+img1+" and "+img2+" (deploy/build.sh), certificates (deploy/init.sh)", t0)
	tlsCfg, err := api.TLSFiles{CA: filepath.Join(e.certs, "ca.crt"), Cert: filepath.Join(e.certs, "ops.crt"), Key: filepath.Join(e.certs, "ops.key")}.Config()
	if err != nil {
		t.Fatal(err)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tlsCfg
	e.hc = &http.Client{Transport: tr}

	t0 = time.Now()
	e.dc(false, "up", "-d")
	e.waitHealthy(services...)
	mark("compose up: kv1, kv2, kv3 healthy", t0)
	e.token = e.adminToken(tmp)
	// Auth is on: without a token the API answers 401.
	{
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := api.NewClient(fmt.Sprintf("https://127.0.0.1:%d", e.ports["kv1"]), e.hc).Trees(ctx)
		cancel()
		if !errors.Is(err, api.ErrUnauthenticated) {
			t.Fatalf("a request without a token: %v, want %v", err, api.ErrUnauthenticated)
		}
	}
	// The writer's own token: a writer, bound to the client it registers.
	var writerToken string
	{
		ctx, cancel := context.WithTimeout(context.Background(), stepWait)
		tok, err := e.api("kv1").CreateToken(ctx, api.CreateTokenRequest{Name: "composetest", Role: api.RoleWriter})
		cancel()
		if err != nil {
			t.Fatalf("create the writer's token: %v", err)
		}
		writerToken = tok.Token
	}
	for _, s := range services {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		v, err := e.api(s).Version(ctx)
		cancel()
		if err != nil || v.Version != ver1 {
			t.Fatalf("%s version %q (%v), want %q", s, v.Version, err, ver1)
		}
	}
	// Plain HTTP to a published port is refused: TLS is wired.
	plain := &http.Client{Timeout: 10 * time.Second}
	if resp, err := plain.Get(fmt.Sprintf("http://127.0.0.1:%d/v1/status", e.ports["kv1"])); err != nil || resp.StatusCode != http.StatusBadRequest {
		t.Errorf("plain HTTP to kv1: %v %v, want 400", resp, err)
	} else {
		resp.Body.Close()
	}

	// The writer: an embedded client over TLS through the published ports.
	var servers []string
	for _, s := range services {
		servers = append(servers, fmt.Sprintf("127.0.0.1:%d", e.ports[s]))
	}
	ctx, cancel := context.WithTimeout(context.Background(), stepWait)
	db, err := client.Open(ctx, client.Config{Dir: filepath.Join(tmp, "client"), Servers: servers, Name: "composetest", TLS: tlsCfg, Token: writerToken,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err == nil {
		err = db.WaitSynced(ctx)
	}
	cancel()
	if err != nil {
		t.Fatalf("open client: %v", err)
	}
	defer db.Close()
	w := &writer{db: db, stop: make(chan struct{}), done: make(chan struct{}), acked: map[api.Key]int64{}}
	go w.run()
	stopWriter := sync.OnceFunc(func() { close(w.stop); <-w.done })
	defer stopWriter()
	w.progress(t, "writes before the faults")

	// Kill the leader's container (SIGKILL), write on, start it again.
	t0 = time.Now()
	victim := e.leader()
	e.run(false, "docker", "kill", e.container(victim))
	w.progress(t, "writes with "+victim+" killed")
	e.run(false, "docker", "start", e.container(victim))
	e.waitHealthy(services...)
	mark("killed the leader "+victim+", wrote on, restarted it, all healthy", t0)

	// Cut the leader off the network, write on, reconnect it on its
	// address.
	t0 = time.Now()
	cut := e.leader()
	id := e.container(cut)
	e.run(false, "docker", "network", "disconnect", e.network, id)
	e.leader(cut) // the others elect one of them
	w.progress(t, "writes with "+cut+" partitioned")
	e.run(false, "docker", "network", "connect", "--ip", nodeIP(e.prefix, cut), e.network, id)
	e.waitHealthy(services...)
	mark("partitioned the leader "+cut+" (docker network disconnect), wrote on, healed, all healthy", t0)

	// Rolling upgrade: one service at a time to the rebuilt image, each
	// healthy and on the new version before the next.
	for _, s := range services {
		t0 = time.Now()
		e.set("SHELF_IMAGE", img2)
		e.dc(false, "up", "-d", "--no-deps", s)
		delete(e.ids, s) // recreated
		e.waitHealthy(services...)
		waitFor(t, s+" on "+ver2, func() (bool, string) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			v, err := e.api(s).Version(ctx)
			return err == nil && v.Version == ver2, fmt.Sprintf("version %q, %v", v.Version, err)
		})
		w.progress(t, "writes after upgrading "+s)
		mark("upgraded "+s+" to "+img2+", healthy, writes go on", t0)
	}
	for _, s := range services {
		out, _ := e.run(false, "docker", "inspect", "-f", "{{.Config.Image}}", e.container(s))
		if got := strings.TrimSpace(out); got != img2 {
			t.Errorf("%s runs image %s after the upgrade, want %s", s, got, img2)
		}
	}

	// The check: the writer stops, its outbox drains, and every
	// acknowledged create is on every node with its value; the nodes end
	// with the same content.
	t0 = time.Now()
	stopWriter()
	waitFor(t, "the client's outbox drained", func() (bool, string) {
		return db.Pending() == 0, fmt.Sprintf("%d writes pending", db.Pending())
	})
	acked, pending, failed := w.count()
	for _, s := range services {
		missing, wrong := checkAcked(t, e.api(s).WithConsistency(api.Stale), w.acked, w.tried)
		if missing > 0 || wrong > 0 {
			// A follower may be a moment behind: wait for it, then judge.
			waitFor(t, s+" has every acknowledged create", func() (bool, string) {
				missing, wrong = checkAcked(t, e.api(s).WithConsistency(api.Stale), w.acked, w.tried)
				return missing == 0 && wrong == 0, fmt.Sprintf("%d missing, %d with another value", missing, wrong)
			})
		}
	}
	waitFor(t, "the same content on every node", func() (bool, string) {
		var hs []string
		for _, s := range services {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			h, err := e.api(s).ContentHash(ctx)
			cancel()
			if err != nil {
				return false, fmt.Sprintf("%s: %v", s, err)
			}
			hs = append(hs, fmt.Sprintf("%d/%s", h.Index, h.Hash))
		}
		return hs[0] == hs[1] && hs[1] == hs[2], strings.Join(hs, " ")
	})
	mark(fmt.Sprintf("checked: %d creates sent, %d acknowledged (%d of them while offline, from the outbox), %d failed; every acknowledged one on each of kv1-kv3 with its value, none twice, none unsent, same content hash",
		w.tried, acked, pending, failed), t0)
	t.Logf("compose test summary (%v in all):", time.Since(start).Round(time.Second))
	for _, s := range steps {
		t.Logf("  %-8v %s", s.took, s.what)
	}
}

// checkAcked lists the tree on one node and counts the acknowledged
// creates it lacks and those with another value. A record the writer
// never tried, or two records of one create, fail the test at once.
func checkAcked(t *testing.T, c *api.Client, acked map[api.Key]int64, tried int64) (missing, wrong int) {
	t.Helper()
	have := map[api.Key]int64{}
	byValue := map[int64]api.Key{}
	after := api.Key{}
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		page, err := c.List(ctx, tree, after, 1000)
		cancel()
		if err != nil {
			t.Fatalf("list %s on %s: %v", tree, c.BaseURL(), err)
		}
		for _, r := range page.Records {
			v, err := api.DecodeValue(r.Data)
			m, ok := v.(map[string]any)
			if err != nil || !ok {
				t.Fatalf("record %v on %s: value %v (%v)", r.Key, c.BaseURL(), v, err)
			}
			n, ok := toInt(m["n"])
			if !ok {
				t.Fatalf("record %v on %s: n is %T %v", r.Key, c.BaseURL(), m["n"], m["n"])
			}
			if n < 1 || n > tried {
				t.Fatalf("record %v on %s has n=%d, which the writer never sent (it sent 1..%d)", r.Key, c.BaseURL(), n, tried)
			}
			if k, dup := byValue[n]; dup {
				t.Fatalf("create n=%d is in the cluster twice on %s: %v and %v", n, c.BaseURL(), k, r.Key)
			}
			byValue[n] = r.Key
			have[r.Key] = n
		}
		if len(page.Records) == 0 || page.After == "" {
			break
		}
		after = page.Records[len(page.Records)-1].Key
	}
	for k, n := range acked {
		got, ok := have[k]
		switch {
		case !ok:
			missing++
		case got != n:
			wrong++
		}
	}
	return missing, wrong
}

func toInt(v any) (int64, bool) {
	switch n := v.(type) {
	case int64:
		return n, true
	case uint64:
		return int64(n), true
	case int:
		return int64(n), true
	case float64:
		return int64(n), float64(int64(n)) == n
	}
	return 0, false
}

// composeCommand finds docker compose or docker-compose and a running
// Docker engine. The test runs only when asked for (-compose), so a
// missing engine or compose tool fails it rather than skipping it.
func composeCommand(t *testing.T) []string {
	t.Helper()
	if err := exec.Command("docker", "info").Run(); err != nil {
		t.Fatalf("-compose needs a running Docker engine (docker info: %v)", err)
	}
	if exec.Command("docker", "compose", "version").Run() == nil {
		return []string{"docker", "compose"}
	}
	if exec.Command("docker-compose", "version").Run() == nil {
		return []string{"docker-compose"}
	}
	t.Fatal("-compose needs docker compose or docker-compose; neither is installed")
	return nil
}

// freeSubnet picks a /24 prefix in 172.29.100-249 that no Docker network
// uses.
func freeSubnet(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("sh", "-c", `docker network inspect $(docker network ls -q) -f '{{range .IPAM.Config}}{{.Subnet}} {{end}}'`).Output()
	if err != nil {
		t.Fatalf("docker network inspect: %v", err)
	}
	used := strings.Fields(string(out))
	for range 50 {
		b := make([]byte, 1)
		if _, err := rand.Read(b); err != nil {
			t.Fatal(err)
		}
		prefix := fmt.Sprintf("172.29.%d", 100+int(b[0])%150)
		_, mine, _ := net.ParseCIDR(prefix + ".0/24")
		if !slices.ContainsFunc(used, func(s string) bool {
			_, n, err := net.ParseCIDR(s)
			return err == nil && (n.Contains(mine.IP) || mine.Contains(n.IP))
		}) {
			return prefix
		}
	}
	t.Fatalf("no free subnet in 172.29.100-249.0/24 (used: %v)", used)
	return ""
}

// nodeIP is a service's fixed address on the cluster network.
func nodeIP(prefix, svc string) string {
	return fmt.Sprintf("%s.%d", prefix, 10+slices.Index(services, svc)+1)
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
