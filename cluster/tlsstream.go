package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// tlsHandshakeTimeout bounds the TLS handshake of one raft connection.
const tlsHandshakeTimeout = 10 * time.Second

// tlsStream is the raft.StreamLayer of a node with PeerTLS: raft's
// connections run over TLS with mutual authentication, each side
// verifying the other's certificate against the cluster CA (the server
// config requires a client certificate; the client config presents the
// node certificate).
//
// Accept hands raft only connections whose handshake succeeded: an
// owned loop accepts TCP connections and runs each handshake on its own
// goroutine, bounded by tlsHandshakeTimeout, so that a slow or refused
// peer neither delays the others nor reaches raft (whose accept loop
// backs off after an error). A refused handshake is logged with the
// remote address and the reason, such as a certificate of another CA.
type tlsStream struct {
	ln     net.Listener
	adv    net.Addr
	server *tls.Config
	client *tls.Config
	log    *slog.Logger

	conns  chan net.Conn
	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	once   sync.Once
	wg     sync.WaitGroup // the accept loop and handshakes
}

var _ raft.StreamLayer = (*tlsStream)(nil)

// newTLSStream listens on bind and starts accepting. adv is the address
// advertised to peers; nil means the listener's, which then must not be
// an unspecified address.
func newTLSStream(bind string, adv net.Addr, server, client *tls.Config, log *slog.Logger) (*tlsStream, error) {
	ln, err := net.Listen("tcp", bind)
	if err != nil {
		return nil, err
	}
	if adv == nil {
		adv = ln.Addr()
	}
	if a, ok := adv.(*net.TCPAddr); !ok || a.IP == nil || a.IP.IsUnspecified() {
		ln.Close()
		return nil, fmt.Errorf("raft address %s is not one peers can reach", adv)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &tlsStream{ln: ln, adv: adv, server: server, client: client, log: log,
		conns: make(chan net.Conn), ctx: ctx, cancel: cancel}
	s.wg.Add(1)
	go s.acceptLoop()
	return s, nil
}

// acceptLoop accepts TCP connections until Close and starts a handshake
// for each.
func (s *tlsStream) acceptLoop() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if s.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			s.log.Warn("cluster: raft TLS listener: accept failed", "err", err)
			select {
			case <-s.ctx.Done():
				return
			case <-time.After(50 * time.Millisecond):
			}
			continue
		}
		s.wg.Add(1)
		go s.handshake(c)
	}
}

// handshake runs the server side of the TLS handshake on raw and hands
// the connection to Accept, or logs why it was refused.
func (s *tlsStream) handshake(raw net.Conn) {
	defer s.wg.Done()
	tc := tls.Server(raw, s.server)
	ctx, cancel := context.WithTimeout(s.ctx, tlsHandshakeTimeout)
	err := tc.HandshakeContext(ctx)
	cancel()
	if err != nil {
		if s.ctx.Err() == nil {
			s.log.Warn("cluster: raft: refused a connection that failed TLS authentication; a peer must present a node certificate of the cluster CA (-tls-ca)",
				"from", raw.RemoteAddr().String(), "err", err)
		}
		tc.Close()
		return
	}
	select {
	case s.conns <- tc:
	case <-s.ctx.Done():
		tc.Close()
	}
}

// Accept implements net.Listener: the next connection whose handshake
// succeeded.
func (s *tlsStream) Accept() (net.Conn, error) {
	select {
	case c := <-s.conns:
		return c, nil
	case <-s.ctx.Done():
		return nil, net.ErrClosed
	}
}

// Close implements net.Listener: it stops accepting, ends the handshakes
// in progress and waits for them.
func (s *tlsStream) Close() error {
	var err error
	s.once.Do(func() {
		s.cancel()
		err = s.ln.Close()
		s.wg.Wait()
	})
	return err
}

// Addr implements net.Listener: the advertised address.
func (s *tlsStream) Addr() net.Addr { return s.adv }

// Dial implements raft.StreamLayer: a TLS connection to a peer, its
// certificate verified against the cluster CA for the address's host.
func (s *tlsStream) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	if timeout <= 0 {
		timeout = tlsHandshakeTimeout
	}
	ctx, cancel := context.WithTimeout(s.ctx, timeout)
	defer cancel()
	d := &tls.Dialer{NetDialer: &net.Dialer{}, Config: s.client}
	c, err := d.DialContext(ctx, "tcp", string(addr))
	if err != nil {
		return nil, fmt.Errorf("raft TLS dial %s: %w", addr, err)
	}
	return c, nil
}
