package tlsconf

import (
	"crypto/tls"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// office makes a CA in dir/NAME-ca and returns its issuer and CA path.
func office(t *testing.T, dir, name string) (*Issuer, string) {
	t.Helper()
	caDir := filepath.Join(dir, name)
	if err := os.MkdirAll(caDir, 0o700); err != nil {
		t.Fatal(err)
	}
	p, err := NewCA(name, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := WritePair(p, filepath.Join(caDir, CACertFile), filepath.Join(caDir, CAKeyFile), false); err != nil {
		t.Fatal(err)
	}
	is, err := LoadIssuer(caDir)
	if err != nil {
		t.Fatal(err)
	}
	return is, filepath.Join(caDir, CACertFile)
}

// issue issues req and writes it to dir/NAME.crt and .key.
func issue(t *testing.T, is *Issuer, dir string, req Request) (cert, key string) {
	t.Helper()
	p, err := is.Issue(req)
	if err != nil {
		t.Fatal(err)
	}
	cert, key = filepath.Join(dir, req.Name+".crt"), filepath.Join(dir, req.Name+".key")
	if err := WritePair(p, cert, key, true); err != nil {
		t.Fatal(err)
	}
	return cert, key
}

func TestLoadNodeAndHandshake(t *testing.T) {
	dir := t.TempDir()
	is, ca := office(t, dir, "office")
	cert, key := issue(t, is, dir, Request{Name: "n1", Node: true, Hosts: []string{"127.0.0.1", "localhost"}})
	ccert, ckey := issue(t, is, dir, Request{Name: "alice"})

	n, err := LoadNode(NodeFiles{Cert: cert, Key: key, CA: ca, ClientCA: ca})
	if err != nil {
		t.Fatalf("LoadNode: %v", err)
	}
	if got := n.Leaf().Subject.CommonName; got != "n1" {
		t.Fatalf("leaf CN %q", got)
	}
	var peerErr error
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		peerErr = n.CheckPeer(r.TLS)
		io.WriteString(w, "ok")
	}))
	srv.TLS = n.HTTPServer
	srv.StartTLS()
	defer srv.Close()

	get := func(c *tls.Config) error {
		hc := &http.Client{Transport: &http.Transport{TLSClientConfig: c}, Timeout: 10 * time.Second}
		resp, err := hc.Get(srv.URL)
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	}
	// A node dialing with its peer client config is a member.
	if err := get(n.PeerClient); err != nil || peerErr != nil {
		t.Fatalf("node request: %v, CheckPeer %v", err, peerErr)
	}
	// A client certificate of the same CA is served but is not a member.
	cc, err := LoadClient(ClientFiles{CA: ca, Cert: ccert, Key: ckey})
	if err != nil {
		t.Fatal(err)
	}
	if err := get(cc); err != nil {
		t.Fatalf("client request: %v", err)
	}
	if !errors.Is(peerErr, ErrNotPeer) {
		t.Fatalf("CheckPeer of a client certificate: %v, want ErrNotPeer", peerErr)
	}
	// The client CA is required: no certificate, no answer.
	nocert, err := LoadClient(ClientFiles{CA: ca})
	if err != nil {
		t.Fatal(err)
	}
	if err := get(nocert); err == nil {
		t.Fatal("request without a client certificate was served; -tls-client-ca must require one")
	}
	// A node certificate of another CA is refused in the handshake.
	other, _ := office(t, dir, "other")
	ocert, okey := issue(t, other, dir, Request{Name: "intruder", Node: true, Hosts: []string{"127.0.0.1"}})
	on, err := LoadNode(NodeFiles{Cert: ocert, Key: okey, CA: filepath.Join(dir, "other", CACertFile)})
	if err != nil {
		t.Fatal(err)
	}
	foreign := on.PeerClient.Clone()
	foreign.RootCAs = n.PeerClient.RootCAs // it trusts our server, we do not trust it
	if err := get(foreign); err == nil {
		t.Fatal("a node certificate of another CA was accepted")
	}
	if err := n.CheckPeer(nil); !errors.Is(err, ErrNotPeer) {
		t.Fatalf("CheckPeer(nil) = %v", err)
	}
}

func TestLoadErrorsNameTheFile(t *testing.T) {
	dir := t.TempDir()
	is, ca := office(t, dir, "office")
	cert, key := issue(t, is, dir, Request{Name: "n1", Node: true, Hosts: []string{"127.0.0.1"}})
	_, key2 := issue(t, is, dir, Request{Name: "n2", Node: true, Hosts: []string{"127.0.0.1"}})
	ccert, ckey := issue(t, is, dir, Request{Name: "alice"})
	other, _ := office(t, dir, "other")
	ocert, okey := issue(t, other, dir, Request{Name: "n9", Node: true, Hosts: []string{"127.0.0.1"}})
	junk := filepath.Join(dir, "junk.pem")
	os.WriteFile(junk, []byte("hello"), 0o600)

	cases := []struct {
		name  string
		files NodeFiles
		is    error
		want  []string
	}{
		{"missing cert", NodeFiles{Cert: filepath.Join(dir, "nope.crt"), Key: key, CA: ca}, os.ErrNotExist, []string{"nope.crt", "does not exist"}},
		{"cert not PEM", NodeFiles{Cert: junk, Key: key, CA: ca}, ErrNotPEM, []string{"junk.pem"}},
		{"key not PEM", NodeFiles{Cert: cert, Key: junk, CA: ca}, ErrNotPEM, []string{"junk.pem"}},
		{"CA not PEM", NodeFiles{Cert: cert, Key: key, CA: junk}, ErrNotPEM, []string{"CA file", "junk.pem"}},
		{"key of another cert", NodeFiles{Cert: cert, Key: key2, CA: ca}, ErrKeyMismatch, []string{"n2.key", "n1.crt"}},
		{"other CA", NodeFiles{Cert: ocert, Key: okey, CA: ca}, ErrNotSignedByCA, []string{"n9.crt", "ca.crt"}},
		{"client cert as node cert", NodeFiles{Cert: ccert, Key: ckey, CA: ca}, nil, []string{"alice.crt", "server authentication"}},
		{"a leaf as CA", NodeFiles{Cert: cert, Key: key, CA: cert}, nil, []string{"not a CA certificate"}},
		{"no CA", NodeFiles{Cert: cert, Key: key}, nil, []string{"-tls-ca"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := LoadNode(c.files)
			if err == nil {
				t.Fatal("loaded")
			}
			if c.is != nil && !errors.Is(err, c.is) {
				t.Errorf("error %v is not %v", err, c.is)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}

	// Expired and not yet valid, judged by the clock.
	t.Run("expired", func(t *testing.T) {
		defer func(f func() time.Time) { now = f }(now)
		now = func() time.Time { return time.Now().Add(3 * 365 * 24 * time.Hour) }
		_, err := LoadNode(NodeFiles{Cert: cert, Key: key, CA: ca})
		if !errors.Is(err, ErrExpired) || !strings.Contains(err.Error(), "n1.crt") {
			t.Fatalf("error %v, want ErrExpired naming n1.crt", err)
		}
	})
	t.Run("not yet valid", func(t *testing.T) {
		defer func(f func() time.Time) { now = f }(now)
		now = func() time.Time { return time.Now().Add(-24 * time.Hour) }
		_, err := LoadNode(NodeFiles{Cert: cert, Key: key, CA: ca})
		if !errors.Is(err, ErrNotYetValid) {
			t.Fatalf("error %v, want ErrNotYetValid", err)
		}
	})
	t.Run("client cert without key", func(t *testing.T) {
		if _, err := LoadClient(ClientFiles{CA: ca, Cert: ccert}); err == nil {
			t.Fatal("loaded")
		}
	})
}

func TestIssue(t *testing.T) {
	dir := t.TempDir()
	is, ca := office(t, dir, "office")
	if _, err := is.Issue(Request{Name: "n1", Node: true}); err == nil {
		t.Error("node certificate without hosts issued")
	}
	if _, err := is.Issue(Request{Name: " "}); err == nil {
		t.Error("certificate without name issued")
	}
	if _, err := is.Issue(Request{Name: "n1", Node: true, Hosts: []string{"10.0.0.1:7001"}}); err == nil {
		t.Error("host with a port accepted")
	}
	cert, key := issue(t, is, dir, Request{Name: "n1", Node: true, Hosts: []string{"10.0.0.1", "kv1.office", "localhost"}, Validity: 100 * 365 * 24 * time.Hour})
	caObj, err := LoadCA(ca)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := LoadKeyPair(cert, key, caObj)
	if err != nil {
		t.Fatal(err)
	}
	leaf := pair.Leaf
	if len(leaf.IPAddresses) != 1 || leaf.IPAddresses[0].String() != "10.0.0.1" {
		t.Errorf("IP SANs %v", leaf.IPAddresses)
	}
	if strings.Join(leaf.DNSNames, ",") != "kv1.office,localhost" {
		t.Errorf("DNS SANs %v", leaf.DNSNames)
	}
	if err := leaf.VerifyHostname("kv1.office"); err != nil {
		t.Error(err)
	}
	if leaf.NotAfter.After(caObj.Certs[0].NotAfter) {
		t.Errorf("certificate outlives its CA: %v > %v", leaf.NotAfter, caObj.Certs[0].NotAfter)
	}
	if d := time.Until(caObj.Certs[0].NotAfter); d < 9*365*24*time.Hour {
		t.Errorf("CA valid for %v, want 10 years", d)
	}
	for f, mode := range map[string]os.FileMode{key: 0o600, cert: 0o644, filepath.Join(dir, "office", CAKeyFile): 0o600} {
		fi, err := os.Stat(f)
		if err != nil || fi.Mode().Perm() != mode {
			t.Errorf("%s: mode %v, %v; want %v", f, fi.Mode().Perm(), err, mode)
		}
	}
	// No overwrite without force; nothing is written then.
	before, _ := os.ReadFile(cert)
	p, _ := is.Issue(Request{Name: "n1b"})
	if err := WritePair(p, cert, key, false); !errors.Is(err, ErrExists) {
		t.Fatalf("overwrite without force: %v", err)
	}
	if after, _ := os.ReadFile(cert); string(after) != string(before) {
		t.Fatal("certificate changed by a refused write")
	}
}

func TestGossipKey(t *testing.T) {
	k, err := NewGossipKey()
	if err != nil {
		t.Fatal(err)
	}
	b, err := ParseGossipKey(k)
	if err != nil || len(b) != 32 {
		t.Fatalf("ParseGossipKey(NewGossipKey()) = %d bytes, %v", len(b), err)
	}
	for _, bad := range []string{"", "not base64!", "AAAA"} {
		if _, err := ParseGossipKey(bad); err == nil {
			t.Errorf("ParseGossipKey(%q) accepted", bad)
		}
	}
}
