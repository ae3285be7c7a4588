package httpapi_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/fsm"
	"github.com/shelfdb/shelf/internal/httpapi"
	"github.com/shelfdb/shelf/internal/tlsconf"
)

// With TLS client certificates, a request without a bearer token is the
// token named like its certificate's common name: that token's role
// applies, a certificate naming no token gets 401, and a bearer token
// wins over the certificate.
func TestClientCertificateNamesAToken(t *testing.T) {
	ae := newAuthEnv(t)
	dir := t.TempDir()
	ca, err := tlsconf.NewCA("test office", 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := tlsconf.WritePair(ca, filepath.Join(dir, tlsconf.CACertFile), filepath.Join(dir, tlsconf.CAKeyFile), false); err != nil {
		t.Fatal(err)
	}
	is, err := tlsconf.LoadIssuer(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []tlsconf.Request{{Name: "h1", Node: true, Hosts: []string{"127.0.0.1"}}, {Name: "ws-cert"}, {Name: "stranger"}} {
		p, err := is.Issue(r)
		if err != nil {
			t.Fatal(err)
		}
		if err := tlsconf.WritePair(p, filepath.Join(dir, r.Name+".crt"), filepath.Join(dir, r.Name+".key"), false); err != nil {
			t.Fatal(err)
		}
	}
	cafile := filepath.Join(dir, tlsconf.CACertFile)
	node, err := tlsconf.LoadNode(tlsconf.NodeFiles{Cert: filepath.Join(dir, "h1.crt"), Key: filepath.Join(dir, "h1.key"), CA: cafile, ClientCA: cafile})
	if err != nil {
		t.Fatal(err)
	}
	res, err := ae.node.Apply(context.Background(), &fsm.Command{Op: fsm.OpCreateToken, Name: "ws-cert", Role: "reader", Hash: api.TokenHash("unused-secret-of-ws-cert")})
	if err == nil {
		err = res.Error()
	}
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(httpapi.New(httpapi.Config{Node: ae.node, Auth: true, Peer: func(r *http.Request) error { return node.CheckPeer(r.TLS) }}))
	srv.TLS = node.HTTPServer
	srv.StartTLS()
	defer srv.Close()

	as := func(name string) *api.Client {
		cfg, err := tlsconf.LoadClient(tlsconf.ClientFiles{CA: cafile, Cert: filepath.Join(dir, name+".crt"), Key: filepath.Join(dir, name+".key")})
		if err != nil {
			t.Fatal(err)
		}
		return api.NewClient(srv.URL, &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}})
	}
	ctx := context.Background()
	ws := as("ws-cert")
	if _, err := ws.Trees(ctx); err != nil {
		t.Fatalf("reader certificate: trees: %v", err)
	}
	if _, err := ws.Create(ctx, "parts", api.WriteRequest{Data: mustValue(t, map[string]any{"n": 1})}); !errors.Is(err, api.ErrForbidden) {
		t.Fatalf("reader certificate: create: %v, want forbidden", err)
	}
	if _, err := as("stranger").Trees(ctx); !errors.Is(err, api.ErrUnauthenticated) {
		t.Fatalf("certificate naming no token: %v, want unauthenticated", err)
	}
	if _, err := ws.WithToken(ae.tokens["admin"]).Tokens(ctx); err != nil {
		t.Fatalf("a bearer admin token with a reader certificate: %v", err)
	}
	if _, err := ws.WithToken("shelf_bogus").Trees(ctx); !errors.Is(err, api.ErrUnauthenticated) {
		t.Fatalf("a bad bearer token with a good certificate: %v, want unauthenticated (the bearer token wins)", err)
	}
}
