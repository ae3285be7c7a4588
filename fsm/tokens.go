package fsm

import (
	"regexp"
	"sort"

	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/storage"
	bolt "go.etcd.io/bbolt"
)

// MaxTokenName bounds an API token's name.
const MaxTokenName = 64

var tokenNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]*$`)

// ValidTokenName returns nil if name can name an API token: 1 to 64
// letters, digits, '.', '_', '@' or '-', starting with a letter or digit.
func ValidTokenName(name string) error {
	if len(name) == 0 || len(name) > MaxTokenName || !tokenNameRE.MatchString(name) {
		return api.Errorf(api.CodeInvalid, "invalid token name %q: want 1-%d letters, digits, '.', '_', '@' or '-', starting with a letter or digit", name, MaxTokenName)
	}
	return nil
}

// storedToken is a token as the tokens bucket keeps it (key: its name):
// never the secret, only its hash.
type storedToken struct {
	Role    api.Role `codec:"role"`
	Client  string   `codec:"client,omitempty"`
	Hash    string   `codec:"hash"`
	Created int64    `codec:"created"`
}

func (s *storedToken) info(name string) api.TokenInfo {
	return api.TokenInfo{Name: name, Role: s.Role, Client: s.Client, Created: unixTime(s.Created)}
}

// tokenCache is the in-memory copy of the tokens bucket that requests
// are authenticated against: by hash, and by name.
type tokenCache struct {
	byHash map[string]api.TokenInfo
	byName map[string]api.TokenInfo
	list   []api.TokenInfo // by name
}

// validToken checks the fields of create-token and revoke-token that do
// not depend on the state.
func validToken(c *Command) *api.Error {
	if err := ValidTokenName(c.Name); err != nil {
		return api.Errorf(api.CodeInvalid, "%s: %v", c.Op, err)
	}
	if c.Op == OpRevokeToken {
		if c.Role != "" || c.Hash != "" || c.Client != "" {
			return api.Errorf(api.CodeInvalid, "revoke-token takes only a name")
		}
		return nil
	}
	role, err := api.ParseRole(c.Role)
	if err != nil {
		return api.Errorf(api.CodeInvalid, "create-token: %v", err)
	}
	if len(c.Hash) != 64 {
		return api.Errorf(api.CodeInvalid, "create-token: want the token's SHA-256 in hex, not %d characters", len(c.Hash))
	}
	if c.Client != "" && role != api.RoleWriter {
		return api.Errorf(api.CodeInvalid, "create-token: only a writer token is bound to a client (role %s)", role)
	}
	return nil
}

// tokens returns the tokens bucket, created on first use (states from
// before rules 3 have none).
func (t *txn) tokens() (*bolt.Bucket, error) {
	return t.tx.CreateBucketIfNotExists(storage.BucketTokens)
}

// createToken adds a token; a name in use, or a hash in use, is refused.
func (t *txn) createToken() (*Result, error) {
	c := t.c
	b, err := t.tokens()
	if err != nil {
		return nil, err
	}
	if b.Get([]byte(c.Name)) != nil {
		return reject(api.Errorf(api.CodeExists, "create-token: a token named %q exists: revoke it first", c.Name))
	}
	if c.Client != "" {
		if rej := t.knownClient(c.Client); rej != nil {
			return reject(rej)
		}
	}
	dup := false
	if err := b.ForEach(func(_, v []byte) error {
		var s storedToken
		if err := api.Unmarshal(v, &s); err != nil {
			return err
		}
		dup = dup || s.Hash == c.Hash
		return nil
	}); err != nil {
		return nil, err
	}
	if dup {
		return reject(api.Errorf(api.CodeExists, "create-token: that secret is in use by another token"))
	}
	s := storedToken{Role: api.Role(c.Role), Client: c.Client, Hash: c.Hash, Created: c.Time}
	return &Result{}, storage.Put(b, []byte(c.Name), &s)
}

// revokeToken deletes a token: requests with it are refused from the
// moment each node applies this.
func (t *txn) revokeToken() (*Result, error) {
	b, err := t.tokens()
	if err != nil {
		return nil, err
	}
	if b.Get([]byte(t.c.Name)) == nil {
		return reject(api.Errorf(api.CodeNotFound, "revoke-token: no token named %q", t.c.Name))
	}
	return &Result{}, b.Delete([]byte(t.c.Name))
}

// bindToken binds the unbound writer token Command.Token to the client
// being registered; a token already bound, or not a writer, is refused.
func (t *txn) bindToken() (*api.Error, error) {
	if rej := t.needRules(3, "register-client with a token"); rej != nil {
		return rej, nil
	}
	b, err := t.tokens()
	if err != nil {
		return nil, err
	}
	var s storedToken
	found, err := storage.Get(b, []byte(t.c.Token), &s)
	if err != nil {
		return nil, err
	}
	switch {
	case !found:
		return api.Errorf(api.CodeUnauthenticated, "register-client: token %q was revoked", t.c.Token), nil
	case s.Role != api.RoleWriter:
		return api.Errorf(api.CodeInvalid, "register-client: token %q is a %s token, not a writer", t.c.Token, s.Role), nil
	case s.Client != "":
		return api.Errorf(api.CodeForbidden, "register-client: token %q already acts as client %s: a writer token registers one client", t.c.Token, s.Client), nil
	}
	s.Client = t.c.Client
	return nil, storage.Put(b, []byte(t.c.Token), &s)
}

// loadTokens rebuilds the token cache from the state.
func loadTokens(tx *bolt.Tx) (*tokenCache, error) {
	tc := &tokenCache{byHash: map[string]api.TokenInfo{}, byName: map[string]api.TokenInfo{}}
	b := tx.Bucket(storage.BucketTokens)
	if b == nil {
		return tc, nil
	}
	err := b.ForEach(func(k, v []byte) error {
		var s storedToken
		if err := api.Unmarshal(v, &s); err != nil {
			return err
		}
		ti := s.info(string(k))
		tc.byHash[s.Hash] = ti
		tc.byName[ti.Name] = ti
		tc.list = append(tc.list, ti)
		return nil
	})
	sort.Slice(tc.list, func(i, j int) bool { return tc.list[i].Name < tc.list[j].Name })
	return tc, err
}

// TokenByHash returns the token whose SHA-256 (api.TokenHash) is hash,
// from memory: it is asked on every authenticated request.
func (f *FSM) TokenByHash(hash string) (api.TokenInfo, bool) {
	ti, ok := f.tokens.Load().byHash[hash]
	return ti, ok
}

// TokenNamed returns the token called name, from memory (a client
// certificate's common name is looked up this way).
func (f *FSM) TokenNamed(name string) (api.TokenInfo, bool) {
	ti, ok := f.tokens.Load().byName[name]
	return ti, ok
}

// Tokens returns the API tokens by name, without secrets.
func (f *FSM) Tokens() []api.TokenInfo {
	return append([]api.TokenInfo(nil), f.tokens.Load().list...)
}
