package tlsconf

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Defaults of the certificates kvctl certs makes.
const (
	DefaultCAValidity   = 10 * 365 * 24 * time.Hour
	DefaultCertValidity = 2 * 365 * 24 * time.Hour
	// CACertFile and CAKeyFile are the file names of the office CA in its
	// directory.
	CACertFile = "ca.crt"
	CAKeyFile  = "ca.key"
)

// ErrExists is returned when a file to write exists and overwriting was
// not asked for.
var ErrExists = errors.New("file exists (use --force to overwrite)")

// PEMPair is a certificate and its private key, PEM-encoded.
type PEMPair struct {
	Cert, Key []byte
}

// newKey makes an ECDSA P-256 key and its PKCS#8 PEM.
func newKey() (*ecdsa.PrivateKey, []byte, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, nil, fmt.Errorf("encode key: %w", err)
	}
	return k, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// serial returns a random 128-bit serial number.
func serial() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("serial number: %w", err)
	}
	return n, nil
}

// NewCA makes a self-signed CA certificate named name with an ECDSA P-256
// key, valid for validity (DefaultCAValidity when zero).
func NewCA(name string, validity time.Duration) (PEMPair, error) {
	if validity <= 0 {
		validity = DefaultCAValidity
	}
	key, keyPEM, err := newKey()
	if err != nil {
		return PEMPair{}, err
	}
	sn, err := serial()
	if err != nil {
		return PEMPair{}, err
	}
	t := now()
	tmpl := &x509.Certificate{
		SerialNumber:          sn,
		Subject:               pkix.Name{CommonName: name, Organization: []string{"Shelf"}},
		NotBefore:             t.Add(-time.Hour), // tolerate clocks a little behind
		NotAfter:              t.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return PEMPair{}, fmt.Errorf("create CA certificate: %w", err)
	}
	return PEMPair{Cert: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), Key: keyPEM}, nil
}

// Issuer signs certificates with a CA's key.
type Issuer struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

// LoadIssuer loads the CA certificate and key in dir (CACertFile,
// CAKeyFile), as kvctl certs init wrote them.
func LoadIssuer(dir string) (*Issuer, error) {
	certFile, keyFile := filepath.Join(dir, CACertFile), filepath.Join(dir, CAKeyFile)
	ca, err := LoadCA(certFile)
	if err != nil {
		return nil, err
	}
	kb, err := readFile("CA key", keyFile)
	if err != nil {
		return nil, err
	}
	k, err := parseKey(keyFile, kb)
	if err != nil {
		return nil, err
	}
	ek, ok := k.(*ecdsa.PrivateKey)
	if !ok || !ek.PublicKey.Equal(ca.Certs[0].PublicKey) {
		return nil, fmt.Errorf("CA key %s: %w %s", keyFile, ErrKeyMismatch, certFile)
	}
	return &Issuer{cert: ca.Certs[0], key: ek}, nil
}

// Request describes a certificate to issue.
type Request struct {
	// Name is the certificate's common name: the node's or client's name.
	Name string
	// Node makes a node certificate (server and client authentication;
	// Hosts required); otherwise a client certificate (client
	// authentication only).
	Node bool
	// Hosts are the IP addresses and DNS names the node is reached by (its
	// -raft and -http hosts as peers and clients dial them).
	Hosts []string
	// Validity is how long the certificate is valid; DefaultCertValidity
	// when zero. It never outlives the CA.
	Validity time.Duration
}

// Issue makes a certificate for req signed by the CA, with a new ECDSA
// P-256 key.
func (is *Issuer) Issue(req Request) (PEMPair, error) {
	if strings.TrimSpace(req.Name) == "" {
		return PEMPair{}, errors.New("certificate name is empty")
	}
	if req.Node && len(req.Hosts) == 0 {
		return PEMPair{}, errors.New("a node certificate needs the hosts peers and clients reach it by (--hosts IP,NAME,...)")
	}
	if req.Validity <= 0 {
		req.Validity = DefaultCertValidity
	}
	key, keyPEM, err := newKey()
	if err != nil {
		return PEMPair{}, err
	}
	sn, err := serial()
	if err != nil {
		return PEMPair{}, err
	}
	t := now()
	tmpl := &x509.Certificate{
		SerialNumber: sn,
		Subject:      pkix.Name{CommonName: req.Name, Organization: []string{"Shelf"}},
		NotBefore:    t.Add(-time.Hour),
		NotAfter:     t.Add(req.Validity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if tmpl.NotAfter.After(is.cert.NotAfter) {
		tmpl.NotAfter = is.cert.NotAfter
	}
	if req.Node {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	}
	for _, h := range req.Hosts {
		h = strings.TrimSpace(h)
		switch {
		case h == "":
		case net.ParseIP(h) != nil:
			tmpl.IPAddresses = append(tmpl.IPAddresses, net.ParseIP(h))
		default:
			if strings.ContainsAny(h, " :/") {
				return PEMPair{}, fmt.Errorf("host %q: want an IP address or a DNS name (no port)", h)
			}
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, is.cert, key.Public(), is.key)
	if err != nil {
		return PEMPair{}, fmt.Errorf("create certificate: %w", err)
	}
	return PEMPair{Cert: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), Key: keyPEM}, nil
}

// WritePair writes p to certFile (mode 0644) and keyFile (0600). It
// refuses, with ErrExists and before writing anything, when either exists
// and force is false.
func WritePair(p PEMPair, certFile, keyFile string, force bool) error {
	if !force {
		for _, f := range []string{certFile, keyFile} {
			if _, err := os.Lstat(f); err == nil {
				return fmt.Errorf("%s: %w", f, ErrExists)
			} else if !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("%s: %w", f, err)
			}
		}
	}
	if err := writeFile(keyFile, p.Key, 0o600); err != nil {
		return err
	}
	return writeFile(certFile, p.Cert, 0o644)
}

// writeFile writes b to path through a temporary file and a rename, so
// that a reader never sees half a file, with mode perm.
func writeFile(path string, b []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after a successful rename there is nothing to remove
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// NewGossipKey returns a new random 32-byte gossip encryption key
// (AES-256), base64-encoded as -gossip-key takes it.
func NewGossipKey() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("gossip key: %w", err)
	}
	return base64.StdEncoding.EncodeToString(b), nil
}

// ParseGossipKey decodes a base64 gossip key of 16, 24 or 32 bytes
// (AES-128, -192 or -256).
func ParseGossipKey(s string) ([]byte, error) {
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return nil, fmt.Errorf("gossip key: not base64: %w", err)
	}
	switch len(b) {
	case 16, 24, 32:
		return b, nil
	}
	return nil, fmt.Errorf("gossip key: %d bytes; want 16, 24 or 32 (make one with kvctl certs gossip-key)", len(b))
}
