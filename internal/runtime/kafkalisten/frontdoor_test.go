package kafkalisten

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/mothership-dev/mothership/internal/pki"
	"github.com/mothership-dev/mothership/internal/runtime/kafkalisten/kcattest"
)

// testTLS makes a CA and a certificate it issued for 127.0.0.1: the
// server's TLS configuration, the client's (the CA as its only root) and
// the CA's PEM file.
func testTLS(t testing.TB) (server, client *tls.Config, caFile string) {
	t.Helper()
	ca, err := pki.NewCA("test CA")
	if err != nil {
		t.Fatal(err)
	}
	kp, err := ca.Issue("127.0.0.1", "localhost")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := kp.TLSCertificate()
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca.CertPEM)
	caFile = filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, ca.CertPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, &tls.Config{RootCAs: roots}, caFile
}

// tlsDoor starts the tenant cluster behind a TLS front door whose
// certificate a new CA issued; it returns the address, the client's TLS
// configuration and the CA's PEM file.
func tlsDoor(t testing.TB) (string, *tls.Config, string) {
	t.Helper()
	server, client, caFile := testTLS(t)
	return newTenantClusterBehind(t, FrontDoor(FrontDoorConfig{TLS: server}), client), client, caFile
}

// produceConsume produces a record to the tenant's topic and reads it back
// in a group, as the client opts make.
func produceConsume(t *testing.T, addr string, value string, opts ...kgo.Opt) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addr), kgo.ConsumerGroup("lkc-a." + value),
		kgo.ConsumeTopics(ownTopic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.RecordDeliveryTimeout(10 * time.Second)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: ownTopic, Value: []byte(value)}).FirstErr(); err != nil {
		t.Fatalf("produce %s: %v", value, err)
	}
	for got := false; !got; {
		fetches := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("%s not consumed: %v", value, err)
		}
		fetches.EachError(func(topic string, p int32, err error) { t.Fatalf("consume %s/%d: %v", topic, p, err) })
		fetches.EachRecord(func(r *kgo.Record) { got = got || string(r.Value) == value })
	}
}

// connect asks the cluster for its metadata as the client opts make, and
// returns the error of doing so.
func connect(t *testing.T, addr string, opts ...kgo.Opt) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addr), kgo.RequestRetries(0)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	_, err = cl.Request(ctx, kmsg.NewPtrMetadataRequest())
	return err
}

func TestFrontDoorTakesPlainAndScramOverTLS(t *testing.T) {
	addr, clientTLS, _ := tlsDoor(t)
	for name, mech := range map[string]sasl.Mechanism{
		"plain": plain.Auth{User: tenantUser, Pass: tenantPass}.AsMechanism(),
		"scram": scram.Auth{User: tenantUser, Pass: tenantPass}.AsSha512Mechanism(),
	} {
		t.Run(name, func(t *testing.T) {
			produceConsume(t, addr, "over-tls-"+name, kgo.DialTLSConfig(clientTLS), kgo.SASL(mech))
		})
	}
	// The tenant's ACLs still hold: authentication through the door is the
	// tenant's own, not the door's.
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DialTLSConfig(clientTLS),
		kgo.SASL(plain.Auth{User: tenantUser, Pass: tenantPass}.AsMechanism()), kgo.RecordDeliveryTimeout(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: otherTopic, Value: []byte("intrusion")}).FirstErr(); !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("produce to %s through the door: %v, want %v", otherTopic, err, kerr.TopicAuthorizationFailed)
	}
}

func TestFrontDoorAnswersAWrongSecretWithAnAuthenticationError(t *testing.T) {
	addr, clientTLS, _ := tlsDoor(t)
	for name, mech := range map[string]sasl.Mechanism{
		"plain wrong secret": plain.Auth{User: tenantUser, Pass: "wrong"}.AsMechanism(),
		"plain unknown key":  plain.Auth{User: "nobody", Pass: tenantPass}.AsMechanism(),
		"scram wrong secret": scram.Auth{User: tenantUser, Pass: "wrong"}.AsSha512Mechanism(),
		"scram unknown key":  scram.Auth{User: "nobody", Pass: tenantPass}.AsSha512Mechanism(),
	} {
		t.Run(name, func(t *testing.T) {
			err := connect(t, addr, kgo.DialTLSConfig(clientTLS), kgo.SASL(mech))
			if !errors.Is(err, kerr.SaslAuthenticationFailed) || !strings.Contains(err.Error(), "Authentication failed") {
				t.Fatalf("a refused credential: %v, want %v with its message", err, kerr.SaslAuthenticationFailed)
			}
		})
	}
	t.Run("unsupported mechanism", func(t *testing.T) {
		err := connect(t, addr, kgo.DialTLSConfig(clientTLS), kgo.SASL(scram.Auth{User: tenantUser, Pass: tenantPass}.AsSha256Mechanism()))
		if !errors.Is(err, kerr.UnsupportedSaslMechanism) {
			t.Fatalf("SCRAM-SHA-256: %v, want %v", err, kerr.UnsupportedSaslMechanism)
		}
	})
	t.Run("no TLS", func(t *testing.T) {
		if err := connect(t, addr, kgo.SASL(plain.Auth{User: tenantUser, Pass: tenantPass}.AsMechanism())); err == nil {
			t.Fatal("a plaintext client was served by a TLS front door")
		}
	})
	t.Run("TLS the client does not trust", func(t *testing.T) {
		if err := connect(t, addr, kgo.DialTLSConfig(&tls.Config{}), kgo.SASL(plain.Auth{User: tenantUser, Pass: tenantPass}.AsMechanism())); err == nil {
			t.Fatal("a client that does not trust the installation's CA connected")
		}
	})
}

// TestKcatThroughTheFrontDoor is the configuration Confluent Cloud's users
// have: SASL_SSL with PLAIN, verifying the CA, in librdkafka.
func TestKcatThroughTheFrontDoor(t *testing.T) {
	addr, _, caFile := tlsDoor(t)
	for _, mech := range Mechanisms {
		c := kcattest.Client{Addr: addr, User: tenantUser, Password: tenantPass, Protocol: "SASL_SSL", Mechanism: mech, CAFile: caFile}
		value := "kcat-" + strings.ToLower(mech)
		if _, err := kcattest.RunWith(t, c, value+"\n", "-t", ownTopic, "-P"); err != nil {
			t.Fatalf("%s: produce: %v", mech, err)
		}
		out, err := kcattest.RunWith(t, c, "", "-t", ownTopic, "-C", "-o", "beginning", "-e")
		if err != nil {
			t.Fatalf("%s: consume: %v", mech, err)
		}
		if !strings.Contains(out, value) {
			t.Fatalf("%s: consumed %q, want %s in it", mech, out, value)
		}
	}
	bad := kcattest.Client{Addr: addr, User: tenantUser, Password: "wrong", Protocol: "SASL_SSL", Mechanism: "PLAIN", CAFile: caFile}
	_, err := kcattest.RunWith(t, bad, "", "-L", "-m", "5")
	if err == nil || !strings.Contains(err.Error(), "Authentication failed") {
		t.Fatalf("kcat with a wrong secret: %v, want it to say Authentication failed", err)
	}
	t.Logf("kcat with a wrong secret: %v", err)
}

func TestScramUserIsReadFromTheClientFirstMessage(t *testing.T) {
	for msg, want := range map[string]string{
		"n,,n=KEY1,r=abc":       "KEY1",
		"n,,n=a=2Cb=3Dc,r=abc":  "a,b=c",
		"n,a=KEY1,n=KEY1,r=abc": "KEY1",
		"r=abc":                 "",
		"":                      "",
	} {
		if got := scramUser([]byte(msg)); got != want {
			t.Errorf("scramUser(%q) = %q, want %q", msg, got, want)
		}
	}
}

// TestFrontDoorBoundsFailedSignIns: a key whose secret is guessed from one
// address is refused from it, even with the right secret, once it failed
// maxFailedSignIns times; other keys are not, nor is a key the cluster
// does not know (yet: a new key is refused until it reaches the cluster,
// and its owner retrying must not be locked out).
func TestFrontDoorBoundsFailedSignIns(t *testing.T) {
	addr, clientTLS, _ := tlsDoor(t)
	signIn := func(user, pass string) error {
		return connect(t, addr, kgo.DialTLSConfig(clientTLS), kgo.SASL(plain.Auth{User: user, Pass: pass}.AsMechanism()))
	}
	locked := func(err error) bool { return err != nil && strings.Contains(err.Error(), "too many failed sign-ins") }
	for i := range 2 * maxFailedSignIns {
		if err := signIn("not-there-yet", "secret"); locked(err) || !errors.Is(err, kerr.SaslAuthenticationFailed) {
			t.Fatalf("sign-in %d of a key the cluster does not know: %v, want an ordinary authentication failure", i, err)
		}
	}
	if err := signIn(tenantUser, "guess-0"); !errors.Is(err, kerr.SaslAuthenticationFailed) || locked(err) {
		t.Fatalf("the first wrong secret: %v, want an authentication failure, not a lock-out", err)
	}
	for i := 1; ; i++ {
		err := signIn(tenantUser, fmt.Sprintf("guess-%d", i))
		if locked(err) {
			if i < maxFailedSignIns {
				t.Fatalf("locked out after %d wrong secrets, want %d", i, maxFailedSignIns)
			}
			break
		}
		if i > 3*maxFailedSignIns {
			t.Fatalf("still guessing after %d wrong secrets: %v", i, err)
		}
	}
	if err := signIn(tenantUser, tenantPass); !errors.Is(err, kerr.SaslAuthenticationFailed) || !locked(err) {
		t.Fatalf("the right secret of a locked-out key: %v, want it refused until the window ends", err)
	}
	err := connect(t, addr, kgo.DialTLSConfig(clientTLS), kgo.SASL(scram.Auth{User: tenantUser, Pass: tenantPass}.AsSha512Mechanism()))
	if !locked(err) {
		t.Fatalf("the locked-out key with SCRAM: %v, want it refused too", err)
	}
	if err := signIn("admin", "wrong"); locked(err) || !errors.Is(err, kerr.SaslAuthenticationFailed) {
		t.Fatalf("another key from the same address: %v, want an ordinary authentication failure", err)
	}
}

func TestSignInBudgetForgetsAfterItsWindow(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	b := &signInBudget{now: func() time.Time { return now }, failed: map[string]*failures{}}
	for range maxFailedSignIns {
		b.fail("KEY", "10.0.0.1")
	}
	if wait, locked := b.lockedOut("KEY", "10.0.0.1"); !locked || wait != signInWindow {
		t.Fatalf("after %d failures: locked %v for %v, want locked for %v", maxFailedSignIns, locked, wait, signInWindow)
	}
	if _, locked := b.lockedOut("KEY", "10.0.0.2"); locked {
		t.Fatal("another address is locked out too")
	}
	now = now.Add(signInWindow)
	if _, locked := b.lockedOut("KEY", "10.0.0.1"); locked {
		t.Fatal("still locked out once the window ended")
	}
}
