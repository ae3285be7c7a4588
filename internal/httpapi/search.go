package httpapi

import (
	"bytes"
	"cmp"
	"container/heap"
	"errors"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/shelfdb/shelf/api"
)

// searchChunk is how many records a search examines in one read
// transaction of the state machine: a long read transaction would hold up
// bbolt's remapping (writers stall when the file grows) and a snapshot
// restore, so a scan of a large tree goes through many short ones.
const searchChunk = 1000

// search answers GET /v1/trees/{tree}/search (docs/http-api.md, "Search"):
// a scan of the tree in key order, chunk by chunk, that keeps the keys of
// the best offset+limit matches (in the asked order) and then reads those
// records. The node has no secondary indexes; a filter on the record id
// uses the key order to scan only the ids asked for.
func (h *handler) search(w http.ResponseWriter, r *http.Request) error {
	q, err := parseSearch(r)
	if err != nil {
		return err
	}
	tree := r.PathValue("tree")
	st := h.node.FSM()
	res := api.SearchResult{Records: []api.Record{}}
	best := &hitHeap{less: q.less}
	keep := q.offset + q.limit
	push := func(c *hit) {
		res.Total++
		heap.Push(best, *c)
		if best.Len() > keep {
			heap.Pop(best)
		}
	}

	// Without revisions, a record is searched once the next key shows it
	// is the latest revision of its id: pending waits for that.
	var pending *hit
	after := q.start
	for {
		if r.Context().Err() != nil {
			return nil // the client is gone: stop scanning, answer nobody
		}
		n, chunkFull, stop := 0, false, false
		err := st.Scan(tree, after, func(rec *api.Record) (bool, error) {
			if q.pastEnd(rec.Key.ID) {
				stop = true
				return false, nil
			}
			if res.Scanned >= q.scan {
				res.Truncated, stop = true, true
				if pending != nil && pending.key.ID == rec.Key.ID {
					pending = nil // not the latest revision
				}
				return false, nil
			}
			res.Scanned++
			c := q.evaluate(rec)
			if q.revisions {
				if c.match {
					push(c)
				}
			} else {
				if pending != nil && pending.key.ID != rec.Key.ID && pending.match {
					push(pending)
				}
				pending = c
			}
			after = rec.Key
			n++
			if n >= searchChunk {
				chunkFull = true
				return false, nil
			}
			return true, nil
		})
		if err != nil {
			return err
		}
		if stop || !chunkFull {
			break
		}
	}
	if pending != nil && pending.match {
		push(pending)
	}

	hits := best.h
	slices.SortFunc(hits, func(a, b hit) int {
		switch {
		case q.less(a, b):
			return -1
		case q.less(b, a):
			return 1
		}
		return 0
	})
	if q.offset < len(hits) {
		hits = hits[q.offset:]
	} else {
		hits = nil
	}
	// The scan is not one snapshot: a record written since it was
	// examined is examined again, and left out if it no longer matches.
	for _, hh := range hits {
		rec, err := st.Get(tree, hh.key)
		if errors.Is(err, api.ErrNotFound) {
			continue // deleted since
		}
		if err != nil {
			return err
		}
		if rec.Index != hh.index && !q.evaluate(&rec).match {
			continue
		}
		res.Records = append(res.Records, rec)
	}
	h.jsonRecords(r, res.Records)
	h.write(w, r, http.StatusOK, res)
	return nil
}

// searchQuery is a parsed search request.
type searchQuery struct {
	op        string
	field     []string // nil: any top-level field
	all       bool     // neither field nor value given: every record matches
	byID      bool     // field "id": the record id
	needle    any      // the value, parsed as JSON when it parses
	text      string   // the value as text: a JSON string's contents, else as given
	when      time.Time
	hasWhen   bool // text is a time (RFC 3339 or a date)
	sort      []string
	sortID    bool // sort by key
	desc      bool
	limit     int
	offset    int
	scan      int
	revisions bool    // every revision, not only the latest of each id
	start     api.Key // the scan starts after this key
	pastEnd   func(id uint64) bool
}

// searchOps are the operators of a search.
var searchOps = map[string]bool{api.SearchEq: true, api.SearchPrefix: true, api.SearchContains: true, api.SearchLt: true, api.SearchGt: true}

// parseSearch parses and checks the query parameters of a search.
func parseSearch(r *http.Request) (*searchQuery, error) {
	qv := r.URL.Query()
	q := &searchQuery{op: qv.Get("op"), pastEnd: func(uint64) bool { return false }}
	if q.op == "" {
		q.op = api.SearchEq
	}
	if !searchOps[q.op] {
		return nil, api.Errorf(api.CodeInvalid, "invalid op %q: want eq, prefix, contains, lt or gt", q.op)
	}
	var err error
	if q.field, err = parsePath("field", qv.Get("field")); err != nil {
		return nil, err
	}
	q.byID = len(q.field) == 1 && q.field[0] == "id"
	q.all = !qv.Has("field") && !qv.Has("value")
	if q.sort, err = parsePath("sort", qv.Get("sort")); err != nil {
		return nil, err
	}
	q.sortID = len(q.sort) == 1 && q.sort[0] == "id"

	raw := qv.Get("value")
	var v any
	if api.DecodeJSON(strings.NewReader(raw), &v) == nil {
		q.needle = v
	} else {
		q.needle = raw
	}
	q.text = raw
	if s, ok := q.needle.(string); ok {
		q.text = s
	}
	q.when, q.hasWhen = parseTime(q.text)
	switch q.needle.(type) {
	case map[string]any, []any:
		if q.op != api.SearchEq && q.op != api.SearchContains {
			return nil, api.Errorf(api.CodeInvalid, "invalid value %s for op %s: it compares numbers, strings or times, not objects or arrays", short(raw), q.op)
		}
	}
	if q.byID {
		if err := q.idRange(); err != nil {
			return nil, err
		}
	}

	if q.limit, err = queryInt(r, "limit", api.DefaultSearchLimit, api.MaxSearchLimit); err != nil {
		return nil, err
	}
	if q.scan, err = queryInt(r, "scan", api.DefaultSearchScan, api.MaxSearchScan); err != nil {
		return nil, err
	}
	if s := qv.Get("offset"); s != "" {
		q.offset, err = strconv.Atoi(s)
		if err != nil || q.offset < 0 {
			return nil, api.Errorf(api.CodeInvalid, "invalid offset %q: want 0 or a positive integer", s)
		}
		if q.offset > api.MaxSearchOffset {
			return nil, api.Errorf(api.CodeInvalid, "offset %d is over the maximum of %d: narrow the search instead", q.offset, api.MaxSearchOffset)
		}
	}
	if q.desc, err = queryBool(r, "desc"); err != nil {
		return nil, err
	}
	if q.revisions, err = queryBool(r, "released"); err != nil {
		return nil, err
	}
	return q, nil
}

// idRange sets where the scan of a filter on the record id starts and ends.
func (q *searchQuery) idRange() error {
	var id uint64
	switch n := q.needle.(type) {
	case uint64:
		id = n
	case int64:
		if n > 0 {
			id = uint64(n)
		}
	}
	if id == 0 {
		return api.Errorf(api.CodeInvalid, "invalid value %q for field id: want a record id (a positive integer)", q.text)
	}
	switch q.op {
	case api.SearchEq:
		q.start = api.Key{ID: id - 1, Rev: math.MaxUint32}
		q.pastEnd = func(x uint64) bool { return x > id }
	case api.SearchLt:
		q.pastEnd = func(x uint64) bool { return x >= id }
	case api.SearchGt:
		q.start = api.Key{ID: id, Rev: math.MaxUint32}
	default:
		return api.Errorf(api.CodeInvalid, "op %s does not apply to field id: want eq, lt or gt with a record id", q.op)
	}
	return nil
}

// parsePath parses a dot path ("" gives nil).
func parsePath(name, s string) ([]string, error) {
	if s == "" {
		return nil, nil
	}
	segs := strings.Split(s, ".")
	if slices.Contains(segs, "") {
		return nil, api.Errorf(api.CodeInvalid, "invalid %s %q: want a dot path of field names such as name or dims.w (no empty segment)", name, s)
	}
	return segs, nil
}

// queryBool parses an optional boolean query parameter (1, true, 0, false).
func queryBool(r *http.Request, name string) (bool, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(s)
	if err != nil {
		return false, api.Errorf(api.CodeInvalid, "invalid %s %q: want 1 or 0 (true or false)", name, s)
	}
	return b, nil
}

// short cuts s for an error message.
func short(s string) string {
	if len(s) > 64 {
		return strconv.Quote(s[:64]) + "..."
	}
	return strconv.Quote(s)
}

// parseTime parses s as an RFC 3339 time or a date (UTC).
func parseTime(s string) (time.Time, bool) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// hit is a record examined by a search: whether it matches, and what the
// result is ordered by.
type hit struct {
	key     api.Key
	index   uint64
	match   bool
	hasSort bool // the sort path exists in the record
	sortV   any  // its value when a scalar (nil for objects and arrays)
}

// evaluate decides whether rec matches q, and takes its sort value.
func (q *searchQuery) evaluate(rec *api.Record) *hit {
	c := &hit{key: rec.Key, index: rec.Index, match: q.byID || q.all}
	needValue := !c.match || (q.sort != nil && !q.sortID)
	if !needValue {
		return c
	}
	v, err := api.DecodeValue(rec.Data)
	if err != nil {
		return &hit{key: rec.Key, index: rec.Index} // a value without a plain view matches nothing
	}
	if !q.byID && !q.all {
		if q.field == nil {
			if m, ok := v.(map[string]any); ok {
				for _, fv := range m {
					if q.matches(fv) {
						c.match = true
						break
					}
				}
			}
		} else if fv, ok := lookup(v, q.field); ok {
			c.match = q.matches(fv)
		}
	}
	if c.match && q.sort != nil && !q.sortID {
		if sv, ok := lookup(v, q.sort); ok {
			c.hasSort = true
			switch sv.(type) {
			case map[string]any, []any:
			default:
				c.sortV = sv
			}
		}
	}
	return c
}

// lookup follows path into v: map keys, and array positions for a
// segment that is a number.
func lookup(v any, path []string) (any, bool) {
	for _, seg := range path {
		switch t := v.(type) {
		case map[string]any:
			x, ok := t[seg]
			if !ok {
				return nil, false
			}
			v = x
		case []any:
			i, err := strconv.Atoi(seg)
			if err != nil || i < 0 || i >= len(t) {
				return nil, false
			}
			v = t[i]
		default:
			return nil, false
		}
	}
	return v, true
}

// matches applies q's operator to a field's value.
func (q *searchQuery) matches(v any) bool {
	switch q.op {
	case api.SearchEq:
		return q.equal(v, q.needle, true)
	case api.SearchPrefix:
		s, ok := textOf(v)
		return ok && strings.HasPrefix(s, q.text)
	case api.SearchContains:
		if arr, ok := v.([]any); ok {
			for _, e := range arr {
				if q.equal(e, q.needle, true) {
					return true
				}
			}
			return false
		}
		s, ok := textOf(v)
		return ok && strings.Contains(s, q.text)
	case api.SearchLt:
		c, ok := q.compare(v)
		return ok && c < 0
	case api.SearchGt:
		c, ok := q.compare(v)
		return ok && c > 0
	}
	return false
}

// textOf is the text a prefix or substring search looks at: a string, or
// a time as RFC 3339 (as JSON shows it).
func textOf(v any) (string, bool) {
	switch t := v.(type) {
	case string:
		return t, true
	case time.Time:
		return t.Format(time.RFC3339Nano), true
	}
	return "", false
}

// equal compares a field's value with the needle: numbers by value, a
// string with the needle's text, a time with the needle as a time,
// objects and arrays member by member. top: needle is the query's value
// (not a member of it), whose text and time are at hand.
func (q *searchQuery) equal(v, needle any, top bool) bool {
	switch t := v.(type) {
	case string:
		if s, ok := needle.(string); ok {
			return t == s
		}
		return top && t == q.text // "12" equals value=12
	case time.Time:
		if top {
			return q.hasWhen && t.Equal(q.when)
		}
		if s, ok := needle.(string); ok {
			w, ok := parseTime(s)
			return ok && t.Equal(w)
		}
		return false
	case []byte:
		s, ok := needle.(string)
		return ok && string(t) == s
	case map[string]any:
		n, ok := needle.(map[string]any)
		if !ok || len(n) != len(t) {
			return false
		}
		for k, e := range t {
			ne, ok := n[k]
			if !ok || !q.equal(e, ne, false) {
				return false
			}
		}
		return true
	case []any:
		n, ok := needle.([]any)
		if !ok || len(n) != len(t) {
			return false
		}
		for i := range t {
			if !q.equal(t[i], n[i], false) {
				return false
			}
		}
		return true
	case nil, bool:
		return v == needle
	}
	c, ok := compareNumbers(v, needle)
	return ok && c == 0
}

// compare orders a field's value against the needle: numbers
// numerically, strings lexically with the needle's text, times in time
// order; false when they do not compare.
func (q *searchQuery) compare(v any) (int, bool) {
	switch t := v.(type) {
	case string:
		return strings.Compare(t, q.text), true
	case time.Time:
		if !q.hasWhen {
			return 0, false
		}
		return t.Compare(q.when), true
	}
	return compareNumbers(v, q.needle)
}

// compareNumbers compares two numbers (int64, uint64, float32 or float64)
// by value, integers exactly; false if either is not a number or is NaN.
func compareNumbers(a, b any) (int, bool) {
	ai, aInt := asInt(a)
	bi, bInt := asInt(b)
	if aInt && bInt {
		return ai.compare(bi), true
	}
	af, aok := asFloat(a)
	bf, bok := asFloat(b)
	if !aok || !bok || math.IsNaN(af) || math.IsNaN(bf) {
		return 0, false
	}
	return cmp.Compare(af, bf), true
}

// integer is an int64 or a uint64, exactly.
type integer struct {
	neg bool   // v < 0: the value is int64(u)
	u   uint64 // the value's bits
}

func (a integer) compare(b integer) int {
	switch {
	case a.neg && !b.neg:
		return -1
	case !a.neg && b.neg:
		return 1
	case a.neg:
		return cmp.Compare(int64(a.u), int64(b.u))
	}
	return cmp.Compare(a.u, b.u)
}

func asInt(v any) (integer, bool) {
	switch t := v.(type) {
	case int64:
		return integer{neg: t < 0, u: uint64(t)}, true
	case uint64:
		return integer{u: t}, true
	}
	return integer{}, false
}

func asFloat(v any) (float64, bool) {
	switch t := v.(type) {
	case int64:
		return float64(t), true
	case uint64:
		return float64(t), true
	case float64:
		return t, true
	case float32:
		return float64(t), true
	}
	return 0, false
}

// less orders two matches as the result lists them: by key, or by the
// sort path's value (records without it last, whichever the direction;
// null, then false and true, numbers, strings, times, byte strings,
// objects and arrays; equal values by key).
func (q *searchQuery) less(a, b hit) bool {
	keyCmp := cmp.Or(cmp.Compare(a.key.ID, b.key.ID), cmp.Compare(a.key.Rev, b.key.Rev))
	if q.sort == nil || q.sortID {
		if q.desc {
			return keyCmp > 0
		}
		return keyCmp < 0
	}
	if a.hasSort != b.hasSort {
		return a.hasSort
	}
	c := compareSort(a.sortV, b.sortV)
	if q.desc {
		c = -c
	}
	if c != 0 {
		return c < 0
	}
	return keyCmp < 0
}

// sortRank orders the kinds of value of a sort.
func sortRank(v any) int {
	switch v.(type) {
	case nil:
		return 0
	case bool:
		return 1
	case int64, uint64, float32, float64:
		return 2
	case string:
		return 3
	case time.Time:
		return 4
	case []byte:
		return 5
	}
	return 6
}

// compareSort orders two sort values.
func compareSort(a, b any) int {
	ra, rb := sortRank(a), sortRank(b)
	if ra != rb {
		return cmp.Compare(ra, rb)
	}
	switch x := a.(type) {
	case bool:
		y := b.(bool)
		switch {
		case x == y:
			return 0
		case !x:
			return -1
		}
		return 1
	case string:
		return strings.Compare(x, b.(string))
	case time.Time:
		return x.Compare(b.(time.Time))
	case []byte:
		return bytes.Compare(x, b.([]byte))
	}
	if ra == 2 {
		if c, ok := compareNumbers(a, b); ok {
			return c
		}
		// NaN first among numbers, so that the order stays total.
		af, _ := asFloat(a)
		bf, _ := asFloat(b)
		return cmp.Compare(af, bf)
	}
	return 0
}

// hitHeap keeps the best matches of a search, the worst on top, so that
// the one to drop when there are too many is at hand.
type hitHeap struct {
	h    []hit
	less func(a, b hit) bool
}

func (h *hitHeap) Len() int           { return len(h.h) }
func (h *hitHeap) Less(i, j int) bool { return h.less(h.h[j], h.h[i]) }
func (h *hitHeap) Swap(i, j int)      { h.h[i], h.h[j] = h.h[j], h.h[i] }
func (h *hitHeap) Push(x any)         { h.h = append(h.h, x.(hit)) }
func (h *hitHeap) Pop() any {
	x := h.h[len(h.h)-1]
	h.h = h.h[:len(h.h)-1]
	return x
}
