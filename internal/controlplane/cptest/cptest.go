// Package cptest starts the whole system for tests, as `dev` runs it: the
// embedded broker and one SQLite file per service in a temp dir, with a fast
// simulated cloud and fast broker steps. Every package that tests against
// the real system starts it here.
package cptest

import (
	"context"
	"log/slog"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mothership-dev/mothership/internal/cloud/sim"
	"github.com/mothership-dev/mothership/internal/controlplane"
	"github.com/mothership-dev/mothership/internal/runtime/broker"
	"github.com/mothership-dev/mothership/internal/runtime/store"
	"github.com/mothership-dev/mothership/internal/runtime/store/sqlite"
)

// Broker starts an embedded broker in dir, closed when the test ends.
func Broker(tb testing.TB, dir string) []string {
	tb.Helper()
	b, err := broker.Start(broker.Config{DataDir: filepath.Join(dir, "broker")})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(b.Close)
	return b.Addrs()
}

// Start starts the system on dir and the broker at bootstrap; tune adjusts
// the defaults. It stops when the test ends (before the broker closes).
func Start(tb testing.TB, dir string, bootstrap []string, tune func(*controlplane.Config)) *controlplane.System {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	cfg := controlplane.Config{
		DataDir: dir, Listener: ln, Kafka: []kgo.Opt{kgo.SeedBrokers(bootstrap...)},
		OpenStore: func(ctx context.Context, service string, owns []string) (store.Store, error) {
			return sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(dir, service+".db"), Service: service, Owns: owns})
		},
		Cloud:           sim.Config{OperationTime: 50 * time.Millisecond},
		BrokerStepDelay: 20 * time.Millisecond,
		// Tests poll fast; the rate limit has tests of its own.
		RatePerSecond: 1e6, RateBurst: 1_000_000,
		// The gateway logs a 500's cause (and a recovered panic) at
		// error level: show it.
		Logger: slog.New(slog.NewTextHandler(tb.Output(), &slog.HandlerOptions{Level: slog.LevelError})),
	}
	if tune != nil {
		tune(&cfg)
	}
	sys, err := controlplane.Start(tb.Context(), cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = sys.Stop() })
	return sys
}

// New starts a broker and the system in a fresh temp dir.
func New(tb testing.TB, tune func(*controlplane.Config)) (*controlplane.System, string, []string) {
	tb.Helper()
	dir := tb.TempDir()
	brokers := Broker(tb, dir)
	return Start(tb, dir, brokers, tune), dir, brokers
}
