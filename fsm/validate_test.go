package fsm

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/shelfdb/shelf/api"
)

// Every command Validate refuses, apply refuses alike (same code, state
// untouched): a replica that gets such an entry, from an older leader say,
// stays in step.
func TestValidateIsTheApplyRule(t *testing.T) {
	h, ra, _ := setup(t)
	good := value(t, map[string]any{"name": "R1"})
	deep := append(append([]byte{0xa1, 0x61, 'a'}, bytes.Repeat([]byte{0x81}, 100_000)...), 0)
	justDeepEnough := append(append([]byte{0xa1, 0x61, 'a'}, bytes.Repeat([]byte{0x81}, api.MaxDepth-1)...), 0)
	long := func(n int) string { return strings.Repeat("x", n) }
	key := api.Key{ID: ra.Start, Rev: 1}
	h.ok(Command{Op: OpCreate, Tree: "parts", Client: "a", Key: key, Data: justDeepEnough})
	for name, tc := range map[string]struct {
		c    Command
		want error
	}{
		"value too large":     {Command{Op: OpCreate, Tree: "parts", Data: append(good, make([]byte, DefaultMaxRecordSize)...)}, api.ErrTooLarge},
		"value too deep":      {Command{Op: OpCreate, Tree: "parts", Data: deep}, api.ErrInvalid},
		"update too deep":     {Command{Op: OpUpdate, Tree: "parts", Client: "a", Key: key, Data: deep}, api.ErrInvalid},
		"malformed value":     {Command{Op: OpCreate, Tree: "parts", Data: []byte{0xa1}}, api.ErrInvalid},
		"empty value":         {Command{Op: OpCreate, Tree: "parts"}, api.ErrInvalid},
		"bad tree":            {Command{Op: OpCreate, Tree: "a/b", Data: good}, api.ErrInvalid},
		"long tree":           {Command{Op: OpDelete, Tree: long(MaxTreeName + 1), Key: key}, api.ErrInvalid},
		"long reason":         {Command{Op: OpForceReturn, Tree: "parts", Key: key, Reason: long(MaxReason + 1)}, api.ErrInvalid},
		"data on delete":      {Command{Op: OpDelete, Tree: "parts", Client: "a", Key: key, Data: good}, api.ErrInvalid},
		"data on borrow":      {Command{Op: OpBorrow, Tree: "parts", Client: "a", Key: key, Data: good}, api.ErrInvalid},
		"nameless client":     {Command{Op: OpRegisterClient, Client: "c"}, api.ErrInvalid},
		"long client name":    {Command{Op: OpRegisterClient, Client: "c", Name: long(MaxClientName + 1)}, api.ErrInvalid},
		"long client id":      {Command{Op: OpBorrow, Tree: "parts", Client: long(MaxClientID + 1), Key: key}, api.ErrInvalid},
		"huge range":          {Command{Op: OpGrantRange, Client: "a", Size: MaxRangeSize + 1}, api.ErrInvalid},
		"negative ttl":        {Command{Op: OpBorrow, Tree: "parts", Client: "a", Key: key, TTL: -1}, api.ErrInvalid},
		"schema too deep":     {Command{Op: OpRegisterSchema, Tree: "parts", Hash: "h", Data: deep}, api.ErrInvalid},
		"schema without sum":  {Command{Op: OpRegisterSchema, Tree: "parts", Data: good}, api.ErrInvalid},
		"seq without session": {Command{Op: OpCreate, Tree: "parts", Data: good, Seq: 1}, api.ErrInvalid},
	} {
		err := h.f.Validate(&tc.c)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: Validate says %v, want %v", name, err, tc.want)
			continue
		}
		before := state(t, h.f)
		h.rejects(tc.c, tc.want)
		if after := state(t, h.f); after != before {
			t.Errorf("%s: a refused command changed the state:\n%s\nwas\n%s", name, after, before)
		}
	}
	if err := h.f.Validate(&Command{Op: OpCreate, Tree: "parts", Data: good}); err != nil {
		t.Errorf("good create: %v", err)
	}
	if err := Validate(nil, DefaultMaxRecordSize); !errors.Is(err, api.ErrInvalid) {
		t.Errorf("nil command: %v", err)
	}
}

// state sums up what a command could change: records, clients, ranges.
func state(t *testing.T, f *FSM) string {
	t.Helper()
	recs, err := f.List("parts", api.Key{}, 100)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := f.Clients()
	if err != nil {
		t.Fatal(err)
	}
	rg, err := f.Ranges("")
	if err != nil {
		t.Fatal(err)
	}
	sc, err := f.Schemas("parts")
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%+v\n%+v\n%+v\n%d schemas", recs, cl, rg, len(sc))
}

// ValidTreeName accepts exactly the names of its rule (written here as
// the regexp it replaced): 1-128 ASCII letters, digits, '.', '_', '-',
// starting with a letter or digit.
func TestValidTreeName(t *testing.T) {
	rule := regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	names := []string{"", "a", "Z9", "9", "parts", "my-tree.v2_x", ".a", "_a", "-a", "a b", "a/b", "ä", "a\x00", "a\n",
		strings.Repeat("x", MaxTreeName), strings.Repeat("x", MaxTreeName+1), "a..", "a-", "A_"}
	for c := range 256 { // every byte, alone and after a letter
		names = append(names, string([]byte{byte(c)}), string([]byte{'a', byte(c)}))
	}
	for _, n := range names {
		want := len(n) <= MaxTreeName && rule.MatchString(n)
		if got := ValidTreeName(n) == nil; got != want {
			t.Errorf("ValidTreeName(%q) ok = %v, want %v", n, got, want)
		}
	}
}
