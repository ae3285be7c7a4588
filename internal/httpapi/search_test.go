package httpapi_test

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/shelfdb/shelf/api"
)

// jsonSearch is a search answer as JSON.
type jsonSearch struct {
	Records []struct {
		Key   api.Key        `json:"key"`
		Value map[string]any `json:"value"`
	} `json:"records"`
	Total     int  `json:"total"`
	Scanned   int  `json:"scanned"`
	Truncated bool `json:"truncated"`
}

func (s jsonSearch) keys() string {
	var out []string
	for _, r := range s.Records {
		out = append(out, r.Key.String())
	}
	return strings.Join(out, ",")
}

// searchTree fills tree "parts" with five ids, id 1 in two revisions
// (1/1 "bolt" released, 1/2 "bolt v2" the draft):
//
//	1/2 bolt v2    qty 10   dims.w 3    tags [steel m3]  code "12"
//	2/1 bolt-long  qty 2    dims.w 5    tags [steel]
//	3/1 nut        qty -1   dims.w 3.5  tags []
//	4/1 washer     qty 100  made 2026-01-05
//	5/1 Bolt       qty 2^64-1
func searchTree(t *testing.T, e *env) {
	t.Helper()
	ctx := context.Background()
	cl, err := e.cl.RegisterClient(ctx, "ws-s")
	if err != nil {
		t.Fatal(err)
	}
	values := []string{
		`{"name":"bolt","qty":10,"dims":{"w":3,"h":1.5},"tags":["steel","m3"],"code":"12"}`,
		`{"name":"bolt-long","qty":2,"dims":{"w":5},"tags":["steel"]}`,
		`{"name":"nut","qty":-1,"dims":{"w":3.5},"tags":[]}`,
		`{"name":"washer","qty":100,"made":"2026-01-05"}`,
		`{"name":"Bolt","qty":18446744073709551615}`,
	}
	for i, v := range values {
		var res api.WriteResult
		e.json("POST", "/v1/trees/parts/records", `{"value":`+v+`}`, 201, &res)
		if res.Key.ID != uint64(i+1) {
			t.Fatalf("record %d got key %s", i+1, res.Key)
		}
	}
	k := api.Key{ID: 1, Rev: 1}
	if _, err := e.cl.Borrow(ctx, "parts", k, cl.ID, time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, err := e.cl.Release(ctx, "parts", k, cl.ID); err != nil {
		t.Fatal(err)
	}
	draft, err := e.cl.Revise(ctx, "parts", k, cl.ID)
	if err != nil || draft.Key != (api.Key{ID: 1, Rev: 2}) {
		t.Fatalf("revise: %+v %v", draft, err)
	}
	e.json("PUT", "/v1/trees/parts/records/1/2", `{"client":"`+cl.ID+`","value":{"name":"bolt v2","qty":10,"dims":{"w":3},"tags":["steel","m3"],"code":"12"}}`, 200, nil)
}

func TestSearch(t *testing.T) {
	e := newEnv(t, 0)
	searchTree(t, e)
	search := func(query string) jsonSearch {
		t.Helper()
		var s jsonSearch
		e.json("GET", "/v1/trees/parts/search?"+query, "", 200, &s)
		return s
	}
	for _, c := range []struct {
		query, keys string
		total       int
	}{
		// eq: strings exactly; numbers by value; the latest revision only
		// unless released=1.
		{"field=name&value=bolt", "", 0},
		{"field=name&value=bolt&released=1", "1/1", 1},
		{"field=name&op=eq&value=bolt%20v2", "1/2", 1},
		{"field=dims.w&value=3", "1/2", 1},
		{"field=dims.w&value=3.5", "3/1", 1},
		{"field=qty&value=18446744073709551615", "5/1", 1},
		{"field=code&value=12", "1/2", 1},       // a string field compares with the text
		{"field=code&value=%2212%22", "1/2", 1}, // "12" as a JSON string
		{"field=tags&value=%5B%22steel%22%5D", "2/1", 1},
		{"field=tags.0&value=steel", "1/2,2/1", 2}, // an array position
		{"field=nosuch&value=1", "", 0},
		// Any top-level field.
		{"value=washer", "4/1", 1},
		{"value=-1", "3/1", 1},
		// prefix and contains: strings (case-sensitive); contains also
		// finds an element of an array.
		{"field=name&op=prefix&value=bolt", "1/2,2/1", 2},
		{"field=name&op=contains&value=ol", "1/2,2/1,5/1", 3},
		{"field=tags&op=contains&value=steel", "1/2,2/1", 2},
		{"field=tags&op=contains&value=m3", "1/2", 1},
		{"field=made&op=prefix&value=2026-01", "4/1", 1},
		// lt and gt: numbers numerically (exactly for large integers),
		// strings lexically.
		{"field=qty&op=lt&value=10", "2/1,3/1", 2},
		{"field=qty&op=gt&value=10", "4/1,5/1", 2},
		{"field=qty&op=gt&value=18446744073709551614", "5/1", 1},
		{"field=qty&op=lt&value=2.5", "2/1,3/1", 2},
		{"field=name&op=lt&value=bolt", "5/1", 1},
		{"field=name&op=gt&value=o", "4/1", 1},
		{"field=made&op=gt&value=2026-01-01", "4/1", 1},
		// The record id uses the key.
		{"field=id&value=2", "2/1", 1},
		{"field=id&value=1", "1/2", 1},
		{"field=id&value=1&released=1", "1/1,1/2", 2},
		{"field=id&op=lt&value=3", "1/2,2/1", 2},
		{"field=id&op=gt&value=3", "4/1,5/1", 2},
		{"field=id&value=99", "", 0},
		// Sort, both ways; records without the sort field last.
		{"field=name&op=prefix&value=&sort=qty", "3/1,2/1,1/2,4/1,5/1", 5},
		{"field=name&op=prefix&value=&sort=qty&desc=1", "5/1,4/1,1/2,2/1,3/1", 5},
		{"field=name&op=prefix&value=&sort=name", "5/1,1/2,2/1,3/1,4/1", 5},
		{"field=name&op=prefix&value=&sort=dims.w", "1/2,3/1,2/1,4/1,5/1", 5},
		{"field=name&op=prefix&value=&sort=dims.w&desc=true", "2/1,3/1,1/2,4/1,5/1", 5},
		{"field=name&op=prefix&value=&sort=id&desc=1", "5/1,4/1,3/1,2/1,1/2", 5},
		{"field=name&op=prefix&value=&desc=1", "5/1,4/1,3/1,2/1,1/2", 5},
		// Neither field nor value: every record (to sort and page a tree).
		{"sort=name&desc=1", "4/1,3/1,2/1,1/2,5/1", 5},
		{"limit=2&offset=1", "2/1,3/1", 5},
		{"released=1", "1/1,1/2,2/1,3/1,4/1,5/1", 6},
		{"value=", "", 0}, // an empty value is a filter: any field equal to ""
		// Paging: total counts every match.
		{"field=name&op=prefix&value=&sort=qty&limit=2", "3/1,2/1", 5},
		{"field=name&op=prefix&value=&sort=qty&limit=2&offset=2", "1/2,4/1", 5},
		{"field=name&op=prefix&value=&sort=qty&limit=2&offset=4", "5/1", 5},
		{"field=name&op=prefix&value=&offset=9", "", 5},
	} {
		s := search(c.query)
		if s.keys() != c.keys || s.Total != c.total || s.Truncated {
			t.Errorf("search %s: keys %q total %d truncated %v, want %q total %d", c.query, s.keys(), s.Total, s.Truncated, c.keys, c.total)
		}
	}

	// GET /v1/trees counts stored revisions: 5 ids, id 1 in two.
	var trees []api.Tree
	e.json("GET", "/v1/trees", "", 200, &trees)
	if len(trees) != 1 || trees[0].Records != 6 {
		t.Fatalf("trees %+v, want parts with 6 records (revisions)", trees)
	}

	// The answer: records as GET .../records gives them, with their values.
	s := search("field=name&value=washer")
	if len(s.Records) != 1 || s.Records[0].Value["name"] != "washer" || s.Scanned != 6 {
		t.Fatalf("search answer %+v", s)
	}
	raw := e.json("GET", "/v1/trees/parts/search?field=name&value=nut", "", 200, nil)
	for _, want := range []string{`"records":[{"tree":"parts","key":{"id":3,"rev":1}`, `"value":{`, `"total":1`, `"scanned":6`, `"truncated":false`} {
		if !strings.Contains(string(raw), want) {
			t.Errorf("search answer %s lacks %s", raw, want)
		}
	}

	// The scan bound: scanned says how far it went, truncated that the
	// tree goes on; a bound that reaches the tree's end truncates nothing.
	s = search("field=name&op=prefix&value=b&scan=3")
	if s.Scanned != 3 || !s.Truncated || s.keys() != "1/2,2/1" || s.Total != 2 {
		t.Fatalf("scan=3: %+v keys %s", s, s.keys())
	}
	s = search("field=name&op=prefix&value=b&scan=2")
	if s.Scanned != 2 || !s.Truncated || s.keys() != "1/2" {
		t.Fatalf("scan=2: %+v keys %s", s, s.keys())
	}
	s = search("field=name&op=prefix&value=b&scan=6")
	if s.Scanned != 6 || s.Truncated || s.Total != 2 {
		t.Fatalf("scan=6: %+v", s)
	}
	s = search("field=id&value=2")
	if s.Scanned != 1 {
		t.Fatalf("a search by id scanned %d records, want only that id's", s.Scanned)
	}

	// The Go client, in CBOR.
	res, err := e.cl.Search(context.Background(), "parts", api.SearchQuery{Field: "qty", Op: api.SearchGt, Value: "5", Sort: "qty", Desc: true, Limit: 2})
	if err != nil || res.Total != 3 || len(res.Records) != 2 || res.Records[0].Key.ID != 5 || res.Records[1].Key.ID != 4 || len(res.Records[0].Data) == 0 {
		t.Fatalf("client search: %+v %v", res, err)
	}
	res, err = e.cl.Search(context.Background(), "parts", api.SearchQuery{Field: "id", Value: "1", Revisions: true, Scan: 1})
	if err != nil || !res.Truncated || res.Scanned != 1 || len(res.Records) != 1 || res.Records[0].Key != (api.Key{ID: 1, Rev: 1}) {
		t.Fatalf("client search of every revision: %+v %v", res, err)
	}
}

func TestSearchErrors(t *testing.T) {
	e := newEnv(t, 0)
	searchTree(t, e)
	for query, want := range map[string]string{
		"op=like&value=x":                   "invalid op",
		"limit=0":                           "invalid limit",
		"limit=x":                           "invalid limit",
		"offset=-1":                         "invalid offset",
		"offset=100001":                     "over the maximum",
		"scan=0":                            "invalid scan",
		"field=a..b":                        "invalid field",
		"sort=.x":                           "invalid sort",
		"desc=maybe":                        "invalid desc",
		"released=2":                        "invalid released",
		"op=lt&value=%7B%22a%22%3A1%7D":     "not objects or arrays",
		"field=id&value=abc":                "field id",
		"field=id&value=0":                  "field id",
		"field=id&op=prefix&value=1":        "does not apply to field id",
		"consistency=sometimes&value=x":     "invalid consistency",
		"field=name&op=gt&value=x&limit=-5": "invalid limit",
	} {
		ae := e.apiErr("GET", "/v1/trees/parts/search?"+query, "", 400, api.CodeInvalid)
		if !strings.Contains(ae.Message, want) {
			t.Errorf("search %s: %q, want it to say %q", query, ae.Message, want)
		}
	}
	e.apiErr("GET", "/v1/trees/nosuch/search?value=x", "", 404, api.CodeTreeNotFound)
	e.apiErr("GET", "/v1/trees/bad%20name/search?value=x", "", 400, api.CodeInvalid)
	e.apiErr("POST", "/v1/trees/parts/search", "", 405, api.CodeMethodNotFound)
	// A limit over the maximum is capped, like the listing's.
	var s jsonSearch
	e.json("GET", "/v1/trees/parts/search?field=name&op=prefix&value=&limit=5000", "", 200, &s)
	if len(s.Records) != 5 {
		t.Fatalf("limit=5000: %d records", len(s.Records))
	}
}

// TestSearchChunks: a search longer than one read transaction's chunk
// sees every record once, the latest revisions across chunk borders.
func TestSearchChunks(t *testing.T) {
	e := newEnv(t, 0)
	ctx := context.Background()
	const n = 2500
	for start := 0; start < n; start += api.MaxBatchOps {
		var req api.BatchRequest
		for i := start; i < min(n, start+api.MaxBatchOps); i++ {
			req.Ops = append(req.Ops, api.BatchOp{Op: "create", Tree: "big", Data: mustValue(t, map[string]any{"n": i, "even": i%2 == 0})})
		}
		res, err := e.cl.Batch(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range res.Results {
			if it.Err != nil {
				t.Fatal(it.Err)
			}
		}
	}
	q := url.Values{"field": {"even"}, "value": {"true"}, "sort": {"n"}, "desc": {"1"}, "limit": {"3"}}
	var s jsonSearch
	e.json("GET", "/v1/trees/big/search?"+q.Encode(), "", 200, &s)
	if s.Total != n/2 || s.Scanned != n || s.Truncated || len(s.Records) != 3 {
		t.Fatalf("search of %d records: total %d scanned %d truncated %v, %d records", n, s.Total, s.Scanned, s.Truncated, len(s.Records))
	}
	for i, r := range s.Records {
		if want := float64(n - 2 - 2*i); r.Value["n"] != want {
			t.Errorf("record %d: n = %v, want %v", i, r.Value["n"], want)
		}
	}
	q = url.Values{"field": {"n"}, "op": {"gt"}, "value": {"1200"}, "scan": {fmt.Sprint(n - 1)}}
	e.json("GET", "/v1/trees/big/search?"+q.Encode(), "", 200, &s)
	if s.Total != n-2-1200 || s.Scanned != n-1 || !s.Truncated {
		t.Fatalf("search bounded at %d: total %d scanned %d truncated %v", n-1, s.Total, s.Scanned, s.Truncated)
	}
}

// BenchmarkSearchVsList compares a search that scans a whole tree of
// 20,000 records with reading the same tree page by page (GET
// .../records, 1000 a page): the ratio of the two is what decoding and
// matching every value costs over a listing.
func BenchmarkSearchVsList(b *testing.B) {
	e := newEnv(b, 0)
	ctx := context.Background()
	const n = 20_000
	for start := 0; start < n; start += api.MaxBatchOps {
		var req api.BatchRequest
		for i := start; i < start+api.MaxBatchOps; i++ {
			req.Ops = append(req.Ops, api.BatchOp{Op: "create", Tree: "big", Data: mustValue(b, map[string]any{
				"n": i, "name": fmt.Sprintf("part-%05d", i), "dims": map[string]any{"w": i % 97, "h": 2.5}, "tags": []any{"steel", "m3"}})})
		}
		if _, err := e.cl.Batch(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("search", func(b *testing.B) {
		for b.Loop() {
			res, err := e.cl.Search(ctx, "big", api.SearchQuery{Field: "dims.w", Op: api.SearchGt, Value: "90", Sort: "name", Desc: true})
			if err != nil || res.Scanned != n || res.Truncated {
				b.Fatalf("%+v %v", res.Total, err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/record")
	})
	b.Run("list", func(b *testing.B) {
		for b.Loop() {
			var after api.Key
			got := 0
			for {
				p, err := e.cl.List(ctx, "big", after, 1000)
				if err != nil {
					b.Fatal(err)
				}
				got += len(p.Records)
				if p.After == "" {
					break
				}
				after, _ = api.ParseKey(p.After)
			}
			if got != n {
				b.Fatalf("listed %d", got)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/record")
	})
}
