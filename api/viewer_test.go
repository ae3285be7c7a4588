package api

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"testing"
)

func TestClientWhoAmI(t *testing.T) {
	c := fake(t, map[string]http.HandlerFunc{
		"GET /v1/whoami": func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != "Bearer shelf_x" {
				t.Errorf("whoami without the token: %q", r.Header.Get("Authorization"))
			}
			writeCBOR(t, w, http.StatusOK, WhoAmI{Auth: true, Authenticated: true, Name: "ws-7", Role: RoleWriter, Client: "c1", Node: "n1", Cluster: "k1"})
		},
	}).WithToken("shelf_x")
	got, err := c.WhoAmI(context.Background())
	want := WhoAmI{Auth: true, Authenticated: true, Name: "ws-7", Role: RoleWriter, Client: "c1", Node: "n1", Cluster: "k1"}
	if err != nil || got != want {
		t.Fatalf("WhoAmI = %+v, %v; want %+v", got, err, want)
	}
}

func TestClientSearch(t *testing.T) {
	var query url.Values
	c := fake(t, map[string]http.HandlerFunc{
		"GET /v1/trees/{tree}/search": func(w http.ResponseWriter, r *http.Request) {
			if r.PathValue("tree") != "my/parts" {
				t.Errorf("tree %q", r.PathValue("tree"))
			}
			query = r.URL.Query()
			if query.Get("value") == "missing" {
				writeCBOR(t, w, http.StatusNotFound, Errorf(CodeTreeNotFound, "tree \"my/parts\" does not exist"))
				return
			}
			writeCBOR(t, w, http.StatusOK, SearchResult{Records: []Record{{Tree: "my/parts", Key: Key{ID: 3, Rev: 1}, Data: []byte{0xa0}}}, Total: 7, Scanned: 40, Truncated: true})
		},
	})
	ctx := context.Background()
	res, err := c.Search(ctx, "my/parts", SearchQuery{Field: "dims.w", Op: SearchGt, Value: "3", Sort: "name", Desc: true, Limit: 5, Offset: 10, Scan: 40, Revisions: true})
	if err != nil || res.Total != 7 || res.Scanned != 40 || !res.Truncated || len(res.Records) != 1 || res.Records[0].Key != (Key{ID: 3, Rev: 1}) {
		t.Fatalf("Search = %+v, %v", res, err)
	}
	want := url.Values{"field": {"dims.w"}, "op": {"gt"}, "value": {"3"}, "sort": {"name"}, "desc": {"1"}, "limit": {"5"}, "offset": {"10"}, "scan": {"40"}, "released": {"1"}}
	for k, v := range want {
		if query.Get(k) != v[0] {
			t.Errorf("query %s = %q, want %q (query %v)", k, query.Get(k), v[0], query)
		}
	}
	// The zero query sends no filter (every record) and leaves the rest
	// to the server's defaults; a value alone is searched in any field.
	if _, err := c.Search(ctx, "my/parts", SearchQuery{}); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"field", "value", "op", "sort", "desc", "limit", "offset", "scan", "released"} {
		if query.Has(k) {
			t.Errorf("zero query sends %s=%q", k, query.Get(k))
		}
	}
	if _, err := c.Search(ctx, "my/parts", SearchQuery{Value: "x"}); err != nil {
		t.Fatal(err)
	}
	if !query.Has("field") || query.Get("field") != "" || query.Get("value") != "x" {
		t.Errorf("a value alone: query %v", query)
	}
	for _, k := range []string{"op", "sort", "desc", "limit", "offset", "scan", "released"} {
		if query.Has(k) {
			t.Errorf("zero query sends %s=%q", k, query.Get(k))
		}
	}
	if _, err := c.Search(ctx, "my/parts", SearchQuery{Value: "missing"}); !errors.Is(err, ErrTreeNotFound) {
		t.Fatalf("Search of a missing tree: %v", err)
	}
}
