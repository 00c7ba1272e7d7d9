package storetest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mothership-dev/mothership/internal/runtime/store"
	"github.com/mothership-dev/mothership/internal/runtime/store/postgres"
	"github.com/mothership-dev/mothership/internal/runtime/store/postgres/pgtest"
	"github.com/mothership-dev/mothership/internal/runtime/store/sqlite"
)

// Backends are the store backends a service runs on: the embedded
// default first, then the production one.
var Backends = []string{"sqlite", "postgres"}

// Main runs the tests of a binary that uses the shared pgtest server, and
// stops the server after: call it from TestMain.
func Main(m *testing.M) {
	code := m.Run()
	pgtest.StopShared()
	os.Exit(code)
}

// EachBackend runs fn as a subtest on each backend. A test binary that
// uses it runs its tests with Main.
func EachBackend(t *testing.T, fn func(t *testing.T, backend string)) {
	for _, b := range Backends {
		t.Run(b, func(t *testing.T) { fn(t, b) })
	}
}

// Open opens a fresh store for service on backend, closed when the test
// ends: a SQLite file in a temp dir, or a new database on the test
// binary's shared pgtest server, dropped with its replication slot after
// the store closed.
func Open(tb testing.TB, backend, service string, owns []string) store.Store {
	tb.Helper()
	var (
		st  store.Store
		err error
	)
	switch backend {
	case "sqlite":
		st, err = sqlite.Open(tb.Context(), sqlite.Config{Path: filepath.Join(tb.TempDir(), service+".db"), Service: service, Owns: owns})
	case "postgres":
		srv := pgtest.Shared(tb)
		url := srv.NewDatabase(tb)
		tb.Cleanup(func() {
			if err := DropDatabase(srv, url); err != nil {
				tb.Error(err)
			}
		})
		st, err = postgres.Open(tb.Context(), postgres.Config{URL: url, Service: service, Owns: owns})
	default:
		tb.Fatalf("storetest: unknown backend %q", backend)
	}
	if err != nil {
		tb.Fatalf("open %s's store on %s: %v", service, backend, err)
	}
	tb.Cleanup(func() { _ = st.Close() })
	return st
}

// DropDatabase drops the database of url on srv and the replication slots
// on it, so that a test binary neither runs out of slots (a pgtest server
// has 64) nor keeps WAL for slots nobody reads. A slot still active (its
// store closing) is waited for, up to 30s.
func DropDatabase(srv *pgtest.Server, url string) error {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, srv.URL("postgres"))
	if err != nil {
		return fmt.Errorf("storetest: drop %s: %w", cfg.Database, err)
	}
	defer conn.Close(context.Background())
	for {
		_, err = conn.Exec(ctx, `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = $1`, cfg.Database)
		if err == nil {
			_, err = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{cfg.Database}.Sanitize()+" WITH (FORCE)")
		}
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("storetest: drop database %s and its slots: %w", cfg.Database, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
