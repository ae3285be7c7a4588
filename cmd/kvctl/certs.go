package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/shelfdb/shelf/internal/tlsconf"
)

// certs runs "kvctl certs init|issue|gossip-key": an office CA, node and
// client certificates, and gossip keys, made with crypto/x509 (no openssl
// needed). It talks to no server.
func (c *cli) certs(_ context.Context, args []string) error {
	const line = "certs init|issue|gossip-key ..."
	if len(args) == 0 {
		return usagef(line, "certs: missing subcommand")
	}
	switch args[0] {
	case "-h", "-help", "--help":
		return flag.ErrHelp
	case "init":
		return c.certsInit(args[1:])
	case "issue":
		return c.certsIssue(args[1:])
	case "gossip-key":
		if _, err := c.parse(c.flagSet("certs gossip-key"), "certs gossip-key", args[1:], 0, 0); err != nil {
			return err
		}
		k, err := tlsconf.NewGossipKey()
		if err != nil {
			return err
		}
		return c.emit(map[string]string{"gossip_key": k}, func(w io.Writer) { fmt.Fprintln(w, k) })
	}
	return usagef(line, "certs: unknown subcommand %q", args[0])
}

// certsInit makes the office CA in --dir.
func (c *cli) certsInit(args []string) error {
	const line = "certs init --dir DIR [--name NAME] [--days N] [--force]"
	fs := c.flagSet("certs init")
	dir := fs.String("dir", "", "directory of the CA files")
	name := fs.String("name", "Shelf office CA", "common name of the CA")
	days := fs.Int("days", int(tlsconf.DefaultCAValidity/(24*time.Hour)), "validity in days")
	force := fs.Bool("force", false, "overwrite existing files")
	if _, err := c.parse(fs, line, args, 0, 0); err != nil {
		return err
	}
	if *dir == "" {
		return usagef(line, "certs init: --dir is required")
	}
	if *days <= 0 {
		return usagef(line, "certs init: --days must be positive")
	}
	if err := os.MkdirAll(*dir, 0o700); err != nil {
		return err
	}
	p, err := tlsconf.NewCA(*name, time.Duration(*days)*24*time.Hour)
	if err != nil {
		return err
	}
	cert, key := filepath.Join(*dir, tlsconf.CACertFile), filepath.Join(*dir, tlsconf.CAKeyFile)
	if err := tlsconf.WritePair(p, cert, key, *force); err != nil {
		return conflictIfExists(err)
	}
	return c.emit(map[string]string{"cert": cert, "key": key}, func(w io.Writer) {
		fmt.Fprintf(w, "wrote CA certificate %s and key %s (keep the key secret; give every node and client the certificate)\n", cert, key)
	})
}

// certsIssue makes a node or client certificate signed by the CA in --ca.
func (c *cli) certsIssue(args []string) error {
	const line = "certs issue --ca DIR NAME (--node --hosts H[,H...] | --client) [--out DIR] [--days N] [--force]"
	fs := c.flagSet("certs issue")
	caDir := fs.String("ca", "", "directory of the CA (certs init --dir)")
	node := fs.Bool("node", false, "a node certificate (server and client authentication)")
	client := fs.Bool("client", false, "a client certificate (client authentication)")
	hosts := fs.String("hosts", "", "IP addresses and DNS names of the node, comma-separated")
	out := fs.String("out", "", "directory of NAME.crt and NAME.key (default: the --ca directory)")
	days := fs.Int("days", int(tlsconf.DefaultCertValidity/(24*time.Hour)), "validity in days (never beyond the CA's)")
	force := fs.Bool("force", false, "overwrite existing files")
	pos, err := c.parse(fs, line, args, 1, 1)
	if err != nil {
		return err
	}
	switch {
	case *caDir == "":
		return usagef(line, "certs issue: --ca is required")
	case *node == *client:
		return usagef(line, "certs issue: give one of --node and --client")
	case *node && strings.TrimSpace(*hosts) == "":
		return usagef(line, "certs issue: --node needs --hosts: every IP and name peers and clients use to reach the node")
	case *client && *hosts != "":
		return usagef(line, "certs issue: --hosts is for --node certificates")
	case *days <= 0:
		return usagef(line, "certs issue: --days must be positive")
	case strings.ContainsAny(pos[0], `/\`) || pos[0] == "." || pos[0] == "..":
		return usagef(line, "certs issue: NAME %q must not be a path", pos[0])
	}
	is, err := tlsconf.LoadIssuer(*caDir)
	if err != nil {
		return err
	}
	req := tlsconf.Request{Name: pos[0], Node: *node, Validity: time.Duration(*days) * 24 * time.Hour}
	if *hosts != "" {
		req.Hosts = strings.Split(*hosts, ",")
	}
	p, err := is.Issue(req)
	if err != nil {
		return usagef(line, "certs issue: %v", err)
	}
	dir := *out
	if dir == "" {
		dir = *caDir
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	cert, key := filepath.Join(dir, pos[0]+".crt"), filepath.Join(dir, pos[0]+".key")
	if err := tlsconf.WritePair(p, cert, key, *force); err != nil {
		return conflictIfExists(err)
	}
	kind := "client"
	if *node {
		kind = "node"
	}
	return c.emit(map[string]string{"name": pos[0], "kind": kind, "cert": cert, "key": key}, func(w io.Writer) {
		fmt.Fprintf(w, "wrote %s certificate %s and key %s\n", kind, cert, key)
	})
}

// conflictIfExists gives a refused overwrite the conflict exit code.
func conflictIfExists(err error) error {
	if errors.Is(err, tlsconf.ErrExists) {
		return existsError{err}
	}
	return err
}

// existsError is a file kvctl will not overwrite: exit code 4 (conflict).
type existsError struct{ err error }

func (e existsError) Error() string { return e.err.Error() }
func (e existsError) Unwrap() error { return e.err }
