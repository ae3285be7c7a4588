package httpapi_test

import (
	"strconv"
	"testing"

	"github.com/shelfdb/shelf/api"
)

// TestReadConsistency: every state read carries the index it was served
// at, linearizable and stale alike; min_index waits for an index the node
// has; bad parameters are refused by name.
func TestReadConsistency(t *testing.T) {
	e := newEnv(t, 0)
	var res api.WriteResult
	e.json("POST", "/v1/trees/parts/records", `{"value":{"n":1}}`, 201, &res)
	reads := []string{
		"/v1/trees", "/v1/trees/parts/schemas", "/v1/trees/parts/records",
		"/v1/trees/parts/records/" + strconv.FormatUint(res.Key.ID, 10),
		"/v1/trees/parts/records/" + strconv.FormatUint(res.Key.ID, 10) + "/1/history",
		"/v1/borrows", "/v1/clients", "/v1/ranges", "/v1/hash",
	}
	for _, p := range reads {
		for _, q := range []string{"", "?consistency=linearizable", "?consistency=stale", "?min_index=" + strconv.FormatUint(res.Index, 10)} {
			status, h, body := e.do("GET", p+q, "", "", nil)
			if status != 200 {
				t.Errorf("GET %s%s: %d %s", p, q, status, body)
				continue
			}
			idx, err := strconv.ParseUint(h.Get(api.IndexHeader), 10, 64)
			if err != nil || idx < res.Index {
				t.Errorf("GET %s%s: %s = %q, want an index >= %d", p, q, api.IndexHeader, h.Get(api.IndexHeader), res.Index)
			}
		}
	}
	ae := e.apiErr("GET", "/v1/trees?consistency=eventual", "", 400, api.CodeInvalid)
	if want := `invalid consistency "eventual"`; len(ae.Message) < len(want) || ae.Message[:len(want)] != want {
		t.Errorf("bad consistency message: %q", ae.Message)
	}
	e.apiErr("GET", "/v1/trees?min_index=x", "", 400, api.CodeInvalid)
}
