package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/internal/schema"
	"github.com/shelfdb/shelf/typed"
)

// updateScreenshots makes TestViewerInBrowser write the screenshots of
// docs/viewer.md (docs/viewer/*.png).
var updateScreenshots = flag.Bool("update-screenshots", false, "TestViewerInBrowser: write the viewer's screenshots to docs/viewer/*.png")

// The record types of the viewer test: every kind of field the form
// edits (nested struct, slices, maps with string and integer keys, time,
// a key of another tree's records, a pointer).
type (
	Supplier struct {
		Name string `codec:"name"`
		City string `codec:"city"`
	}
	Dims struct {
		W float64 `codec:"w"`
		H float64 `codec:"h"`
	}
	Lot struct {
		Code string `codec:"code"`
		Qty  int32  `codec:"qty"`
	}
	Part struct {
		Name     string              `codec:"name"`
		Qty      int64               `codec:"qty"`
		Price    float64             `codec:"price"`
		Active   bool                `codec:"active"`
		Checked  time.Time           `codec:"checked"`
		Supplier typed.Key[Supplier] `codec:"supplier"`
		Tags     []string            `codec:"tags"`
		Dims     Dims                `codec:"dims"`
		Stock    map[string]int32    `codec:"stock"`
		Bins     map[int32]string    `codec:"bins"`
		Lots     []Lot               `codec:"lots"`
		Note     *string             `codec:"note"`
	}
)

// browserPath finds Debian's chromium (or Chrome) on PATH. Without one
// the test is skipped, unless SHELF_REQUIRE_BROWSER is set (CI sets it
// after installing chromium): then it fails.
func browserPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("SHELF_REQUIRE_BROWSER") != "" {
		t.Fatal("no chromium on PATH and SHELF_REQUIRE_BROWSER is set: install it (apt-get install chromium; .ci/run does)")
	}
	t.Skip("no chromium on PATH (apt-get install chromium); set SHELF_REQUIRE_BROWSER=1 to make this a failure")
	return ""
}

// registerSchema registers the schema of Go type T for tree as package
// typed does (its shape) and returns the version.
func registerSchema[T any](t *testing.T, c *api.Client, tree string) (uint32, schema.Definition) {
	t.Helper()
	def, err := schema.Extract(reflect.TypeFor[T]())
	if err != nil {
		t.Fatal(err)
	}
	enc, err := def.Shape().Encode()
	if err != nil {
		t.Fatal(err)
	}
	var res api.WriteResult
	write(t, context.Background(), "register the schema of "+tree, func(ctx context.Context) (err error) {
		res, err = c.RegisterSchema(ctx, tree, enc)
		return err
	})
	return res.Version, def.Shape()
}

// tab is one browser tab of the test, with the console messages of its
// page (logged when the test fails).
type tab struct {
	t   *testing.T
	ctx context.Context
	mu  sync.Mutex
	log []string
}

func newTab(t *testing.T, parent context.Context) *tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(parent)
	t.Cleanup(cancel)
	tb := &tab{t: t, ctx: ctx}
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 800)); err != nil {
		t.Fatalf("browser: %v", err)
	}
	go func() {
		for m, err := range chromedp.Console(ctx) {
			if err != nil {
				return
			}
			tb.mu.Lock()
			tb.log = append(tb.log, fmt.Sprintf("%s: %s", m.Type, m.Text))
			tb.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		if t.Failed() {
			tb.mu.Lock()
			defer tb.mu.Unlock()
			t.Logf("browser console:\n%s", strings.Join(tb.log, "\n"))
		}
	})
	return tb
}

// stepTimeout bounds each step of the browser test.
const stepTimeout = 20 * time.Second

// do runs one step in the tab within stepTimeout; on failure it logs the
// page's message area and fails the test.
func (tb *tab) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, stepTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		tb.t.Fatalf("%s: %v\npage: %s", what, err, tb.pageState())
	}
}

// pageState describes what the page shows, for failure messages.
func (tb *tab) pageState() string {
	ctx, cancel := context.WithTimeout(tb.ctx, 5*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.hash + " | " + [...document.querySelectorAll('.msg')].map(e => e.textContent).join(" | ") + " | " + document.querySelector('#main').innerText.slice(0, 600)`))
	if err != nil {
		return "(unreadable: " + err.Error() + ")"
	}
	return s
}

// waitJS polls a JavaScript predicate until it is true, within stepTimeout.
func (tb *tab) waitJS(what, expr string) {
	tb.t.Helper()
	tb.do(what, chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(stepTimeout)))
		return err
	}))
}

func (tb *tab) text(sel string) string {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, stepTimeout)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		tb.t.Fatalf("text of %s: %v\npage: %s", sel, err, tb.pageState())
	}
	return s
}

func (tb *tab) eval(expr string) bool {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, stepTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[bool](expr))
	if err != nil {
		tb.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// screenshot writes the viewport to docs/viewer/NAME.png with
// -update-screenshots.
func (tb *tab) screenshot(name string) {
	tb.t.Helper()
	if !*updateScreenshots {
		return
	}
	ctx, cancel := context.WithTimeout(tb.ctx, stepTimeout)
	defer cancel()
	// Let a row's flash fade and the focus ring go, so the picture shows
	// the page at rest.
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.activeElement && document.activeElement.blur(); window.scrollTo(0, 0); true`)); err != nil {
		tb.t.Fatal(err)
	}
	buf, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		tb.t.Fatalf("screenshot %s: %v", name, err)
	}
	dir := filepath.Join("..", "docs", "viewer")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), buf, 0o644); err != nil {
		tb.t.Fatal(err)
	}
	tb.t.Logf("wrote docs/viewer/%s.png (%d KB)", name, len(buf)/1024)
}

func testid(id string) chromedp.CSS { return chromedp.CSS(`[data-testid="` + id + `"]`) }

// write runs one write of the test's other clients, with an idempotency
// key, again with the same key while the cluster cannot take it (an
// election on a loaded machine): exactly once, whatever was lost.
func write(t *testing.T, ctx context.Context, what string, fn func(ctx context.Context) error) {
	t.Helper()
	ctx = api.WithIdempotencyKey(ctx, api.NewIdempotencyKey())
	var err error
	waitFor(t, electionTimeout, what, func() (bool, string) {
		err = fn(ctx)
		if err != nil && !retryable(err) {
			t.Fatalf("%s: %v", what, err)
		}
		return err == nil, fmt.Sprint(err)
	})
}

// TestViewerInBrowser drives the web viewer of a follower of a real
// three-node cluster (-auth) in headless Chromium: log in with a writer token, browse to a tree, open a
// record, check it out, edit fields of its typed form, save (check in)
// and find the change on the server, byte for byte what kvctl would
// write; watch another client's update appear in the table without a
// reload; see a record the other client holds marked as borrowed by it,
// and the check-out refused plainly. A reader token sees no edit
// controls. With -update-screenshots it writes docs/viewer/*.png.
func TestViewerInBrowser(t *testing.T) {
	skipShort(t)
	browser := browserPath(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	// Three nodes; the browser talks to a follower (its writes are
	// forwarded, its events are the follower's), the other client to
	// the leader.
	flags := []string{"-auth", "-cluster-token", "viewer-test-cluster"}
	nodes := []*Node{newNode(t, "n1"), newNode(t, "n2"), newNode(t, "n3")}
	nodes[0].Start(append(flags, "-bootstrap")...)
	tokenFile := filepath.Join(nodes[0].Dir, "admin.token")
	waitFor(t, readyTimeout, tokenFile, func() (bool, string) {
		b, err := os.ReadFile(tokenFile)
		return err == nil && strings.HasPrefix(string(b), api.TokenPrefix), fmt.Sprint(err)
	})
	b, _ := os.ReadFile(tokenFile)
	adminTok := strings.TrimSpace(string(b))
	for _, n := range nodes {
		n.Client = n.newClient().WithToken(adminTok)
	}
	nodes[0].WaitReady()
	for _, n := range nodes[1:] {
		n.Start(append(flags, "-join", nodes[0].Gossip)...)
	}
	for _, n := range nodes[1:] {
		n.WaitReady()
	}
	waitConverged(t, nodes)
	leader := waitLeader(t, nodes)
	n := nodes[0]
	for _, x := range nodes {
		if x != leader {
			n = x // the browser's node
			break
		}
	}
	admin := leader.Client

	// Tokens: the browser's writer (bound to the client the viewer
	// registers), a reader, and the other client's writer.
	tok := func(name string, role api.Role) string {
		var ct api.CreatedToken
		write(t, ctx, "create token "+name, func(ctx context.Context) (err error) {
			ct, err = admin.CreateToken(ctx, api.CreateTokenRequest{Name: name, Role: role})
			return err
		})
		return ct.Token
	}
	writerTok, readerTok := tok("browser-desk", api.RoleWriter), tok("dashboard", api.RoleReader)
	other := leader.newClient().WithToken(tok("workstation-7", api.RoleWriter))
	var otherClient api.ClientInfo
	write(t, ctx, "register workstation-7", func(ctx context.Context) (err error) {
		otherClient, err = other.RegisterClient(ctx, "workstation-7")
		return err
	})

	// The data: suppliers and parts with schemas, as typed would write them.
	sv, _ := registerSchema[Supplier](t, admin, "suppliers")
	pv, partDef := registerSchema[Part](t, admin, "parts")
	put := func(tree string, ver uint32, v any) api.Key {
		data, err := api.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		var res api.WriteResult
		write(t, ctx, "create in "+tree, func(ctx context.Context) (err error) {
			res, err = admin.Create(ctx, tree, api.WriteRequest{Schema: ver, Data: data})
			return err
		})
		return res.Key
	}
	acme := put("suppliers", sv, Supplier{Name: "Acme Components", City: "Lyon"})
	put("suppliers", sv, Supplier{Name: "Nordic Parts", City: "Oslo"})
	note := "reel of 5000"
	checked := time.Date(2026, 11, 24, 9, 30, 0, 0, time.UTC)
	var parts []api.Key
	for i, name := range []string{"R100 resistor 10k", "C220 capacitor 100n", "L330 inductor 4u7", "D440 diode 1N4148", "Q550 transistor BC547", "U660 regulator 3V3"} {
		p := Part{
			Name: name, Qty: int64(120 * (i + 1)), Price: 0.02 * float64(i+1), Active: i%3 != 2, Checked: checked.Add(time.Duration(i) * time.Hour),
			Supplier: typed.KeyOf[Supplier](acme), Tags: []string{"smd", fmt.Sprintf("06%02d", i+3)},
			Dims: Dims{W: 1.6, H: 0.8}, Stock: map[string]int32{"lyon": int32(40 * i), "oslo": int32(7 + i)},
			Bins: map[int32]string{int32(10 + i): "A-" + fmt.Sprint(i)}, Lots: []Lot{{Code: fmt.Sprintf("L-%d01", i), Qty: 500}},
		}
		if i == 0 {
			p.Note = &note
		}
		parts = append(parts, put("parts", pv, p))
	}
	edited, changed, held := parts[0], parts[1], parts[2]

	alloc, cancelAlloc := chromedp.NewExecAllocator(ctx, append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(browser), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.WindowSize(1280, 800),
		chromedp.UserDataDir(t.TempDir()))...)
	defer cancelAlloc()
	base := "http://" + n.HTTP + "/"
	start := time.Now()
	w := newTab(t, alloc)
	t.Logf("%v: browser started", time.Since(start).Round(time.Millisecond))

	// Log in: the page asks for a token.
	w.do("open the viewer", chromedp.Navigate(base), chromedp.WaitVisible(testid("login-form")))
	w.screenshot("login")
	w.do("log in with a writer token",
		chromedp.SendKeys(testid("login-token"), writerTok), chromedp.Click(testid("login-submit")),
		chromedp.WaitVisible(testid("tree-link-parts")))
	if got := w.text(`[data-testid="tree-count-parts"]`); got != "6" {
		t.Errorf("trees page: parts has %q records, want 6", got)
	}
	if got := w.text(`[data-testid="role"]`); got != "writer" {
		t.Errorf("header role %q, want writer", got)
	}

	checkPageCodec(t, w, partDef)

	// Browse the tree: columns from the schema, one row per record.
	row := func(k api.Key) string { return fmt.Sprintf("row-%d-%d", k.ID, k.Rev) }
	w.do("browse to the tree", chromedp.Click(testid("tree-link-parts")), chromedp.WaitVisible(testid(row(parts[5]))))
	for _, col := range []string{"name", "qty", "checked", "supplier", "dims", "stock", "lots"} {
		if !w.eval(`!!document.querySelector('[data-testid="col-` + col + `"]')`) {
			t.Errorf("records table: no column %s", col)
		}
	}
	if got := w.text(`[data-testid="` + row(edited) + `"] [data-col="name"]`); got != "R100 resistor 10k" {
		t.Errorf("row %s name %q", edited, got)
	}
	w.screenshot("tree")

	// Sort by qty, descending (a click on the header twice).
	w.do("sort by qty", chromedp.Click(testid("col-qty")), chromedp.WaitVisible(`[data-testid="col-qty"][aria-sort="ascending"]`))
	w.do("sort by qty descending", chromedp.Click(testid("col-qty")), chromedp.WaitVisible(`[data-testid="col-qty"][aria-sort="descending"]`))
	w.waitJS("rows sorted by qty descending", `(() => { const q = [...document.querySelectorAll('[data-testid="rows"] [data-col="qty"]')].map(e => +e.textContent); return q.length === 6 && q.every((x, i) => i === 0 || q[i-1] >= x); })()`)
	w.do("clear the sort", chromedp.Click(testid("search-clear")), chromedp.WaitNotPresent(testid("search-clear")))
	t.Logf("%v: tree browsed and sorted", time.Since(start).Round(time.Millisecond))

	// Search by a field's value (the node's search route).
	w.do("search name contains diode",
		chromedp.SetValue(testid("search-field"), "name"), chromedp.SetValue(testid("search-op"), "contains"),
		chromedp.SendKeys(testid("search-value"), "diode"), chromedp.Click(testid("search-go")),
		chromedp.WaitVisible(testid("search-clear")))
	w.waitJS("one match", `document.querySelectorAll('[data-testid="rows"] tr').length === 1 && !!document.querySelector('[data-testid="`+row(parts[3])+`"]')`)
	w.do("clear the search", chromedp.Click(testid("search-clear")), chromedp.WaitVisible(testid(row(parts[5]))))

	// Open a record, check it out, edit, save.
	w.do("open a record", chromedp.Click(testid("open-"+fmt.Sprintf("%d-%d", edited.ID, edited.Rev))), chromedp.WaitVisible(testid("record-form")))
	if !w.eval(`document.querySelector('[data-testid="field-qty"]').disabled`) {
		t.Error("the form is editable before check-out")
	}
	w.do("check out", chromedp.Click(testid("btn-checkout")), chromedp.WaitVisible(testid("btn-save")))
	w.do("edit fields",
		chromedp.Clear(testid("field-qty")), chromedp.SendKeys(testid("field-qty"), "4321"),
		chromedp.Clear(testid("field-dims.w")), chromedp.SendKeys(testid("field-dims.w"), "2.5"),
		chromedp.Clear(testid("field-stock{oslo}")), chromedp.SendKeys(testid("field-stock{oslo}"), "99"),
		chromedp.Clear(testid("field-lots[0].code")), chromedp.SendKeys(testid("field-lots[0].code"), "L-777"))
	w.screenshot("record-edit")
	w.do("save (check in)", chromedp.Click(testid("btn-save")))
	w.waitJS("the save to be reported", `(() => { const m = document.querySelector('[data-testid="record-message"]'); return !!m && m.dataset.kind === 'ok' && m.textContent.startsWith('Saved'); })()`)
	w.do("the form read-only again", chromedp.WaitVisible(testid("btn-checkout")))

	// On the server: the new values, the rest kept, no borrow, the
	// bytes kvctl would have written for the same JSON.
	rec, err := admin.Get(ctx, "parts", edited)
	if err != nil {
		t.Fatal(err)
	}
	var got Part
	if err := api.Unmarshal(rec.Data, &got); err != nil {
		t.Fatalf("the saved record does not decode as a Part: %v", err)
	}
	want := Part{
		Name: "R100 resistor 10k", Qty: 4321, Price: 0.02, Active: true, Checked: checked, Supplier: typed.KeyOf[Supplier](acme),
		Tags: []string{"smd", "0603"}, Dims: Dims{W: 2.5, H: 0.8}, Stock: map[string]int32{"lyon": 0, "oslo": 99},
		Bins: map[int32]string{10: "A-0"}, Lots: []Lot{{Code: "L-777", Qty: 500}}, Note: &note,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("saved record:\n got %+v\nwant %+v", got, want)
	}
	if rec.Borrow != nil {
		t.Errorf("still borrowed after save: %+v", rec.Borrow)
	}
	if rec.Schema != pv {
		t.Errorf("saved with schema %d, want %d", rec.Schema, pv)
	}
	if kv := kvctlBytes(t, leader.HTTP, adminTok, "parts", edited, partDef); !bytes.Equal(kv, rec.Data) {
		t.Errorf("the browser stored\n%x\nkvctl's encoding of the same value is\n%x", rec.Data, kv)
	}
	hist, err := admin.History(ctx, "parts", edited)
	if err != nil || len(hist) != 2 || hist[0].Action != api.AuditBorrowed || hist[1].Action != api.AuditReturned {
		t.Errorf("history after save: %+v %v, want borrowed then returned", hist, err)
	}

	// Another client changes a record: the row changes without a reload.
	w.do("back to the tree", chromedp.Click(testid("crumb-tree")), chromedp.WaitVisible(testid(row(changed))))
	w.eval(`window.__sameDocument = true; true`)
	write(t, ctx, "the other client's borrow", func(ctx context.Context) error {
		_, err := other.Borrow(ctx, "parts", changed, otherClient.ID, time.Minute)
		return err
	})
	var cv Part
	r2, err := admin.Get(ctx, "parts", changed)
	if err != nil {
		t.Fatal(err)
	}
	if err := api.Unmarshal(r2.Data, &cv); err != nil {
		t.Fatal(err)
	}
	cv.Name, cv.Qty = "C220 capacitor 100n X7R", 77
	data, _ := api.Marshal(cv)
	write(t, ctx, "the other client's update", func(ctx context.Context) error {
		_, err := other.Update(ctx, "parts", changed, api.WriteRequest{Client: otherClient.ID, Schema: pv, Data: data})
		return err
	})
	write(t, ctx, "the other client's return", func(ctx context.Context) error {
		_, err := other.Return(ctx, "parts", changed, otherClient.ID)
		return err
	})
	w.waitJS("the other client's change in the row", `(() => {
		const r = document.querySelector('[data-testid="`+row(changed)+`"]');
		return !!r && r.querySelector('[data-col="name"]').textContent === 'C220 capacitor 100n X7R' &&
			r.querySelector('[data-col="qty"]').textContent === '77' && !r.querySelector('.badge-borrowed');
	})()`)
	if !w.eval(`window.__sameDocument === true`) {
		t.Error("the page reloaded to show the change")
	}
	w.screenshot("live-change")
	t.Logf("%v: edited, saved and saw another client's change", time.Since(start).Round(time.Millisecond))

	// The other client holds a record: the row says so, by its name.
	write(t, ctx, "the other client's borrow", func(ctx context.Context) error {
		_, err := other.Borrow(ctx, "parts", held, otherClient.ID, 10*time.Minute)
		return err
	})
	borrowed := fmt.Sprintf("borrowed-%d-%d", held.ID, held.Rev)
	w.waitJS("the row marked borrowed", `(() => { const b = document.querySelector('[data-testid="`+borrowed+`"]'); return !!b && b.textContent === 'borrowed by workstation-7'; })()`)
	if !w.eval(`window.__sameDocument === true`) {
		t.Error("the page reloaded to show the borrow")
	}
	w.screenshot("borrowed")

	// Checking it out is refused, plainly.
	w.do("open the held record", chromedp.Click(testid(fmt.Sprintf("open-%d-%d", held.ID, held.Rev))), chromedp.WaitVisible(testid("record-form")))
	if got := w.text(`[data-testid="borrow-holder"]`); got != "workstation-7" {
		t.Errorf("record page: holder %q, want workstation-7", got)
	}
	w.do("check out the held record", chromedp.Click(testid("btn-checkout")), chromedp.WaitVisible(`[data-testid="record-message"][data-kind="error"]`))
	if msg := w.text(`[data-testid="record-message"]`); !strings.Contains(msg, "refused: borrowed by workstation-7") {
		t.Errorf("refused check-out: message %q, want it to name workstation-7", msg)
	}
	if w.eval(`!!document.querySelector('[data-testid="btn-save"]')`) {
		t.Error("the form became editable although the check-out was refused")
	}
	// The other client returns it: the page follows.
	write(t, ctx, "the other client's return", func(ctx context.Context) error {
		_, err := other.Return(ctx, "parts", held, otherClient.ID)
		return err
	})
	w.waitJS("the record page to show the return", `document.querySelector('[data-testid="borrow-holder"]')?.textContent === 'Not borrowed.'`)

	// The cluster page.
	w.do("cluster page", chromedp.Click(testid("nav-cluster")), chromedp.WaitVisible(testid("leader-badge")))
	// Three members, alive, one of them the leader (which one may have
	// changed since: an election on a loaded machine).
	w.waitJS("three members, alive, one leader", `(() => {
		const rows = [...document.querySelectorAll('[data-testid^="member-"]')];
		return rows.length === 3 && rows.every((r) => r.textContent.includes('alive')) && document.querySelectorAll('[data-testid="leader-badge"]').length === 1;
	})()`)
	w.screenshot("cluster")
	w.do("borrows page", chromedp.Click(testid("nav-borrows")), chromedp.WaitVisible(testid("clients-table")))

	// A reader: everything shown, nothing to edit.
	r := newTab(t, w.ctx) // a second tab of the same browser: its own sessionStorage
	r.do("open a record as a reader", chromedp.Navigate(fmt.Sprintf("%s#/trees/parts/records/%d/%d", base, edited.ID, edited.Rev)), chromedp.WaitVisible(testid("login-form")))
	r.do("log in with a reader token", chromedp.SendKeys(testid("login-token"), readerTok), chromedp.Click(testid("login-submit")), chromedp.WaitVisible(testid("record-form")))
	r.do("read-only", chromedp.WaitVisible(testid("read-only")))
	if r.eval(`!!document.querySelector('[data-testid^="btn-"]')`) {
		t.Error("a reader sees edit buttons")
	}
	if !r.eval(`[...document.querySelectorAll('[data-testid="record-form"] input, [data-testid="record-form"] textarea')].every(e => e.disabled)`) {
		t.Error("a reader's form has enabled inputs")
	}
	if got := r.text(`[data-testid="role"]`); got != "reader" {
		t.Errorf("reader header role %q", got)
	}
	// A wrong token is refused on the login page.
	r.do("log out", chromedp.Click(testid("logout")), chromedp.WaitVisible(testid("login-form")))
	r.do("log in with a wrong token", chromedp.SendKeys(testid("login-token"), "shelf_not-a-token"), chromedp.Click(testid("login-submit")),
		chromedp.WaitVisible(`[data-testid="login-message"][data-kind="error"]`))
	if msg := r.text(`[data-testid="login-message"]`); !strings.Contains(msg, "unknown or revoked token") {
		t.Errorf("wrong token: message %q", msg)
	}
}

// kvctlBytes is what kvctl update would store for the record's current
// JSON value: the value checked against the schema (Conform) and encoded
// by the node's encoder.
func kvctlBytes(t *testing.T, addr, token, tree string, key api.Key, def schema.Definition) []byte {
	t.Helper()
	req, _ := http.NewRequest("GET", fmt.Sprintf("http://%s/v1/trees/%s/records/%d/%d", addr, tree, key.ID, key.Rev), nil)
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := testHTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var raw struct {
		Value json.RawMessage `json:"value"`
	}
	if err := json.NewDecoder(res.Body).Decode(&raw); err != nil {
		t.Fatal(err)
	}
	var v any
	if err := api.DecodeJSON(bytes.NewReader(raw.Value), &v); err != nil {
		t.Fatal(err)
	}
	c, err := def.Conform(v)
	if err != nil {
		t.Fatalf("conform: %v", err)
	}
	data, err := api.EncodeValue(c)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// checkPageCodec checks the page's own CBOR encoder (/ui/cbor.js) and
// schema check (/ui/schema.js) against the node's: the same bytes as
// api.EncodeValue for integers of every size and sign, floats, strings
// sorted as the node sorts map keys, integer-keyed maps, times, byte
// strings; the same problems, in the same words, as schema.Conform.
func checkPageCodec(t *testing.T, w *tab, def schema.Definition) {
	t.Helper()
	checked, _ := time.Parse(time.RFC3339, "2026-11-24T09:30:00Z")
	want := []any{
		map[string]any{"a": int64(1), "b": int64(-1), "c": int64(-24), "d": int64(-25), "e": int64(255), "f": int64(256), "g": int64(65536),
			"h": int64(4294967296), "i": uint64(18446744073709551615), "j": int64(-9223372036854775808)},
		map[string]any{"é": int64(1), "z": int64(2), "aa": int64(3), "b": int64(4), "": int64(5), "日本": int64(6), "\U0001F600": int64(7), "\uffff": int64(8)},
		map[string]any{"x": 1.5, "y": 0.1, "z": -2.25e-10, "w": float64(3)},
		map[string]any{"m": map[any]any{int64(10): "a", int64(-1): "b", int64(2): "c", int64(300): "d", int64(-300): "e"}},
		map[string]any{"t": checked, "u": []byte{1, 2, 3}, "n": nil, "bo": true, "arr": []any{int64(1), "x", []any{}, map[string]any{}}},
	}
	const js = `(async () => {
		const { encodeCBOR, CborTime } = await import('/ui/cbor.js');
		const hex = (b) => [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
		return [
			{ a: 1, b: -1, c: -24, d: -25, e: 255, f: 256, g: 65536, h: 4294967296, i: 18446744073709551615n, j: -9223372036854775808n },
			{ 'é': 1, z: 2, aa: 3, b: 4, '': 5, '日本': 6, '\u{1F600}': 7, '\uffff': 8 },
			{ x: 1.5, y: 0.1, z: -2.25e-10, w: 3 },
			{ m: new Map([[10, 'a'], [-1, 'b'], [2, 'c'], [300, 'd'], [-300, 'e']]) },
			{ t: new CborTime('2026-11-24T09:30:00Z'), u: new Uint8Array([1, 2, 3]), n: null, bo: true, arr: [1, 'x', [], {}] },
		].map((v) => hex(encodeCBOR(v)));
	})()`
	ctx, cancel := context.WithTimeout(w.ctx, stepTimeout)
	defer cancel()
	got, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](js, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("the page's CBOR encoder: %v", err)
	}
	for i, v := range want {
		b, err := api.EncodeValue(v)
		if err != nil {
			t.Fatal(err)
		}
		if i >= len(got) || got[i] != fmt.Sprintf("%x", b) {
			t.Errorf("CBOR case %d: the page encodes %v, the node %x", i, got, b)
		}
	}

	bad := `{"name": 7, "qty": "12x", "price": true, "checked": "yesterday", "supplier": {"id": -1}, "dims": {"w": "wide", "d": 1},
		"stock": {"lyon": 3000000000}, "bins": {"x": "A"}, "lots": [{"qty": 1.5}], "note": null, "extra": 1, "tags": "smd"}`
	var v any
	if err := api.DecodeJSON(strings.NewReader(bad), &v); err != nil {
		t.Fatal(err)
	}
	_, cerr := def.Conform(v)
	if cerr == nil {
		t.Fatal("Conform accepted a bad value")
	}
	defJSON, _ := json.Marshal(def)
	got2, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(async () => {
		const { conform } = await import('/ui/schema.js');
		try { conform(`+string(defJSON)+`, `+bad+`); return 'accepted'; } catch (e) { return e.problems ? e.problems.join('\n') : String(e); }
	})()`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("the page's schema check: %v", err)
	}
	if got2 != cerr.Error() {
		t.Errorf("the page's schema check says\n%s\nthe node's (kvctl's)\n%s", got2, cerr)
	}
}
