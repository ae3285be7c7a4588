package main

import (
	"context"
	"errors"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shelfdb/shelf/internal/tlsconf"
)

// healthy polls kvnode -healthcheck with args and env until it succeeds,
// for at most 20 s, and returns what it printed.
func healthy(t *testing.T, args []string, env map[string]string) string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var out syncBuf
		err := run(context.Background(), append([]string{"-healthcheck"}, args...), func(k string) string { return env[k] }, &out, io.Discard)
		if err == nil {
			return out.String()
		}
		if time.Now().After(deadline) {
			t.Fatalf("kvnode -healthcheck %v: still %v after 20s", args, err)
		}
		time.Sleep(50 * time.Millisecond) // poll interval, not synchronisation
	}
}

// TestHealthcheck: kvnode -healthcheck succeeds against a serving member
// with a leader, and fails with errUnhealthy when nothing answers or a
// node with another id does.
func TestHealthcheck(t *testing.T) {
	dir := t.TempDir()
	n := startRun(t, "-id", "n1", "-data", filepath.Join(dir, "n1"), "-bootstrap", "-http", "127.0.0.1:0", "-raft", "127.0.0.1:0", "-gossip", "127.0.0.1:0", "-log-level", "warn")
	addr := n.addr(t)
	out := healthy(t, []string{"-http", addr}, nil)
	if !strings.Contains(out, "healthy: node n1 ready, leader n1") {
		t.Errorf("healthcheck printed %q", out)
	}
	// The node's own environment (SHELF_ID, SHELF_DATA...) is accepted,
	// and the id must match.
	err := run(context.Background(), []string{"-healthcheck", "-http", addr}, func(k string) string {
		return map[string]string{"SHELF_ID": "n9", "SHELF_DATA": "/nonexistent"}[k]
	}, io.Discard, io.Discard)
	if !errors.Is(err, errUnhealthy) || !strings.Contains(err.Error(), `not "n9"`) {
		t.Errorf("healthcheck of n1 as n9: %v, want unhealthy naming n9", err)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	err = run(context.Background(), []string{"-healthcheck", "-http", closed}, noEnv, io.Discard, io.Discard)
	if !errors.Is(err, errUnhealthy) || !strings.Contains(err.Error(), closed) {
		t.Errorf("healthcheck of a closed port: %v, want unhealthy naming %s", err, closed)
	}
}

// TestHealthcheckTLS: with the node's TLS variables (as in its container)
// the health check reaches a node that requires client certificates over
// HTTPS, listening on all interfaces.
func TestHealthcheckTLS(t *testing.T) {
	dir := t.TempDir()
	ca, err := tlsconf.NewCA("test office", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := tlsconf.WritePair(ca, filepath.Join(dir, tlsconf.CACertFile), filepath.Join(dir, tlsconf.CAKeyFile), false); err != nil {
		t.Fatal(err)
	}
	is, err := tlsconf.LoadIssuer(dir)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := is.Issue(tlsconf.Request{Name: "n1", Node: true, Hosts: []string{"127.0.0.1", "localhost"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := tlsconf.WritePair(pair, filepath.Join(dir, "n1.crt"), filepath.Join(dir, "n1.key"), false); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	ln.Close()
	env := map[string]string{
		"SHELF_ID": "n1", "SHELF_DATA": filepath.Join(dir, "n1"), "SHELF_BOOTSTRAP": "true",
		"SHELF_HTTP": "0.0.0.0:" + port, "SHELF_RAFT": "127.0.0.1:0", "SHELF_GOSSIP": "127.0.0.1:0",
		"SHELF_TLS_CERT": filepath.Join(dir, "n1.crt"), "SHELF_TLS_KEY": filepath.Join(dir, "n1.key"),
		"SHELF_TLS_CA": filepath.Join(dir, "ca.crt"), "SHELF_TLS_CLIENT_CA": filepath.Join(dir, "ca.crt"),
		"SHELF_LOG_LEVEL": "warn",
	}
	getenv := func(k string) string { return env[k] }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, nil, getenv, io.Discard, io.Discard) }()
	defer func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Error("kvnode did not stop")
		}
	}()
	if out := healthy(t, nil, env); !strings.Contains(out, "healthy: node n1") {
		t.Errorf("healthcheck printed %q", out)
	}
	// Without the TLS variables the plain request is refused.
	err = run(context.Background(), []string{"-healthcheck", "-http", "127.0.0.1:" + port}, noEnv, io.Discard, io.Discard)
	if !errors.Is(err, errUnhealthy) {
		t.Errorf("plain healthcheck of a TLS node: %v, want unhealthy", err)
	}
}
