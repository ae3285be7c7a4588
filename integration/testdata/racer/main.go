// Command racer is a client process of the integration tests (built by
// TestMain as racerBin): it opens a client (package client) with its own
// replica directory, waits until the replica is synced, says so on stdout
// and then, for each round r = 1..len(keys), waits until the file go-r
// appears in the -sync directory and tries to check out the round's
// record, never returning it. Several racers started at once race for the
// same records.
//
// Stdout carries one JSON object per line: first
//
//	{"ready":true,"name":NAME,"client":ID}
//
// then one per round:
//
//	{"round":R,"key":"ID/REV","won":BOOL,"err":MESSAGE,"borrowed":BOOL}
//
// where borrowed is errors.Is(err, client.ErrBorrowed). Logs go to stderr.
// Any failure outside a checkout ends the process with exit status 1.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/client"
)

// ready is the first line a racer prints.
type ready struct {
	Ready  bool   `json:"ready"`
	Name   string `json:"name"`
	Client string `json:"client"`
}

// round is the line a racer prints per round.
type round struct {
	Round    int    `json:"round"`
	Key      string `json:"key"`
	Won      bool   `json:"won"`
	Err      string `json:"err,omitempty"`
	Borrowed bool   `json:"borrowed"`
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "racer: %v\n", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		dir      = flag.String("dir", "", "the client's replica `directory`")
		name     = flag.String("name", "", "the client's `name`")
		servers  = flag.String("servers", "", "comma-separated HTTP `addresses` of cluster nodes")
		tree     = flag.String("tree", "", "the `tree` of the records")
		keys     = flag.String("keys", "", "comma-separated record `keys` (ID/REV), one per round")
		syncDir  = flag.String("sync", "", "`directory` in which go-R files start round R")
		timeout  = flag.Duration("timeout", 2*time.Minute, "give up after this `duration`")
		poll     = flag.Duration("poll", 250*time.Microsecond, "how often to look for the next go file")
		checkout = flag.Duration("checkout-timeout", 20*time.Second, "deadline of one checkout")
	)
	flag.Parse()
	if *dir == "" || *name == "" || *servers == "" || *tree == "" || *keys == "" || *syncDir == "" {
		return errors.New("-dir, -name, -servers, -tree, -keys and -sync are required")
	}
	var ks []api.Key
	for _, s := range strings.Split(*keys, ",") {
		k, err := api.ParseKey(s)
		if err != nil {
			return err
		}
		ks = append(ks, k)
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()

	db, err := client.Open(ctx, client.Config{
		Dir:      *dir,
		Servers:  strings.Split(*servers, ","),
		Name:     *name,
		PollWait: time.Second,
		Logger:   slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		return err
	}
	defer db.Close()
	if err := db.WaitSynced(ctx); err != nil {
		return fmt.Errorf("wait synced: %w", err)
	}
	out := json.NewEncoder(os.Stdout)
	if err := out.Encode(ready{Ready: true, Name: db.Name(), Client: db.ClientID()}); err != nil {
		return err
	}
	t := db.Tree(*tree)
	for i, k := range ks {
		r := i + 1
		if err := waitFile(ctx, filepath.Join(*syncDir, "go-"+strconv.Itoa(r)), *poll); err != nil {
			return fmt.Errorf("round %d: %w", r, err)
		}
		cctx, ccancel := context.WithTimeout(ctx, *checkout)
		err := t.Checkout(cctx, k, 0)
		ccancel()
		line := round{Round: r, Key: k.String(), Won: err == nil, Borrowed: errors.Is(err, client.ErrBorrowed)}
		if err != nil {
			line.Err = err.Error()
		}
		if err := out.Encode(line); err != nil {
			return err
		}
	}
	return nil
}

// waitFile polls until path exists.
func waitFile(ctx context.Context, path string, every time.Duration) error {
	for {
		if _, err := os.Stat(path); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", path, ctx.Err())
		case <-time.After(every):
		}
	}
}
