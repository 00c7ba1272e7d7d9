// Package sitekey seals secrets for one satellite: each site has an X25519
// key pair whose private half never leaves the satellite's disk, and iam
// seals the SCRAM credential of a cluster-scoped API key to the public half
// of the cluster's site (HPKE, RFC 9180). Every service in between carries
// the sealed bytes without being able to use them.
package sitekey

import (
	"crypto/ecdh"
	"crypto/hpke"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/mothership-dev/mothership/internal/runtime/atomicfile"
)

// suite is the HPKE suite: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256,
// ChaCha20-Poly1305.
var (
	kdf  = hpke.HKDFSHA256()
	aead = hpke.ChaCha20Poly1305()
)

// PrivateKey is a satellite's key.
type PrivateKey struct{ k *ecdh.PrivateKey }

// Public returns the public half, as sealers are given it.
func (p PrivateKey) Public() []byte { return p.k.PublicKey().Bytes() }

// Generate returns a new key.
func Generate() (PrivateKey, error) {
	k, err := ecdh.X25519().GenerateKey(rand.Reader)
	return PrivateKey{k}, err
}

// LoadOrCreate reads the key kept in dir, creating it on first use.
func LoadOrCreate(dir string) (PrivateKey, error) {
	path := filepath.Join(dir, "site.key")
	b, err := os.ReadFile(path)
	if err == nil {
		raw, err := hex.DecodeString(strings.TrimSpace(string(b)))
		if err != nil {
			return PrivateKey{}, fmt.Errorf("sitekey: %s: %w", path, err)
		}
		k, err := ecdh.X25519().NewPrivateKey(raw)
		if err != nil {
			return PrivateKey{}, fmt.Errorf("sitekey: %s: %w", path, err)
		}
		return PrivateKey{k}, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return PrivateKey{}, fmt.Errorf("sitekey: %w", err)
	}
	k, err := Generate()
	if err != nil {
		return PrivateKey{}, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return PrivateKey{}, fmt.Errorf("sitekey: %w", err)
	}
	if err := atomicfile.Write(path, []byte(hex.EncodeToString(k.k.Bytes())+"\n"), 0o600); err != nil {
		return PrivateKey{}, fmt.Errorf("sitekey: %w", err)
	}
	return k, nil
}

// Seal encrypts plaintext to the site whose public key is pub. info binds
// the ciphertext to its use (say, the user name it is the credential of):
// Open with another info fails.
func Seal(pub []byte, info string, plaintext []byte) ([]byte, error) {
	pk, err := ecdh.X25519().NewPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("sitekey: public key: %w", err)
	}
	hpk, err := hpke.NewDHKEMPublicKey(pk)
	if err != nil {
		return nil, fmt.Errorf("sitekey: %w", err)
	}
	return hpke.Seal(hpk, kdf, aead, []byte(info), plaintext)
}

// Open decrypts what Seal sealed to this key with the same info.
func (p PrivateKey) Open(info string, sealed []byte) ([]byte, error) {
	hk, err := hpke.NewDHKEMPrivateKey(p.k)
	if err != nil {
		return nil, fmt.Errorf("sitekey: %w", err)
	}
	out, err := hpke.Open(hk, kdf, aead, []byte(info), sealed)
	if err != nil {
		return nil, fmt.Errorf("sitekey: open: %w", err)
	}
	return out, nil
}
