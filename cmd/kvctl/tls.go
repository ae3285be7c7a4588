package main

import (
	"crypto/tls"
	"flag"
	"fmt"
	"strings"

	"github.com/shelfdb/shelf/internal/tlsconf"
)

// tlsOptions are kvctl's TLS flags: --cacert verifies the nodes'
// certificates (nodes started with -tls-cert), --cert and --key are the
// client certificate for nodes that require one (-tls-client-ca).
type tlsOptions struct {
	files tlsconf.ClientFiles
	cfg   *tls.Config // loaded from files; nil without TLS flags
	from  tlsconf.ClientFiles
}

// tlsEnv reads the TLS flags' defaults from SHELF_CACERT, SHELF_CERT and
// SHELF_KEY.
func (c *cli) tlsEnv() {
	c.tls.files = tlsconf.ClientFiles{CA: c.getenv("SHELF_CACERT"), Cert: c.getenv("SHELF_CERT"), Key: c.getenv("SHELF_KEY")}
}

// tlsFlags adds the TLS flags to fs.
func (c *cli) tlsFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.tls.files.CA, "cacert", c.tls.files.CA, "CA file that verifies the nodes' certificates")
	fs.StringVar(&c.tls.files.Cert, "cert", c.tls.files.Cert, "client certificate file")
	fs.StringVar(&c.tls.files.Key, "key", c.tls.files.Key, "client certificate key file")
}

// loadTLS loads the files named by the TLS flags, if any.
func (c *cli) loadTLS() error {
	if c.tls.files == (tlsconf.ClientFiles{}) || (c.tls.cfg != nil && c.tls.from == c.tls.files) {
		return nil
	}
	cfg, err := tlsconf.LoadClient(c.tls.files)
	if err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	c.tls.cfg, c.tls.from = cfg, c.tls.files
	return nil
}

// withScheme returns the -s value with https:// in front of the
// addresses that name no scheme when TLS flags are given.
func (c *cli) withScheme(addrs string) string {
	if c.tls.cfg == nil {
		return addrs
	}
	parts := strings.Split(addrs, ",")
	for i, a := range parts {
		if a = strings.TrimSpace(a); a != "" && !strings.Contains(a, "://") {
			parts[i] = "https://" + a
		}
	}
	return strings.Join(parts, ",")
}
