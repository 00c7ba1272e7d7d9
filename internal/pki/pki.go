// Package pki makes the certificates of a local distributed deployment. The
// satellite link runs over TLS, but a platform team trying Mothership on
// one machine, or on a few machines of its own, has no certificate
// authority to ask: pki creates one (a self-signed CA) and issues the sync
// service's server certificate with it, for the host names and addresses
// the satellites dial. The satellites then trust that CA alone (its
// certificate file), not the system's roots. A deployment that has a CA
// of its own uses its certificates instead and needs nothing of this.
//
// Keys are ECDSA P-256, written as PKCS #8 PEM files readable by their
// owner only (0600); certificates as PEM files (0644). pki is a leaf: it
// imports nothing of Mothership.
package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/mothership-dev/mothership/internal/runtime/atomicfile"
)

// Validity of what pki issues: long, because a local setup should not
// stop working on its own; rerun the setup to renew.
const (
	CAValidity   = 10 * 365 * 24 * time.Hour
	CertValidity = 2 * 365 * 24 * time.Hour
)

// clockSkew backdates certificates, so that a machine whose clock is a
// little behind the issuer's accepts them at once.
const clockSkew = time.Hour

// KeyPair is a certificate and its private key, both PEM.
type KeyPair struct {
	CertPEM []byte
	KeyPEM  []byte
}

// Write writes the certificate to certFile (0644) and the key to keyFile
// (0600), each atomically: a crash leaves the old file or the new one.
func (kp KeyPair) Write(certFile, keyFile string) error {
	if err := atomicfile.Write(keyFile, kp.KeyPEM, 0o600); err != nil {
		return fmt.Errorf("pki: write key: %w", err)
	}
	if err := atomicfile.Write(certFile, kp.CertPEM, 0o644); err != nil {
		return fmt.Errorf("pki: write certificate: %w", err)
	}
	return nil
}

// TLSCertificate returns the pair for a tls.Config.
func (kp KeyPair) TLSCertificate() (tls.Certificate, error) {
	return tls.X509KeyPair(kp.CertPEM, kp.KeyPEM)
}

// CA is a certificate authority that issues server certificates.
type CA struct {
	KeyPair
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

// NewCA creates a self-signed CA named name, valid for CAValidity. It
// signs end certificates only (path length 0).
func NewCA(name string) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("pki: CA key: %w", err)
	}
	tmpl, err := template(name, CAValidity)
	if err != nil {
		return nil, err
	}
	tmpl.IsCA, tmpl.BasicConstraintsValid, tmpl.MaxPathLenZero = true, true, true
	tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("pki: CA certificate: %w", err)
	}
	return newCA(der, key)
}

// LoadOrCreateCA loads the CA written at certFile and keyFile, or, when
// there is none yet, creates one named name and writes it there. A CA
// that exists but cannot be read is an error, never replaced: what was
// issued with it must stay trusted.
func LoadOrCreateCA(certFile, keyFile, name string) (*CA, error) {
	if _, err := os.Stat(certFile); errors.Is(err, os.ErrNotExist) {
		ca, err := NewCA(name)
		if err != nil {
			return nil, err
		}
		if err := os.MkdirAll(filepath.Dir(certFile), 0o750); err != nil {
			return nil, fmt.Errorf("pki: %w", err)
		}
		return ca, ca.Write(certFile, keyFile)
	}
	return LoadCA(certFile, keyFile)
}

// LoadCA reads a CA written by Write, to issue more certificates with it
// (a new host, a renewal) without changing what the satellites trust.
func LoadCA(certFile, keyFile string) (*CA, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("pki: CA %s: %w", certFile, err)
	}
	key, ok := pair.PrivateKey.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("pki: CA %s: the key is not ECDSA", certFile)
	}
	ca, err := newCA(pair.Certificate[0], key)
	if err == nil && !ca.cert.IsCA {
		err = fmt.Errorf("pki: %s is not a CA certificate", certFile)
	}
	return ca, err
}

func newCA(der []byte, key *ecdsa.PrivateKey) (*CA, error) {
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("pki: CA certificate: %w", err)
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return nil, err
	}
	return &CA{KeyPair: KeyPair{CertPEM: encodeCert(der), KeyPEM: keyPEM}, cert: cert, key: key}, nil
}

// Issue issues a server certificate, valid for CertValidity, for hosts:
// DNS names ("localhost", "sync.example.internal") and IP addresses
// ("127.0.0.1", "::1"), the names the clients dial. The first host is
// also the certificate's common name.
func (ca *CA) Issue(hosts ...string) (KeyPair, error) {
	if len(hosts) == 0 {
		return KeyPair{}, errors.New("pki: a server certificate needs at least one host")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return KeyPair{}, fmt.Errorf("pki: key: %w", err)
	}
	tmpl, err := template(hosts[0], CertValidity)
	if err != nil {
		return KeyPair{}, err
	}
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		} else {
			return KeyPair{}, errors.New("pki: an empty host name")
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		return KeyPair{}, fmt.Errorf("pki: certificate for %v: %w", hosts, err)
	}
	keyPEM, err := encodeKey(key)
	return KeyPair{CertPEM: encodeCert(der), KeyPEM: keyPEM}, err
}

// LoadPool reads the CA certificate file a client trusts, for
// tls.Config.RootCAs.
func LoadPool(caFile string) (*x509.CertPool, error) {
	data, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("pki: %s holds no PEM certificate", caFile)
	}
	return pool, nil
}

func template(name string, validity time.Duration) (*x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("pki: serial: %w", err)
	}
	now := time.Now()
	return &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: name, Organization: []string{"Mothership"}},
		NotBefore:    now.Add(-clockSkew),
		NotAfter:     now.Add(validity),
	}, nil
}

func encodeCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func encodeKey(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("pki: encode key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}
