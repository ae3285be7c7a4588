package client

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/shelfdb/shelf/api"
)

// RegisterSchema registers a schema definition (CBOR, as package typed
// makes them) for the tree and returns its version. A definition the
// replica already holds (the same bytes, registered by any client) is
// found locally, offline too; a new one needs the cluster, which refuses
// a change incompatible with the tree's earlier versions
// (api.ErrIncompatible, naming the field and both types).
func (t *Tree) RegisterSchema(ctx context.Context, def []byte) (uint32, error) {
	sum := sha256.Sum256(def)
	hash := hex.EncodeToString(sum[:])
	ss, err := t.Schemas()
	if err != nil && !errors.Is(err, api.ErrTreeNotFound) {
		return 0, err
	}
	for _, s := range ss {
		if s.Hash == hash {
			return s.Version, nil
		}
	}
	if !t.db.Online() {
		return 0, fmt.Errorf("register a new schema for tree %q: %w", t.name, ErrOffline)
	}
	var res api.WriteResult
	err = t.db.once(ctx, func(ctx context.Context, c *api.Client) error {
		var err error
		res, err = c.RegisterSchema(ctx, t.name, def)
		return err
	})
	if err != nil {
		var apiErr *api.Error
		if !errors.As(err, &apiErr) {
			return 0, fmt.Errorf("register a new schema for tree %q: %w: %w", t.name, ErrOffline, err)
		}
		return 0, err
	}
	return res.Version, t.db.replica.WaitApplied(ctx, res.Index)
}
