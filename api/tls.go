package api

import (
	"crypto/tls"

	"github.com/shelfdb/shelf/internal/tlsconf"
)

// TLSFiles names the files a client needs to reach nodes that serve
// HTTPS (kvnode -tls-cert): the CA that signed the nodes' certificates,
// and a client certificate and key for nodes that require one
// (-tls-client-ca). kvctl certs makes them.
type TLSFiles struct {
	// CA verifies the nodes' certificates; the system roots if empty.
	CA string
	// Cert and Key, both or neither, are the client certificate.
	Cert, Key string
}

// Config loads the files into a TLS configuration for an http.Transport
// (or client.Config.TLS). Errors name the file and the problem.
func (f TLSFiles) Config() (*tls.Config, error) {
	return tlsconf.LoadClient(tlsconf.ClientFiles{CA: f.CA, Cert: f.Cert, Key: f.Key})
}
