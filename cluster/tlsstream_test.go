package cluster

import (
	"errors"
	"github.com/shelfdb/shelf/internal/testlog"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/shelfdb/shelf/internal/tlsconf"
)

// testNodeTLS makes a CA in dir/caName (once) and a node certificate
// name, and loads it.
func testNodeTLS(t *testing.T, dir, caName, name string) *tlsconf.Node {
	t.Helper()
	caDir := filepath.Join(dir, caName)
	if _, err := tlsconf.LoadIssuer(caDir); err != nil {
		if err := os.MkdirAll(caDir, 0o700); err != nil {
			t.Fatal(err)
		}
		p, err := tlsconf.NewCA(caName, 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := tlsconf.WritePair(p, filepath.Join(caDir, tlsconf.CACertFile), filepath.Join(caDir, tlsconf.CAKeyFile), false); err != nil {
			t.Fatal(err)
		}
	}
	is, err := tlsconf.LoadIssuer(caDir)
	if err != nil {
		t.Fatal(err)
	}
	p, err := is.Issue(tlsconf.Request{Name: name, Node: true, Hosts: []string{"127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	cert, key := filepath.Join(caDir, name+".crt"), filepath.Join(caDir, name+".key")
	if err := tlsconf.WritePair(p, cert, key, false); err != nil {
		t.Fatal(err)
	}
	n, err := tlsconf.LoadNode(tlsconf.NodeFiles{Cert: cert, Key: key, CA: filepath.Join(caDir, tlsconf.CACertFile)})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestTLSStream: the raft stream layer hands raft only connections from
// nodes of the cluster CA, logs the others, is not held up by a
// connection that never completes its handshake, and closes promptly.
func TestTLSStream(t *testing.T) {
	dir := t.TempDir()
	n1 := testNodeTLS(t, dir, "office", "n1")
	n2 := testNodeTLS(t, dir, "office", "n2")
	n9 := testNodeTLS(t, dir, "elsewhere", "n9")
	var logs testlog.Buffer
	s1, err := newTLSStream("127.0.0.1:0", nil, n1.PeerServer, n1.PeerClient, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer s1.Close()
	addr := raft.ServerAddress(s1.Addr().String())

	// A connection that never sends a byte: it must not delay the others.
	idle, err := net.Dial("tcp", string(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()

	// A node of another CA (which trusts ours, so only our side refuses).
	foreign := n9.PeerClient.Clone()
	foreign.RootCAs = n1.PeerClient.RootCAs
	s9 := &tlsStream{client: foreign, ctx: t.Context()}
	if c, err := s9.Dial(addr, 5*time.Second); err == nil {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		_, err = c.Read(make([]byte, 1)) // TLS 1.3: the refusal comes on read
		c.Close()
		if err == nil {
			t.Fatal("a node of another CA got through")
		}
	}

	// A node of our CA gets through, and is the connection Accept returns.
	s2 := &tlsStream{client: n2.PeerClient, ctx: t.Context()}
	c2, err := s2.Dial(addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial as n2: %v", err)
	}
	defer c2.Close()
	c2.SetDeadline(time.Now().Add(5 * time.Second))
	go c2.Write([]byte("ping")) // ends with the deadline at the latest
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := s1.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	select {
	case c, ok := <-accepted:
		if !ok {
			t.Fatal("accept failed")
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		b := make([]byte, 4)
		if _, err := io.ReadFull(c, b); err != nil || string(b) != "ping" {
			t.Fatalf("read %q, %v", b, err)
		}
		c.Close()
	case <-time.After(tlsHandshakeTimeout / 2):
		t.Fatal("the connection of n2 was not accepted while an idle connection was pending")
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String(), "refused a connection that failed TLS authentication") {
		if time.Now().After(deadline) {
			t.Fatalf("the refused connection was not logged; log:\n%s", logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}

	// Close ends the idle handshake and Accept at once.
	closed := make(chan error, 1)
	go func() { closed <- s1.Close() }()
	select {
	case <-closed:
	case <-time.After(tlsHandshakeTimeout / 2):
		t.Fatal("Close waited for a pending handshake")
	}
	if _, err := s1.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after Close: %v", err)
	}
	if err := s1.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}
