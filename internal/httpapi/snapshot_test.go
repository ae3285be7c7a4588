package httpapi_test

import (
	"bytes"
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/cluster"
	"github.com/shelfdb/shelf/fsm"
)

// TestSlowSnapshotDownload: a client that reads a snapshot slowly does not
// hold the state machine: a restore (which must close the bbolt file, and
// so waits for every read transaction) finishes while the download is
// stalled, and the download, read to the end afterwards, is whole.
func TestSlowSnapshotDownload(t *testing.T) {
	e := newEnv(t, 0)
	blob, err := api.EncodeValue(map[string]any{"b": bytes.Repeat([]byte{7}, 900<<10)})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 30 { // well over what the socket buffers hold
		if _, err := e.cl.Create(t.Context(), "big", api.WriteRequest{Data: blob}); err != nil {
			t.Fatalf("create %d: %v", i, err)
		}
	}
	var snap bytes.Buffer
	s, err := e.node.FSM().Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.WriteTo(&snap); err != nil {
		t.Fatal(err)
	}
	s.Release()

	resp, err := http.Get(e.srv.URL + "/v1/snapshot")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	head := make([]byte, 1024)
	if _, err := io.ReadFull(resp.Body, head); err != nil {
		t.Fatal(err)
	}

	done := make(chan error, 1)
	go func() { done <- e.node.FSM().Restore(bytes.NewReader(snap.Bytes())) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("restore: %v", err)
		}
	case <-time.After(15 * time.Second):
		io.Copy(io.Discard, resp.Body) // let the stuck restore finish before cleanup
		t.Fatal("a restore waited for a stalled snapshot download")
	}

	rest, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	all := append(head, rest...)
	if want, _ := strconv.Atoi(resp.Header.Get("Content-Length")); len(all) != want {
		t.Fatalf("download has %d bytes, Content-Length says %d", len(all), want)
	}
	index, _, err := fsm.ReadSnapshotHeader(bytes.NewReader(all))
	if err != nil || strconv.FormatUint(index, 10) != resp.Header.Get("X-Shelf-Snapshot-Index") {
		t.Fatalf("download header: index %d, err %v, X-Shelf-Snapshot-Index %s", index, err, resp.Header.Get("X-Shelf-Snapshot-Index"))
	}
}

// TestLogPageBoundedByBytes: a log page stops at cluster.MaxLogPageBytes of
// entry data (but holds at least one entry), so a replica catching up on
// large records gets pages of bounded size.
func TestLogPageBoundedByBytes(t *testing.T) {
	e := newEnv(t, 0)
	blob, err := api.EncodeValue(map[string]any{"b": bytes.Repeat([]byte{7}, 900<<10)})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 12 {
		if _, err := e.cl.Create(t.Context(), "big", api.WriteRequest{Data: blob}); err != nil {
			t.Fatalf("create %d: %v", i, err)
		}
	}
	var from uint64
	seen := 0
	for seen < 12 {
		page, err := e.cl.Log(t.Context(), from, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Entries) == 0 {
			t.Fatalf("empty page from %d after %d of 12 large entries", from, seen)
		}
		size := 0
		for _, en := range page.Entries {
			size += len(en.Data)
		}
		if len(page.Entries) > 1 && size > cluster.MaxLogPageBytes {
			t.Fatalf("page from %d: %d entries, %d bytes, over %d", from, len(page.Entries), size, cluster.MaxLogPageBytes)
		}
		for _, en := range page.Entries {
			if len(en.Data) > 800<<10 {
				seen++
			}
		}
		from = page.Next
	}
}

// TestAbandonedSnapshotDownloads: downloads cut after their first bytes
// (while the node may still be copying the state for them) free their
// place: more downloads than the node serves at once, one after another,
// all start, and a whole one still restores.
func TestAbandonedSnapshotDownloads(t *testing.T) {
	e := newEnv(t, 0)
	blob, err := api.EncodeValue(map[string]any{"b": bytes.Repeat([]byte{7}, 900<<10)})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if _, err := e.cl.Create(t.Context(), "big", api.WriteRequest{Data: blob}); err != nil {
			t.Fatalf("create %d: %v", i, err)
		}
	}
	// The server notices a cut connection when it next writes: a place
	// may be busy for a moment after the client has gone.
	get := func(i int) *http.Response {
		deadline := time.Now().Add(10 * time.Second)
		for {
			resp, err := http.Get(e.srv.URL + "/v1/snapshot")
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode == http.StatusOK {
				return resp
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusServiceUnavailable || time.Now().After(deadline) {
				t.Fatalf("download %d: status %s", i, resp.Status)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	for i := range 6 {
		resp := get(i)
		if _, err := io.ReadFull(resp.Body, make([]byte, 1024)); err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	var buf bytes.Buffer
	deadline := time.Now().Add(10 * time.Second)
	for {
		buf.Reset()
		_, err := e.cl.Snapshot(t.Context(), &buf)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a whole download after abandoned ones: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := e.node.FSM().Restore(&buf); err != nil {
		t.Fatalf("restore of the whole download: %v", err)
	}
}
