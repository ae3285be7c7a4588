package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"time"

	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/cluster"
	"github.com/shelfdb/shelf/fsm"
)

// adminTokenFile is where, in the data directory, the bootstrap node of
// a cluster with auth on writes the first admin token.
const adminTokenFile = "admin.token"

// bootstrapAdminToken gives a new cluster with auth on its first admin
// token: once this node leads a cluster that runs rules with tokens and
// has none, it writes a new token to path (mode 0600, never over an
// existing file) and commits its hash as token "admin". It returns when
// that is done, when the cluster has tokens already, or when ctx ends.
func bootstrapAdminToken(ctx context.Context, node *cluster.Node, path string, log *slog.Logger) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		f := node.FSM()
		switch {
		case len(f.Tokens()) > 0:
			return
		case node.IsLeader() && node.ClusterID() != "" && f.Rules() >= 3:
			err := createAdminToken(ctx, node, path)
			if err == nil {
				log.Info("kvnode: created the first admin token: use it with kvctl --token-file, then make personal tokens (kvctl tokens create) and keep or delete this file", "file", path)
				return
			}
			if errors.Is(err, fs.ErrExist) {
				log.Error("kvnode: the cluster has no token but the admin token file exists (left from another cluster?): move it away and restart to get a new one", "file", path)
				return
			}
			log.Warn("kvnode: creating the first admin token failed; trying again", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// createAdminToken writes a new admin token to path and commits it.
func createAdminToken(ctx context.Context, node *cluster.Node, path string) error {
	secret, err := api.NewToken()
	if err != nil {
		return err
	}
	fl, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("admin token file: %w", err)
	}
	_, err = fmt.Fprintln(fl, secret)
	if err == nil {
		err = fl.Sync()
	}
	if cerr := fl.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		var res *fsm.Result
		res, err = node.Apply(actx, &fsm.Command{Op: fsm.OpCreateToken, Name: "admin", Role: string(api.RoleAdmin), Hash: api.TokenHash(secret)})
		cancel()
		if err == nil {
			err = res.Error()
		}
		if _, ok := node.FSM().TokenByHash(api.TokenHash(secret)); ok {
			err = nil // committed, whatever the answer said
		}
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("admin token: %w", err)
	}
	return nil
}
