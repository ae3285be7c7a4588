package httpapi_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/shelfdb/shelf/api"
)

// onlyReader hides the length of a body: the request goes chunked,
// without Content-Length.
type onlyReader struct{ io.Reader }

// TestWriteBodies: a write body is read whole whether the request
// announces its length or not, and the size limit holds either way.
func TestWriteBodies(t *testing.T) {
	e := newEnv(t, 4<<10)
	v, err := api.EncodeValue(map[string]any{"name": "R1", "note": strings.Repeat("x", 1500)})
	if err != nil {
		t.Fatal(err)
	}
	body, err := api.Marshal(api.WriteRequest{Data: v})
	if err != nil {
		t.Fatal(err)
	}
	post := func(r io.Reader) (int, []byte) {
		t.Helper()
		req, err := http.NewRequest("POST", e.srv.URL+"/v1/trees/parts/records", r)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", api.ContentCBOR)
		req.Header.Set("Accept", api.ContentCBOR)
		resp, err := e.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	for name, r := range map[string]func() io.Reader{
		"with length": func() io.Reader { return bytes.NewReader(body) },
		"chunked":     func() io.Reader { return onlyReader{bytes.NewReader(body)} },
	} {
		status, ans := post(r())
		var res api.WriteResult
		if status != http.StatusCreated || api.Unmarshal(ans, &res) != nil {
			t.Fatalf("%s: status %d: % x", name, status, ans)
		}
		rec, err := e.cl.Get(t.Context(), "parts", res.Key)
		if err != nil || !bytes.Equal(rec.Data, v) {
			t.Fatalf("%s: read back %v: % x, want % x", name, err, rec.Data, v)
		}
	}
	big, err := api.Marshal(api.WriteRequest{Data: append([]byte{0xa1, 0x61, 'n', 0x79, 0x20, 0x00}, bytes.Repeat([]byte{'x'}, 8192)...)})
	if err != nil {
		t.Fatal(err)
	}
	for name, r := range map[string]io.Reader{
		"with length": bytes.NewReader(big),
		"chunked":     onlyReader{bytes.NewReader(big)},
	} {
		status, ans := post(r)
		var ae api.Error
		if status != http.StatusRequestEntityTooLarge || api.Unmarshal(ans, &ae) != nil || ae.Code != api.CodeTooLarge {
			t.Errorf("%s: over the limit: status %d: %s", name, status, ans)
		}
	}
}

// TestMuxRedirect: a path the mux cleans is redirected as before (the
// mux's own answer, passed on), not served and not a 404.
func TestMuxRedirect(t *testing.T) {
	e := newEnv(t, 0)
	cl := e.srv.Client()
	cl.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := cl.Get(e.srv.URL + "/v1//status")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 3 || resp.Header.Get("Location") != "/v1/status" {
		t.Fatalf("status %d, Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
}

// TestTruncatedBody: a write whose body ends before its Content-Length
// (the client went away) is refused, not applied with what arrived, even
// when what arrived is a whole request.
func TestTruncatedBody(t *testing.T) {
	e := newEnv(t, 0)
	whole := `{"value":{"n":1}}`
	conn, err := net.Dial("tcp", strings.TrimPrefix(e.srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /v1/trees/parts/records HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(whole)+10, whole)
	if err := conn.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("status %d, want 400", resp.StatusCode)
	}
	if trees, err := e.cl.Trees(t.Context()); err != nil || len(trees) != 0 {
		t.Errorf("trees after a truncated create: %v, %v (want none)", trees, err)
	}
}
