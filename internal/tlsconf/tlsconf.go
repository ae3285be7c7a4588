// Package tlsconf is the one place where Shelf turns certificate, key and
// CA files into *tls.Config values (for a node's HTTP API, for the links
// between nodes, and for clients), and where it makes certificates
// (certs.go: the office CA, node and client certificates, gossip keys).
//
// Every load error names the file and what is wrong with it: missing, not
// PEM, a key that does not match its certificate, a certificate that has
// expired or is not yet valid, or one not signed by the CA it must chain
// to. The minimum protocol version is TLS 1.2; Go negotiates TLS 1.3 when
// both sides speak it.
//
// A node certificate has both server and client authentication usages (it
// serves the API and raft, and presents itself when it dials a peer); a
// client certificate has client authentication only. A peer is a cluster
// member when it presents a certificate of the cluster CA with the server
// authentication usage, that is a node certificate (see Node.CheckPeer).
package tlsconf

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"
)

// Sentinel errors, wrapped with the file name; test with errors.Is.
var (
	ErrNotPEM        = errors.New("no PEM data of the expected kind")
	ErrKeyMismatch   = errors.New("private key does not match the certificate")
	ErrExpired       = errors.New("certificate has expired")
	ErrNotYetValid   = errors.New("certificate is not valid yet")
	ErrNotSignedByCA = errors.New("certificate is not signed by the CA")
	// ErrNotPeer is the answer of Node.CheckPeer for a connection that
	// does not present a node certificate of the cluster CA.
	ErrNotPeer = errors.New("not a cluster member")
)

// MinVersion is the lowest TLS version Shelf accepts or offers.
const MinVersion = tls.VersionTLS12

// now is the clock of the validity checks (tests may move it).
var now = time.Now

// readFile reads path for what ("CA file", "certificate"), with an error
// that names both.
func readFile(what, path string) ([]byte, error) {
	if path == "" {
		return nil, fmt.Errorf("%s: no file given", what)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%s %s: file does not exist: %w", what, path, err)
		}
		return nil, fmt.Errorf("%s %s: %w", what, path, err)
	}
	return b, nil
}

// parseCerts returns the CERTIFICATE blocks of b.
func parseCerts(what, path string, b []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s %s: bad certificate: %w", what, path, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("%s %s: %w (want a PEM \"CERTIFICATE\" block)", what, path, ErrNotPEM)
	}
	return certs, nil
}

// checkValid checks c's validity period against the clock.
func checkValid(what, path string, c *x509.Certificate) error {
	t := now()
	if t.After(c.NotAfter) {
		return fmt.Errorf("%s %s (%s): %w on %s", what, path, c.Subject.CommonName, ErrExpired, c.NotAfter.UTC().Format(time.RFC3339))
	}
	if t.Before(c.NotBefore) {
		return fmt.Errorf("%s %s (%s): %w: valid from %s (is this machine's clock right?)", what, path, c.Subject.CommonName, ErrNotYetValid, c.NotBefore.UTC().Format(time.RFC3339))
	}
	return nil
}

// CA is a loaded CA file: the pool for verification and its certificates.
type CA struct {
	Path  string
	Pool  *x509.CertPool
	Certs []*x509.Certificate
}

// LoadCA loads a PEM file of one or more CA certificates.
func LoadCA(path string) (*CA, error) {
	b, err := readFile("CA file", path)
	if err != nil {
		return nil, err
	}
	certs, err := parseCerts("CA file", path, b)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	for _, c := range certs {
		if err := checkValid("CA file", path, c); err != nil {
			return nil, err
		}
		if !c.IsCA {
			return nil, fmt.Errorf("CA file %s: certificate %q is not a CA certificate (basic constraints CA:false)", path, c.Subject.CommonName)
		}
		pool.AddCert(c)
	}
	return &CA{Path: path, Pool: pool, Certs: certs}, nil
}

// LoadKeyPair loads a certificate (PEM, leaf first, then any
// intermediates) and its private key, and checks that they match and
// that the certificate is valid now. When ca is not nil the certificate
// must also chain to it, for each of usages.
func LoadKeyPair(certFile, keyFile string, ca *CA, usages ...x509.ExtKeyUsage) (tls.Certificate, error) {
	cb, err := readFile("certificate", certFile)
	if err != nil {
		return tls.Certificate{}, err
	}
	certs, err := parseCerts("certificate", certFile, cb)
	if err != nil {
		return tls.Certificate{}, err
	}
	kb, err := readFile("key", keyFile)
	if err != nil {
		return tls.Certificate{}, err
	}
	key, err := parseKey(keyFile, kb)
	if err != nil {
		return tls.Certificate{}, err
	}
	if pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(certs[0].PublicKey) {
		return tls.Certificate{}, fmt.Errorf("key %s: %w %s (%s)", keyFile, ErrKeyMismatch, certFile, certs[0].Subject.CommonName)
	}
	pair := tls.Certificate{PrivateKey: key}
	for _, c := range certs {
		pair.Certificate = append(pair.Certificate, c.Raw)
	}
	leaf := certs[0]
	pair.Leaf = leaf
	if err := checkValid("certificate", certFile, leaf); err != nil {
		return tls.Certificate{}, err
	}
	if ca != nil {
		if err := verify(leaf, certs[1:], ca.Pool, x509.ExtKeyUsageAny); err != nil {
			return tls.Certificate{}, fmt.Errorf("certificate %s (%s): %w %s: %v", certFile, leaf.Subject.CommonName, ErrNotSignedByCA, ca.Path, err)
		}
		for _, u := range usages {
			if err := verify(leaf, certs[1:], ca.Pool, u); err != nil {
				return tls.Certificate{}, fmt.Errorf("certificate %s (%s): lacks the %s usage (issue node certificates with kvctl certs issue --node): %v", certFile, leaf.Subject.CommonName, usageName(u), err)
			}
		}
	}
	return pair, nil
}

// parseKey parses a PEM private key: PKCS#8, SEC 1 (EC) or PKCS#1 (RSA).
func parseKey(path string, b []byte) (crypto.Signer, error) {
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return nil, fmt.Errorf("key %s: %w (want a PEM \"PRIVATE KEY\" block)", path, ErrNotPEM)
		}
		var (
			k   any
			err error
		)
		switch blk.Type {
		case "PRIVATE KEY":
			k, err = x509.ParsePKCS8PrivateKey(blk.Bytes)
		case "EC PRIVATE KEY":
			k, err = x509.ParseECPrivateKey(blk.Bytes)
		case "RSA PRIVATE KEY":
			k, err = x509.ParsePKCS1PrivateKey(blk.Bytes)
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("key %s: bad %s: %w", path, blk.Type, err)
		}
		s, ok := k.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("key %s: unsupported key type %T", path, k)
		}
		return s, nil
	}
}

// usageName names an extended key usage in errors.
func usageName(u x509.ExtKeyUsage) string {
	switch u {
	case x509.ExtKeyUsageServerAuth:
		return "server authentication"
	case x509.ExtKeyUsageClientAuth:
		return "client authentication"
	}
	return fmt.Sprintf("extended key usage %d", u)
}

// verify checks that leaf chains to roots for usage.
func verify(leaf *x509.Certificate, intermediates []*x509.Certificate, roots *x509.CertPool, usage x509.ExtKeyUsage) error {
	inter := x509.NewCertPool()
	for _, c := range intermediates {
		inter.AddCert(c)
	}
	_, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: now(), KeyUsages: []x509.ExtKeyUsage{usage}})
	return err
}

// NodeFiles names the TLS files of a node.
type NodeFiles struct {
	// Cert and Key are the node's certificate and key: it serves the HTTP
	// API and raft with them and presents them when it dials a peer.
	Cert, Key string
	// CA is the cluster CA: peers (raft, internal routes) must present a
	// node certificate it signed.
	CA string
	// ClientCA, when set, makes the HTTP API require a client certificate
	// signed by it (or a node certificate of CA). It may be the same file
	// as CA.
	ClientCA string
}

// Node holds the TLS configurations of a node.
type Node struct {
	// HTTPServer serves the HTTP API. Without a client CA it asks for a
	// client certificate but does not require one (peers present theirs
	// for the internal routes); with one it requires it.
	HTTPServer *tls.Config
	// PeerServer accepts raft connections: it requires a certificate of
	// the cluster CA.
	PeerServer *tls.Config
	// PeerClient dials peers (raft, and the HTTP API of the leader when
	// forwarding): it presents the node certificate and verifies the
	// peer's against the cluster CA.
	PeerClient *tls.Config

	ca *CA
}

// LoadNode loads a node's TLS files. Cert, Key and CA are required; the
// node certificate must be a node certificate (server and client usage)
// of CA.
func LoadNode(f NodeFiles) (*Node, error) {
	if f.Cert == "" || f.Key == "" || f.CA == "" {
		return nil, errors.New("TLS needs a certificate, its key and the cluster CA (-tls-cert, -tls-key, -tls-ca)")
	}
	ca, err := LoadCA(f.CA)
	if err != nil {
		return nil, err
	}
	pair, err := LoadKeyPair(f.Cert, f.Key, ca, x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth)
	if err != nil {
		return nil, err
	}
	n := &Node{ca: ca}
	n.PeerServer = &tls.Config{
		MinVersion:   MinVersion,
		Certificates: []tls.Certificate{pair},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    ca.Pool,
	}
	n.PeerClient = &tls.Config{
		MinVersion:   MinVersion,
		Certificates: []tls.Certificate{pair},
		RootCAs:      ca.Pool,
	}
	httpCAs := ca.Pool
	auth := tls.VerifyClientCertIfGiven
	if f.ClientCA != "" {
		cca, err := LoadCA(f.ClientCA)
		if err != nil {
			return nil, err
		}
		httpCAs = x509.NewCertPool()
		for _, c := range append(append([]*x509.Certificate(nil), ca.Certs...), cca.Certs...) {
			httpCAs.AddCert(c)
		}
		auth = tls.RequireAndVerifyClientCert
	}
	n.HTTPServer = &tls.Config{
		MinVersion:   MinVersion,
		Certificates: []tls.Certificate{pair},
		ClientAuth:   auth,
		ClientCAs:    httpCAs,
	}
	return n, nil
}

// Leaf returns the node's certificate.
func (n *Node) Leaf() *x509.Certificate { return n.PeerClient.Certificates[0].Leaf }

// CheckPeer reports whether a connection (an HTTP request's r.TLS)
// presents a node certificate of the cluster CA; the error, wrapping
// ErrNotPeer, says why not.
func (n *Node) CheckPeer(cs *tls.ConnectionState) error {
	if cs == nil {
		return fmt.Errorf("%w: the request did not come over TLS", ErrNotPeer)
	}
	if len(cs.PeerCertificates) == 0 {
		return fmt.Errorf("%w: no client certificate presented (a node presents its node certificate)", ErrNotPeer)
	}
	leaf := cs.PeerCertificates[0]
	if err := verify(leaf, cs.PeerCertificates[1:], n.ca.Pool, x509.ExtKeyUsageServerAuth); err != nil {
		return fmt.Errorf("%w: certificate %q is not a node certificate of the cluster CA %s: %v", ErrNotPeer, leaf.Subject.CommonName, n.ca.Path, err)
	}
	return nil
}

// ClientFiles names the TLS files of a client (kvctl, an embedded client).
type ClientFiles struct {
	// CA verifies the servers' certificates; the system roots if empty.
	CA string
	// Cert and Key, both or neither, are the client certificate the
	// client presents (for servers that require one).
	Cert, Key string
}

// LoadClient returns the TLS configuration of a client.
func LoadClient(f ClientFiles) (*tls.Config, error) {
	c := &tls.Config{MinVersion: MinVersion}
	if f.CA != "" {
		ca, err := LoadCA(f.CA)
		if err != nil {
			return nil, err
		}
		c.RootCAs = ca.Pool
	}
	switch {
	case f.Cert != "" && f.Key != "":
		pair, err := LoadKeyPair(f.Cert, f.Key, nil, x509.ExtKeyUsageClientAuth)
		if err != nil {
			return nil, err
		}
		c.Certificates = []tls.Certificate{pair}
	case f.Cert != "" || f.Key != "":
		return nil, errors.New("a client certificate needs both its certificate and its key file")
	}
	return c, nil
}
