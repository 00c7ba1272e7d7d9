// Package tenanttest makes the keys a satellite driver's tests give their
// PKCs' tenants.
package tenanttest

import (
	"crypto/pbkdf2"
	"crypto/sha512"
	"testing"

	"github.com/mothership-dev/mothership/internal/resource"
	"github.com/mothership-dev/mothership/internal/sitekey"
)

// User makes a key as iam does: the SCRAM-SHA-512 credential of password,
// sealed to the satellite of site, whose key is key.
func User(tb testing.TB, key sitekey.PrivateKey, site, name, password string) resource.KafkaUser {
	tb.Helper()
	salt := []byte("0123456789abcdef")
	salted, err := pbkdf2.Key(sha512.New, password, salt, 4096, sha512.Size)
	if err != nil {
		tb.Fatal(err)
	}
	plain := resource.Encode(resource.SCRAMCredential{Mechanism: "SCRAM-SHA-512", Iterations: 4096, Salt: salt, SaltedPassword: salted})
	sealed, err := sitekey.Seal(key.Public(), resource.SCRAMInfo(name), plain)
	if err != nil {
		tb.Fatal(err)
	}
	return resource.KafkaUser{Name: name, SCRAM: resource.SealedSCRAM{Site: site, Sealed: sealed}}
}
