package viewer

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

// inlineHandler finds event handler attributes (onclick=...) in HTML.
var inlineHandler = regexp.MustCompile(`\son[a-z]+\s*=`)

func serve(t *testing.T, method, path string, hdr map[string]string) *http.Response {
	t.Helper()
	r := httptest.NewRequest(method, path, nil)
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	Handler().ServeHTTP(w, r)
	return w.Result()
}

func body(t *testing.T, res *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestIndex: "/" is the page, which loads its script and style from /ui/
// (no inline script or style: the node's CSP forbids them).
func TestIndex(t *testing.T) {
	for _, p := range []string{"/", "/index.html"} {
		res := serve(t, "GET", p, nil)
		if res.StatusCode != 200 {
			t.Fatalf("GET %s: %d", p, res.StatusCode)
		}
		if ct := res.Header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
			t.Errorf("GET %s: Content-Type %q", p, ct)
		}
		b := body(t, res)
		for _, want := range []string{`<script type="module" src="/ui/app.js"></script>`, `<link rel="stylesheet" href="/ui/style.css">`} {
			if !strings.Contains(b, want) {
				t.Errorf("GET %s: no %s", p, want)
			}
		}
		if strings.Contains(b, "<style") || strings.Contains(b, "style=") || strings.Contains(b, "<script>") || inlineHandler.MatchString(b) {
			t.Errorf("GET %s: inline style or script, which the CSP refuses", p)
		}
	}
}

// TestAssets: every file the viewer loads is served with its type, and
// no asset refers to another origin.
func TestAssets(t *testing.T) {
	files, err := load()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"app.js": "text/javascript; charset=utf-8", "api.js": "text/javascript; charset=utf-8", "views/record.js": "text/javascript; charset=utf-8",
		"style.css": "text/css; charset=utf-8", "favicon.svg": "image/svg+xml",
	}
	for name, ct := range want {
		res := serve(t, "GET", AssetPrefix+name, nil)
		if res.StatusCode != 200 {
			t.Fatalf("GET %s: %d", name, res.StatusCode)
		}
		if got := res.Header.Get("Content-Type"); got != ct {
			t.Errorf("GET %s: Content-Type %q, want %q", name, got, ct)
		}
		if b := body(t, res); b != string(files[name].body) {
			t.Errorf("GET %s: body differs from the embedded file", name)
		}
	}
	for name, a := range files {
		s := string(a.body)
		for _, bad := range []string{"http://", "https://", "//cdn"} {
			if i := strings.Index(s, bad); i >= 0 && !strings.HasPrefix(s[i:], "http://www.w3.org/2000/svg") && !strings.HasPrefix(s[i:], "http://127.0.0.1") {
				t.Errorf("%s refers to another origin: %q", name, s[i:min(len(s), i+60)])
			}
		}
	}
}

// TestETag: an answer carries an ETag; a request naming it gets 304 with
// no body; a changed ETag gets the file again.
func TestETag(t *testing.T) {
	res := serve(t, "GET", "/ui/app.js", nil)
	etag := res.Header.Get("ETag")
	if len(etag) < 10 || etag[0] != '"' {
		t.Fatalf("ETag %q", etag)
	}
	if cc := res.Header.Get("Cache-Control"); cc != "no-cache" {
		t.Errorf("Cache-Control %q, want no-cache (revalidate with the ETag)", cc)
	}
	for _, inm := range []string{etag, "W/" + etag, `"x", ` + etag, "*"} {
		res := serve(t, "GET", "/ui/app.js", map[string]string{"If-None-Match": inm})
		if res.StatusCode != http.StatusNotModified {
			t.Errorf("If-None-Match %s: %d, want 304", inm, res.StatusCode)
		}
		if b := body(t, res); b != "" {
			t.Errorf("304 with a body of %d bytes", len(b))
		}
		if res.Header.Get("ETag") != etag {
			t.Errorf("304 without the ETag")
		}
	}
	res = serve(t, "GET", "/ui/app.js", map[string]string{"If-None-Match": `"stale"`})
	if res.StatusCode != 200 {
		t.Errorf("stale ETag: %d, want 200", res.StatusCode)
	}
	if other := serve(t, "GET", "/ui/style.css", nil).Header.Get("ETag"); other == etag {
		t.Errorf("two files with the same ETag %s", etag)
	}
}

// TestNotFound: unknown assets and paths are 404; other methods 405; HEAD
// answers the headers only.
func TestNotFound(t *testing.T) {
	for _, p := range []string{"/ui/nope.js", "/ui/", "/ui/../viewer.go", "/ui/static/app.js", "/elsewhere"} {
		if res := serve(t, "GET", p, nil); res.StatusCode != 404 {
			t.Errorf("GET %s: %d, want 404", p, res.StatusCode)
		}
	}
	res := serve(t, "POST", "/ui/app.js", nil)
	if res.StatusCode != http.StatusMethodNotAllowed || res.Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST: %d Allow %q", res.StatusCode, res.Header.Get("Allow"))
	}
	res = serve(t, "HEAD", "/ui/app.js", nil)
	if res.StatusCode != 200 || res.Header.Get("Content-Length") == "" {
		t.Errorf("HEAD: %d, Content-Length %q", res.StatusCode, res.Header.Get("Content-Length"))
	}
	if b := body(t, res); b != "" {
		t.Errorf("HEAD with a body")
	}
}
