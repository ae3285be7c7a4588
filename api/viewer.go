package api

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
)

// WhoAmI answers GET /v1/whoami: who the node takes the caller for, and
// which node and cluster answer. The route is open: it answers without a
// token too, so that a login page can check a token before using it.
type WhoAmI struct {
	// Auth is whether the node enforces tokens (kvnode -auth).
	Auth bool `json:"auth"`
	// Authenticated is whether the request's credentials name a valid
	// token; always true with auth off (everyone may do everything).
	Authenticated bool `json:"authenticated"`
	// Name is the token's name ("" when not authenticated, or auth off).
	Name string `json:"name"`
	// Role is the token's role; admin with auth off; "" when not
	// authenticated.
	Role Role `json:"role"`
	// Client is the client a writer token is bound to ("" for none).
	Client string `json:"client"`
	// Node is the id of the answering node.
	Node string `json:"node"`
	// Cluster is the cluster id ("" before the first leader set it).
	Cluster string `json:"cluster"`
	// Reason says why credentials that were sent were not accepted
	// (unknown or revoked token, malformed header); absent otherwise.
	Reason string `json:"reason,omitempty"`
}

// Search operators of SearchQuery.Op.
const (
	SearchEq       = "eq"       // equal (numbers by value: 3 equals 3.0)
	SearchPrefix   = "prefix"   // a string field starts with the value
	SearchContains = "contains" // a string field holds the value, or an array field holds an element equal to it
	SearchLt       = "lt"       // less than: numbers numerically, strings lexically, times in time order
	SearchGt       = "gt"       // greater than, likewise
)

// Search limits (GET /v1/trees/{tree}/search).
const (
	DefaultSearchLimit = 50
	MaxSearchLimit     = 1000
	MaxSearchOffset    = 100_000
	DefaultSearchScan  = 100_000
	MaxSearchScan      = 1_000_000
)

// SearchQuery is a search of one tree's records by a field's value
// (docs/http-api.md, "Search"). The node has no secondary indexes: a
// search scans the tree in key order, up to Scan records.
type SearchQuery struct {
	// Field is a dot path into the record's value ("name", "dims.w",
	// "lots.0.code": a number indexes an array); "" matches any top-level
	// field; "id" is the record id (the key), not a value field. With
	// Field and Value both "", every record matches (to sort and page a
	// whole tree).
	Field string
	// Op is SearchEq (the default when ""), SearchPrefix, SearchContains,
	// SearchLt or SearchGt.
	Op string
	// Value is what the field is compared with: parsed as JSON when it
	// parses (3, true, "3", {"a":1}), else taken as a string.
	Value string
	// Sort is a dot path to sort the matches by ("id": by key; "": key
	// order); Desc reverses it.
	Sort string
	Desc bool
	// Limit is the page size (0: DefaultSearchLimit; at most
	// MaxSearchLimit), Offset how many matches to skip first.
	Limit, Offset int
	// Scan bounds the records examined (0: DefaultSearchScan; at most
	// MaxSearchScan); the result says Truncated when the tree goes on.
	Scan int
	// Revisions includes every stored revision of an id (released ones
	// before the latest); without it only the latest revision of each id
	// is searched. On the wire: released=1.
	Revisions bool
}

// SearchResult answers a search: one page of the matching records (in
// the asked order), how many matched in all, how many records were
// examined, and whether the scan stopped at its bound before the tree's
// end (then Total counts the matches among the records examined only).
type SearchResult struct {
	Records   []Record `json:"records"`
	Total     int      `json:"total"`
	Scanned   int      `json:"scanned"`
	Truncated bool     `json:"truncated"`
}

// WhoAmI asks the node who it takes this client's token for.
func (c *Client) WhoAmI(ctx context.Context) (WhoAmI, error) {
	return call[WhoAmI](ctx, c, http.MethodGet, "/v1/whoami", nil, nil)
}

// Search searches a tree's records by a field's value (SearchQuery). The
// records' values are in Record.Data as CBOR.
func (c *Client) Search(ctx context.Context, tree string, q SearchQuery) (SearchResult, error) {
	v := url.Values{}
	if q.Field != "" || q.Value != "" {
		v.Set("field", q.Field)
		v.Set("value", q.Value)
	}
	if q.Op != "" {
		v.Set("op", q.Op)
	}
	if q.Sort != "" {
		v.Set("sort", q.Sort)
	}
	if q.Desc {
		v.Set("desc", "1")
	}
	if q.Limit != 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	if q.Offset != 0 {
		v.Set("offset", strconv.Itoa(q.Offset))
	}
	if q.Scan != 0 {
		v.Set("scan", strconv.Itoa(q.Scan))
	}
	if q.Revisions {
		v.Set("released", "1")
	}
	res, err := call[SearchResult](ctx, c, http.MethodGet, urlPath("v1", "trees", tree, "search"), v, nil)
	if res.Records == nil {
		res.Records = []Record{}
	}
	return res, err
}
