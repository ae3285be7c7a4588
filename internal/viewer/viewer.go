// Package viewer is Shelf's web viewer: a single-page application of
// plain HTML, CSS and JavaScript modules (no build step, nothing fetched
// from elsewhere) that kvnode serves at "/" of its HTTP address. It shows
// the cluster, trees, records typed by their schema, borrows and
// histories, edits records by check-out and check-in, and follows the
// node's event stream to update what it shows. Everything it shows and
// does goes through the node's public HTTP API (docs/http-api.md) with
// the user's token, so it can do no more than that token may.
//
// Handler serves the embedded files: index.html at "/", the assets at
// "/ui/NAME". Each answer carries an ETag (a hash of the file) and
// Cache-Control: no-cache, so browsers revalidate with If-None-Match and
// get 304 Not Modified until kvnode is upgraded. The security headers of
// the page (Content-Security-Policy, nosniff) are set by package httpapi
// for every answer of the UI.
package viewer

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
)

//go:embed static
var static embed.FS

// asset is one embedded file, ready to serve.
type asset struct {
	body        []byte
	etag        string // quoted strong ETag
	contentType string
}

// AssetPrefix is the path under which Handler serves the files of the
// viewer other than index.html.
const AssetPrefix = "/ui/"

// contentTypes names the media types of the files the viewer embeds; the
// system's MIME table is not consulted, so the answer is the same on
// every machine.
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
	".png":  "image/png",
	".json": "application/json",
}

// Handler returns the viewer's handler: index.html at "/" (and
// "/index.html"), the embedded assets at "/ui/NAME" (GET and HEAD). Any
// other path or a missing asset is 404, another method 405.
func Handler() http.Handler {
	files, err := load()
	if err != nil {
		// The files are compiled in: this is a broken build, not input.
		panic(fmt.Sprintf("viewer: embedded files: %v", err))
	}
	return &handler{files: files}
}

// load reads every embedded file and computes its ETag.
func load() (map[string]asset, error) {
	files := map[string]asset{}
	err := fs.WalkDir(static, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := static.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		ct := contentTypes[path.Ext(p)]
		if ct == "" {
			ct = mime.TypeByExtension(path.Ext(p))
		}
		if ct == "" {
			ct = "application/octet-stream"
		}
		files[strings.TrimPrefix(p, "static/")] = asset{body: b, etag: `"` + hex.EncodeToString(sum[:16]) + `"`, contentType: ct}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if _, ok := files["index.html"]; !ok {
		return nil, fmt.Errorf("no index.html")
	}
	return files, nil
}

type handler struct {
	files map[string]asset
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var name string
	switch p := r.URL.Path; {
	case p == "/" || p == "/index.html":
		name = "index.html"
	case strings.HasPrefix(p, AssetPrefix):
		name = strings.TrimPrefix(p, AssetPrefix)
	default:
		http.NotFound(w, r)
		return
	}
	a, ok := h.files[name]
	if !ok || name == "" || strings.Contains(name, "..") {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	hd := w.Header()
	hd.Set("ETag", a.etag)
	hd.Set("Cache-Control", "no-cache")
	if etagMatch(r.Header.Get("If-None-Match"), a.etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	hd.Set("Content-Type", a.contentType)
	hd.Set("Content-Length", fmt.Sprint(len(a.body)))
	if r.Method == http.MethodHead {
		return
	}
	_, _ = w.Write(a.body)
}

// etagMatch reports whether an If-None-Match header names etag (or is *).
// Weak validators compare equal to their strong form, as RFC 9110 asks
// for If-None-Match.
func etagMatch(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == "*" || t == etag {
			return true
		}
	}
	return false
}
