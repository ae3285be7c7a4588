package cluster_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shelfdb/shelf/cluster"
)

// A follower forwards every write it takes to the leader and waits for
// the commit, so with many writers many forwards are in flight at once.
// Once they are answered, the next round must reuse those connections
// instead of dialing the leader again (the cost that net/http's default
// of 2 idle connections per host, or a small limit, puts on every write).
func TestPeerTransportKeepsConcurrentForwardsConnected(t *testing.T) {
	const inFlight = 64
	var newConns atomic.Int64
	var mu sync.Mutex
	arrived := 0
	release := make(chan struct{})
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		arrived++
		if arrived == inFlight {
			close(release)
		}
		ch := release
		mu.Unlock()
		select { // all requests of a round are in flight together
		case <-ch:
		case <-time.After(10 * time.Second):
			http.Error(w, "round did not fill", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok"))
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			newConns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()

	hc := &http.Client{Transport: cluster.NewPeerTransport(), Timeout: 20 * time.Second}
	defer hc.CloseIdleConnections()
	round := func() {
		t.Helper()
		mu.Lock()
		arrived = 0
		release = make(chan struct{})
		mu.Unlock()
		var wg sync.WaitGroup
		errs := make(chan error, inFlight)
		for range inFlight {
			wg.Add(1)
			go func() {
				defer wg.Done()
				resp, err := hc.Post(srv.URL, "application/cbor", nil)
				if err != nil {
					errs <- err
					return
				}
				defer resp.Body.Close()
				// Read to the end, as cluster's forward does: an unread
				// body closes the connection.
				if _, err := io.Copy(io.Discard, resp.Body); err != nil {
					errs <- err
				} else if resp.StatusCode != http.StatusOK {
					errs <- fmt.Errorf("answer %s", resp.Status)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("forward: %v", err)
		}
	}
	round()
	first := newConns.Load()
	if first < inFlight {
		t.Fatalf("first round opened %d connections for %d concurrent requests", first, inFlight)
	}
	round()
	if again := newConns.Load() - first; again != 0 {
		t.Errorf("second round of %d concurrent forwards dialed %d new connections; want all reused", inFlight, again)
	}
}
