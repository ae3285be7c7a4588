package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/internal/testserver"
)

// TestSearchOnServer runs kvctl search against a real node.
func TestSearchOnServer(t *testing.T) {
	s := testserver.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cl := api.NewClient(s.Addr, nil)
	for _, v := range []map[string]any{
		{"name": "bolt", "qty": 10, "dims": map[string]any{"w": 3}, "tags": []any{"steel"}},
		{"name": "nut", "qty": 2, "dims": map[string]any{"w": 5}},
		{"name": "washer", "qty": 40, "tags": []any{"steel", "flat"}},
	} {
		data, err := api.EncodeValue(v)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cl.Create(ctx, "parts", api.WriteRequest{Data: data}); err != nil {
			t.Fatal(err)
		}
	}

	out, errs, code := kvAt(ctx, t, s.Addr, "", "search", "parts", "dims.w", "gt", "2", "-sort", "dims.w", "-desc")
	if code != 0 {
		t.Fatalf("search: %d %s", code, errs)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "KEY") || !strings.HasPrefix(lines[1], "2/1 ") || !strings.HasPrefix(lines[2], "1/1 ") {
		t.Fatalf("search table:\n%s", out)
	}
	if errs != "2 shown of 2 matches; 3 records examined\n" {
		t.Fatalf("search stderr %q", errs)
	}

	var res api.SearchResult
	out, _, code = kvAt(ctx, t, s.Addr, "", "-o", "json", "search", "parts", "", "contains", "steel", "-limit", "1")
	if code != 0 || json.Unmarshal([]byte(out), &res) != nil || res.Total != 2 || len(res.Records) != 1 ||
		res.Records[0].Key.ID != 1 || res.Records[0].Value.(map[string]any)["name"] != "bolt" {
		t.Fatalf("search -o json:\n%s", out)
	}

	_, errs, code = kvAt(ctx, t, s.Addr, "", "search", "parts", "qty", "gt", "1", "-scan", "2")
	if code != 0 || !strings.Contains(errs, "2 records examined") || !strings.Contains(errs, "raise -scan") {
		t.Fatalf("search -scan 2: %d %q", code, errs)
	}

	// Refusals: a bad op from the server, a missing tree, a bad command line.
	_, errs, code = kvAt(ctx, t, s.Addr, "", "search", "parts", "qty", "like", "1")
	if code != exitError || !strings.Contains(errs, `invalid op "like"`) {
		t.Fatalf("search with a bad op: %d %q", code, errs)
	}
	if _, errs, code = kvAt(ctx, t, s.Addr, "", "search", "nope", "qty", "eq", "1"); code != exitNotFound {
		t.Fatalf("search of a missing tree: %d %q", code, errs)
	}
	if _, errs, code = kvAt(ctx, t, s.Addr, "", "search", "parts", "qty", "eq"); code != exitUsage || !strings.Contains(errs, "usage: kvctl search TREE FIELD OP VALUE") {
		t.Fatalf("search with 3 arguments: %d %q", code, errs)
	}
	if _, errs, code = kvAt(ctx, t, s.Addr, "", "search", "parts", "qty", "eq", "1", "-offset", "-2"); code != exitUsage {
		t.Fatalf("search -offset -2: %d %q", code, errs)
	}
}
