package httpapi_test

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/cluster"
	"github.com/shelfdb/shelf/internal/httpapi"
)

// TestInternalRoutesOnlyForPeers: with Config.Peer (kvnode sets it with
// TLS: a node certificate of the cluster CA), the internal routes answer
// 403 to any other caller, and the public routes still serve them.
func TestInternalRoutesOnlyForPeers(t *testing.T) {
	const peerHeader = "X-Test-Peer" // stands in for a verified node certificate
	e := newEnvWith(t, func(_ *cluster.Config, h *httpapi.Config) {
		h.Peer = func(r *http.Request) error {
			if r.Header.Get(peerHeader) == "" {
				return errors.New("not a cluster member: no node certificate")
			}
			return nil
		}
	})
	get := func(path string, hdr map[string]string) (int, []byte) {
		req, err := http.NewRequest(http.MethodGet, e.srv.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := e.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, b
	}
	code, body := get(cluster.InternalReadIndexPath, nil)
	var ae api.Error
	if err := json.Unmarshal(body, &ae); err != nil || code != http.StatusForbidden || ae.Code != api.CodeForbidden ||
		!strings.Contains(ae.Message, "cluster members only") || !strings.Contains(ae.Message, "no node certificate") {
		t.Fatalf("internal route from a non-member: %d %s, want 403 forbidden saying why", code, body)
	}
	// A forged forwarded header does not open it either.
	if code, body := get(cluster.InternalReadIndexPath, map[string]string{cluster.ForwardedHeader: "n2"}); code != http.StatusForbidden {
		t.Fatalf("internal route with a forged forwarded header: %d %s", code, body)
	}
	if code, body := get(cluster.InternalReadIndexPath, map[string]string{peerHeader: "yes"}); code != http.StatusOK {
		t.Fatalf("internal route from a member: %d %s", code, body)
	}
	// Public routes serve everyone, a forged forwarded header included.
	if code, body := get("/v1/status", map[string]string{cluster.ForwardedHeader: "n2"}); code != http.StatusOK {
		t.Fatalf("status with a forged forwarded header: %d %s", code, body)
	}
}
