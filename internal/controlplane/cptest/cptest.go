// Package cptest starts the whole system for tests, as `dev` runs it: the
// embedded broker and one database per service, with a fast simulated
// cloud and fast broker steps. Every package that tests against the real
// system starts it here.
//
// The databases are SQLite files in the test's data dir by default
// (Start, New), or databases on the test binary's private PostgreSQL
// server (StartOn, NewOn with Postgres). A test binary that uses
// PostgreSQL calls pgtest.StopShared from its TestMain.
package cptest

import (
	"context"
	"log/slog"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mothership-dev/mothership/internal/cloud/sim"
	"github.com/mothership-dev/mothership/internal/controlplane"
	"github.com/mothership-dev/mothership/internal/runtime/broker"
	"github.com/mothership-dev/mothership/internal/runtime/store"
	"github.com/mothership-dev/mothership/internal/runtime/store/postgres"
	"github.com/mothership-dev/mothership/internal/runtime/store/postgres/pgtest"
	"github.com/mothership-dev/mothership/internal/runtime/store/sqlite"
	"github.com/mothership-dev/mothership/internal/runtime/store/storetest"
)

// Backend is the store the services of a system keep their state in.
type Backend string

const (
	// SQLite is the embedded default: one file per service in the data
	// dir.
	SQLite Backend = "sqlite"
	// Postgres is the production store: one database per service on the
	// test binary's shared pgtest server, dropped (with its replication
	// slot) when the test ends.
	Postgres Backend = "postgres"
)

// Backends lists every backend, the embedded default first.
var Backends = []Backend{SQLite, Postgres}

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

var (
	pgMu  sync.Mutex
	pgDBs = map[string]string{} // dir/service → database URL
)

// Databases returns the PostgreSQL database of each service of the system
// on dir, by service name; none on SQLite, whose files are in dir.
func Databases(dir string) map[string]string {
	pgMu.Lock()
	defer pgMu.Unlock()
	out := map[string]string{}
	for key, url := range pgDBs {
		if d, service := filepath.Split(key); d == dir+"/" {
			out[service] = url
		}
	}
	return out
}

// OpenStore opens the services' stores of the system on dir on backend.
// On PostgreSQL a service's database is created on first use and kept for
// the test, so a system started again on dir finds its state; it is
// dropped when the test ends, after the system stopped.
func OpenStore(tb testing.TB, backend Backend, dir string) func(ctx context.Context, service string, owns []string) (store.Store, error) {
	tb.Helper()
	return OpenStoreMetered(tb, backend, dir, nil)
}

// OpenStoreMetered is OpenStore whose PostgreSQL stores register their
// CDC slot's metrics with reg.
func OpenStoreMetered(tb testing.TB, backend Backend, dir string, reg prometheus.Registerer) func(ctx context.Context, service string, owns []string) (store.Store, error) {
	tb.Helper()
	switch backend {
	case SQLite:
		return func(ctx context.Context, service string, owns []string) (store.Store, error) {
			return sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(dir, service+".db"), Service: service, Owns: owns})
		}
	case Postgres:
	default:
		tb.Fatalf("cptest: unknown backend %q", backend)
	}
	srv := pgtest.Shared(tb)
	return func(ctx context.Context, service string, owns []string) (store.Store, error) {
		pgMu.Lock()
		key := dir + "/" + service
		url, ok := pgDBs[key]
		if !ok {
			url = srv.NewDatabase(tb)
			pgDBs[key] = url
			// Registered before the system's own cleanup (Start's),
			// so it runs after the system stopped.
			tb.Cleanup(func() { dropDatabase(tb, srv, key, url) })
		}
		pgMu.Unlock()
		return postgres.Open(ctx, postgres.Config{URL: url, Service: service, Owns: owns, Registerer: reg})
	}
}

// dropDatabase forgets a service's database and drops it.
func dropDatabase(tb testing.TB, srv *pgtest.Server, key, url string) {
	pgMu.Lock()
	delete(pgDBs, key)
	pgMu.Unlock()
	if err := storetest.DropDatabase(srv, url); err != nil {
		tb.Error(err)
	}
}

// Start starts the system on dir, with one SQLite file per service, and
// the broker at bootstrap; tune adjusts the defaults. It stops when the
// test ends (before the broker closes).
func Start(tb testing.TB, dir string, bootstrap []string, tune func(*controlplane.Config)) *controlplane.System {
	tb.Helper()
	return StartOn(tb, SQLite, dir, bootstrap, tune)
}

// StartOn is Start with the services' stores on backend.
func StartOn(tb testing.TB, backend Backend, dir string, bootstrap []string, tune func(*controlplane.Config)) *controlplane.System {
	tb.Helper()
	openStore := OpenStore(tb, backend, dir)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	cfg := controlplane.Config{
		DataDir: dir, Listener: ln, Kafka: []kgo.Opt{kgo.SeedBrokers(bootstrap...)},
		OpenStore:       openStore,
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

// New starts a broker and the system, on SQLite, in a fresh temp dir.
func New(tb testing.TB, tune func(*controlplane.Config)) (*controlplane.System, string, []string) {
	tb.Helper()
	return NewOn(tb, SQLite, tune)
}

// NewOn is New with the services' stores on backend.
func NewOn(tb testing.TB, backend Backend, tune func(*controlplane.Config)) (*controlplane.System, string, []string) {
	tb.Helper()
	dir := tb.TempDir()
	brokers := Broker(tb, dir)
	return StartOn(tb, backend, dir, brokers, tune), dir, brokers
}
