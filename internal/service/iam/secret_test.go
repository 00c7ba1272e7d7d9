package iam

import (
	"crypto/pbkdf2"
	"crypto/sha256"
	"testing"

	"github.com/mothership-dev/mothership/internal/resource"
)

// A new key's secret is checked by its salted SHA-256, and a key hashed
// with PBKDF2 before still authenticates: no key stops working.
func TestSecretsOfEitherHashAuthenticate(t *testing.T) {
	secret, other := randomString(64, secretAlphabet), randomString(64, secretAlphabet)
	salt := randomBytes(16)
	fresh := resource.SecretHash{Algorithm: secretAlgorithm, Salt: salt, Hash: hashSecret(secret, salt)}
	legacyHash, err := pbkdf2.Key(sha256.New, secret, salt, 1000, 32)
	if err != nil {
		t.Fatal(err)
	}
	legacy := resource.SecretHash{Algorithm: legacySecretAlgorithm, Iterations: 1000, Salt: salt, Hash: legacyHash}
	for name, stored := range map[string]resource.SecretHash{"sha-256": fresh, "pbkdf2": legacy} {
		if !secretMatches(secret, stored) {
			t.Errorf("%s: the right secret was refused", name)
		}
		if secretMatches(other, stored) {
			t.Errorf("%s: another secret was accepted", name)
		}
	}
	otherSalt := fresh
	otherSalt.Salt = randomBytes(16)
	if secretMatches(secret, otherSalt) {
		t.Error("the hash does not depend on its salt")
	}
	unknown := fresh
	unknown.Algorithm = "MD5"
	if secretMatches(secret, unknown) {
		t.Error("a hash of an unknown algorithm was accepted")
	}
}
