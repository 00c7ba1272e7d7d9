package pki_test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"

	"github.com/mothership-dev/mothership/internal/pki"
)

// TestIssueAndTrust: a CA written to files and loaded again issues a
// certificate that a client trusting only that CA accepts for the hosts it
// names, and for no other; keys are readable by their owner only.
func TestIssueAndTrust(t *testing.T) {
	dir := t.TempDir()
	ca, err := pki.NewCA("mothership test CA")
	if err != nil {
		t.Fatal(err)
	}
	caCert, caKey := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca-key.pem")
	if err := ca.Write(caCert, caKey); err != nil {
		t.Fatal(err)
	}
	// Issue with the CA as a later setup run finds it, on disk.
	loaded, err := pki.LoadCA(caCert, caKey)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := loaded.Issue("localhost", "127.0.0.1", "::1")
	if err != nil {
		t.Fatal(err)
	}
	cert, key := filepath.Join(dir, "sync.pem"), filepath.Join(dir, "sync-key.pem")
	if err := srv.Write(cert, key); err != nil {
		t.Fatal(err)
	}
	for file, want := range map[string]os.FileMode{caKey: 0o600, key: 0o600, caCert: 0o644, cert: 0o644} {
		fi, err := os.Stat(file)
		if err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v (%v), want %v", filepath.Base(file), fi.Mode().Perm(), err, want)
		}
	}

	pool, err := pki.LoadPool(caCert)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(srv.CertPEM)
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		reason string
		host   string
		ok     bool
	}{
		"dns":       {"a DNS name the certificate names", "localhost", true},
		"ipv4":      {"an address it names", "127.0.0.1", true},
		"ipv6":      {"an IPv6 address it names", "::1", true},
		"elsewhere": {"a host it does not name", "sync.example.com", false},
		"other ip":  {"an address it does not name", "10.0.0.1", false},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: tc.host, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
			if (err == nil) != tc.ok {
				t.Fatalf("%s: verify %s: %v, want ok %v", tc.reason, tc.host, err, tc.ok)
			}
		})
	}

	// The files serve a real TLS handshake.
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{pair}})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			_ = c.(*tls.Conn).Handshake()
			_ = c.Close()
		}
	}()
	conn, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: pool})
	if err != nil {
		t.Fatalf("a client trusting the CA refused the server: %v", err)
	}
	_ = conn.Close()
}

// TestRefusals: what cannot make a usable CA or certificate is refused.
func TestRefusals(t *testing.T) {
	dir := t.TempDir()
	ca, err := pki.NewCA("ca")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := ca.Issue("localhost")
	if err != nil {
		t.Fatal(err)
	}
	notCA, notCAKey := filepath.Join(dir, "srv.pem"), filepath.Join(dir, "srv-key.pem")
	if err := srv.Write(notCA, notCAKey); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty.pem")
	if err := os.WriteFile(empty, []byte("no certificate here\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		reason string
		err    func() error
	}{
		"no hosts":     {"a certificate names at least one host", func() error { _, err := ca.Issue(); return err }},
		"empty host":   {"an empty host name", func() error { _, err := ca.Issue("localhost", ""); return err }},
		"server as CA": {"a server certificate cannot issue", func() error { _, err := pki.LoadCA(notCA, notCAKey); return err }},
		"missing CA":   {"no such file", func() error { _, err := pki.LoadCA(filepath.Join(dir, "none"), notCAKey); return err }},
		"empty pool":   {"a CA file without a certificate", func() error { _, err := pki.LoadPool(empty); return err }},
	} {
		t.Run(name, func(t *testing.T) {
			if err := tc.err(); err == nil {
				t.Fatalf("%s: accepted", tc.reason)
			}
		})
	}
}
