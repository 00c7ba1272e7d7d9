package host_test

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mothership-dev/mothership/internal/runtime/broker"
	"github.com/mothership-dev/mothership/internal/runtime/event"
	"github.com/mothership-dev/mothership/internal/runtime/host"
	"github.com/mothership-dev/mothership/internal/runtime/store"
)

// Two services on a broker that requires SASL and enforces ACLs, each on
// its own principal provisioned from its declaration: "a" owns kind x and
// reacts to y's desired topic; "b" owns kind y.
var (
	yDesired = event.Topic("y", event.Desired)
	ySASLSvc = host.Service{Name: "b", Layer: 0, Owns: []string{"y"}}
)

const saslAdmin, saslAdminPassword = "mothership-admin", "admin-secret"

// saslPair is a running a and b, and how to reach their broker.
type saslPair struct {
	seeds []string
	admin *kgo.Client
	a, b  *host.Running
}

// passwordOf is each service's password in these tests.
func passwordOf(service string) string { return "pw-" + service }

// principal returns client options that reach the pair's broker as user.
func (p *saslPair) principal(user, password string) []kgo.Opt {
	return append([]kgo.Opt{kgo.SeedBrokers(p.seeds...)}, broker.SASLOpts(user, password)...)
}

func (p *saslPair) client(t *testing.T, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// aSASLSvc is a: its reaction to y/k is to create x/k.
func aSASLSvc() host.Service {
	return host.Service{
		Name: "a", Layer: 1, Owns: []string{"x"}, ReactsTo: []string{yDesired},
		Reconcile: func(ctx context.Context, tx store.Tx, key string) error {
			if _, err := tx.ObservedGet(ctx, yDesired, key); err != nil {
				return err
			}
			if _, err := tx.ResourceGet(ctx, "x", key); !errors.Is(err, store.ErrNotFound) {
				return err
			}
			_, err := tx.ResourceCreate(ctx, store.CreateParams{Kind: "x", ID: key, Spec: []byte(`{}`)})
			return err
		},
	}
}

// startSASLPair starts the broker, provisions a and b from their
// declarations and starts them, each with only its own credential.
func startSASLPair(t *testing.T) *saslPair {
	t.Helper()
	dir := t.TempDir()
	b, err := broker.Start(broker.Config{DataDir: filepath.Join(dir, "broker"), AdminUser: saslAdmin, AdminPassword: saslAdminPassword})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	p := &saslPair{seeds: b.Addrs()}
	p.admin = p.client(t, p.principal(saslAdmin, saslAdminPassword)...)
	for _, svc := range []host.Service{ySASLSvc, aSASLSvc()} {
		if err := broker.Provision(t.Context(), p.admin, svc.Name, passwordOf(svc.Name), svc.Grants()); err != nil {
			t.Fatalf("provision %s: %v", svc.Name, err)
		}
		run, err := host.Start(t.Context(), host.Config{
			OpenStore: opener(t, "sqlite", dir), Kafka: p.principal(svc.Name, passwordOf(svc.Name)),
		}, svc)
		if err != nil {
			t.Fatalf("start %s on its own principal: %v", svc.Name, err)
		}
		t.Cleanup(func() { run.Stop() })
		if svc.Name == "a" {
			p.a = run
		} else {
			p.b = run
		}
	}
	return p
}

// reacted writes y/key in b and waits until a has reacted with x/key: b's
// relay produced to b's topic, a consumed it in its group and committed.
func (p *saslPair) reacted(t *testing.T, key string) {
	t.Helper()
	err := p.b.Store.Update(t.Context(), func(ctx context.Context, tx store.Tx) error {
		_, err := tx.ResourceCreate(ctx, store.CreateParams{Kind: "y", ID: key, Spec: []byte(`{}`)})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a reacted to b's "+key, 20*time.Second, func() (bool, string) {
		err := p.a.Store.View(t.Context(), func(ctx context.Context, tx store.Tx) error {
			_, err := tx.ResourceGet(ctx, "x", key)
			return err
		})
		return err == nil, "x/" + key + ": " + errString(err)
	})
}

func errString(err error) string {
	if err == nil {
		return "ok"
	}
	return err.Error()
}

func TestSASLServicesRunTheirPipelineEachOnItsOwnPrincipal(t *testing.T) {
	p := startSASLPair(t)
	p.reacted(t, "k1")
	// a's relay produced its own event: x/k1's desired state.
	waitFor(t, "a's relay produced to its own topic", 20*time.Second, func() (bool, string) {
		ends := endOffsets(t, p.admin, event.Topic("x", event.Desired))
		var n int64
		for _, o := range ends {
			n += o
		}
		return n > 0, "mothership.x.desired is empty"
	})
	if got := aSASLSvc().Grants(); !slices.Equal(got.Groups, []string{"a"}) || !slices.Equal(got.Consume, []string{yDesired}) ||
		!slices.Equal(got.Produce, []string{"mothership.x.desired", "mothership.x.status"}) {
		t.Errorf("a's grants = %+v", got)
	}
}

func TestSASLRefusesAServiceProducingToAnotherServicesTopic(t *testing.T) {
	p := startSASLPair(t)
	p.reacted(t, "k1") // the principals work
	a := p.client(t, p.principal("a", passwordOf("a"))...)
	err := a.ProduceSync(t.Context(), &kgo.Record{Topic: yDesired, Key: []byte("k1"), Value: []byte(`forged`)}).FirstErr()
	if !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("a producing to b's %s: got %v, want %v", yDesired, err, kerr.TopicAuthorizationFailed)
	}
	// Its own topic, on the same client, is fine.
	if err := a.ProduceSync(t.Context(), &kgo.Record{Topic: "mothership.x.status", Key: []byte("k1"), Value: []byte(`{}`)}).FirstErr(); err != nil {
		t.Fatalf("a producing to its own topic: %v", err)
	}
}

func TestSASLRefusesAWrongPassword(t *testing.T) {
	p := startSASLPair(t)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := p.client(t, p.principal("a", "not-"+passwordOf("a"))...).Ping(ctx); err == nil {
		t.Fatal("a wrong password reached the broker")
	}
	// The embedded broker drops the connection, which a client retries
	// until its context ends (Apache Kafka's SASL_AUTHENTICATION_FAILED
	// is final at once).
	ctx, cancel = context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	_, err := host.Start(ctx, host.Config{
		OpenStore: opener(t, "sqlite", t.TempDir()), Kafka: p.principal("a", "not-"+passwordOf("a")),
	}, aSASLSvc())
	if err == nil {
		t.Fatal("a service started with a wrong password")
	}
}

func TestSASLRefusesReadingATopicTheServiceDoesNotReactTo(t *testing.T) {
	p := startSASLPair(t)
	p.reacted(t, "k1")
	yStatus := event.Topic("y", event.Status)
	for name, opts := range map[string][]kgo.Opt{
		// b's status: a reacts to y's desired state only.
		"b's other topic": {kgo.ConsumeTopics(yStatus)},
		// a's own topic: it writes it, it does not react to it.
		"a's own topic": {kgo.ConsumeTopics("mothership.x.desired")},
	} {
		t.Run(name, func(t *testing.T) {
			cl := p.client(t, append(p.principal("a", passwordOf("a")), append(opts, kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)...)
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			var errs []error
			for ctx.Err() == nil && len(errs) == 0 {
				fs := cl.PollFetches(ctx)
				if len(fs.Records()) > 0 {
					t.Fatalf("a read %d records", len(fs.Records()))
				}
				for _, e := range fs.Errors() {
					if !errors.Is(e.Err, context.DeadlineExceeded) {
						errs = append(errs, e.Err)
					}
				}
			}
			if len(errs) == 0 || !errors.Is(errs[0], kerr.TopicAuthorizationFailed) {
				t.Fatalf("got %v, want %v", errs, kerr.TopicAuthorizationFailed)
			}
		})
	}
	// Nor may a join b's consumer group, or any but its own.
	cl := p.client(t, append(p.principal("a", passwordOf("a")), kgo.ConsumerGroup("b"), kgo.ConsumeTopics(yDesired))...)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	fs := cl.PollFetches(ctx)
	if len(fs.Records()) > 0 || !slices.ContainsFunc(fs.Errors(), func(e kgo.FetchError) bool { return errors.Is(e.Err, kerr.GroupAuthorizationFailed) }) {
		t.Fatalf("a in group b: read %d records, errors %v; want %v", len(fs.Records()), fs.Errors(), kerr.GroupAuthorizationFailed)
	}
}
