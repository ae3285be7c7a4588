package fsm

import (
	"errors"
	"fmt"
	"testing"

	"github.com/shelfdb/shelf/api"
)

// A token is kept as its hash only, found by that hash at once after the
// create is applied, gone at once after the revoke, and still there after
// a reopen; names and secrets are unique.
func TestTokenLifecycle(t *testing.T) {
	h, _, _ := setup(t)
	secret, err := api.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	hash := api.TokenHash(secret)
	h.ok(Command{Op: OpCreateToken, Name: "ops", Role: "admin", Hash: hash})
	ti, ok := h.f.TokenByHash(hash)
	if !ok || ti.Name != "ops" || ti.Role != api.RoleAdmin || ti.Created.IsZero() {
		t.Fatalf("after create: %+v %v", ti, ok)
	}
	if _, ok := h.f.TokenByHash(api.TokenHash(secret + "x")); ok {
		t.Fatal("another secret is accepted")
	}
	h.rejects(Command{Op: OpCreateToken, Name: "ops", Role: "reader", Hash: api.TokenHash("other")}, api.ErrExists)
	h.rejects(Command{Op: OpCreateToken, Name: "ops2", Role: "reader", Hash: hash}, api.ErrExists)
	h.rejects(Command{Op: OpCreateToken, Name: "r", Role: "root", Hash: api.TokenHash("x")}, api.ErrInvalid)
	h.rejects(Command{Op: OpCreateToken, Name: "r", Role: "reader", Client: "a", Hash: api.TokenHash("x")}, api.ErrInvalid)
	h.rejects(Command{Op: OpCreateToken, Name: "w", Role: "writer", Client: "nosuch", Hash: api.TokenHash("x")}, api.ErrUnknownClient)
	h.rejects(Command{Op: OpCreateToken, Name: "bad name", Role: "reader", Hash: api.TokenHash("x")}, api.ErrInvalid)
	h.ok(Command{Op: OpCreateToken, Name: "w", Role: "writer", Client: "a", Hash: api.TokenHash("w")})
	if got := h.f.Tokens(); len(got) != 2 || got[0].Name != "ops" || got[1].Name != "w" || got[1].Client != "a" {
		t.Fatalf("tokens: %+v", got)
	}

	h.ok(Command{Op: OpRevokeToken, Name: "ops"})
	if _, ok := h.f.TokenByHash(hash); ok {
		t.Fatal("a revoked token is still found")
	}
	h.rejects(Command{Op: OpRevokeToken, Name: "ops"}, api.ErrNotFound)

	path := h.f.Path()
	h.f.Close()
	f, err := Open(Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if ti, ok := f.TokenByHash(api.TokenHash("w")); !ok || ti.Client != "a" {
		t.Fatalf("after reopen: %+v %v", ti, ok)
	}
}

// An unbound writer token is bound to the first client it registers, in
// the same command; it cannot register a second one.
func TestWriterTokenBindsOnRegister(t *testing.T) {
	h, _, _ := setup(t)
	h.ok(Command{Op: OpCreateToken, Name: "ws7", Role: "writer", Hash: api.TokenHash("s")})
	reg := Command{Op: OpRegisterClient, Client: "c7", Name: "ws-7", Token: "ws7", Session: "idem-1", Seq: 1, ReqHash: "h1"}
	h.ok(reg)
	// The registration sent again with its idempotency key (the answer
	// was lost) gets its first answer, not a refusal of a second client.
	again := reg
	again.Client = "c7-retry"
	if r := h.send(again); !r.Repeat || r.Client == nil || r.Client.ID != "c7" {
		t.Fatalf("repeat of the registration: %+v", r)
	}
	if ti, _ := h.f.TokenByHash(api.TokenHash("s")); ti.Client != "c7" {
		t.Fatalf("token after register: %+v", ti)
	}
	h.rejects(Command{Op: OpRegisterClient, Client: "c8", Name: "ws-8", Token: "ws7"}, api.ErrForbidden)
	if _, err := h.f.Client("c8"); err == nil {
		t.Fatal("the refused registration registered the client")
	}
	h.rejects(Command{Op: OpRegisterClient, Client: "c9", Name: "x", Token: "nosuch"}, api.ErrUnauthenticated)
}

// Under rules 2 the token ops are refused by every replica alike (code of
// that version does not know them); raising the rules turns them on.
func TestTokensNeedRules3(t *testing.T) {
	h, _, _ := setup(t)
	setRulesForTest(t, h.f, 2)
	r := h.rejects(Command{Op: OpCreateToken, Name: "ops", Role: "admin", Hash: api.TokenHash("s")}, api.ErrInvalid)
	if r.Err.Message == "" || !errors.Is(r.Error(), api.ErrInvalid) {
		t.Fatalf("rejection: %v", r.Err)
	}
	h.ok(Command{Op: OpSetRules, Rules: 3})
	h.ok(Command{Op: OpCreateToken, Name: "ops", Role: "admin", Hash: api.TokenHash("s")})
}

// BenchmarkTokenLookup is what authentication costs a request: hashing
// the bearer token and finding the hash among 1000 tokens.
func BenchmarkTokenLookup(b *testing.B) {
	h := newHarness(b)
	h.ok(Command{Op: OpSetCluster, Cluster: "c1"})
	var secret string
	for i := range 1000 {
		s, err := api.NewToken()
		if err != nil {
			b.Fatal(err)
		}
		h.ok(Command{Op: OpCreateToken, Name: fmt.Sprintf("t%d", i), Role: "reader", Hash: api.TokenHash(s)})
		secret = s
	}
	b.ResetTimer()
	for b.Loop() {
		if _, ok := h.f.TokenByHash(api.TokenHash(secret)); !ok {
			b.Fatal("not found")
		}
	}
}
