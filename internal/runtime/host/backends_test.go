package host_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/mothership-dev/mothership/internal/runtime/store"
	"github.com/mothership-dev/mothership/internal/runtime/store/postgres"
	"github.com/mothership-dev/mothership/internal/runtime/store/postgres/pgtest"
	"github.com/mothership-dev/mothership/internal/runtime/store/sqlite"
	"github.com/mothership-dev/mothership/internal/runtime/store/storetest"
)

// Every pipeline test runs on both store backends (storetest.EachBackend):
// the runtime promises the same behaviour on the embedded default and in
// production.
func TestMain(m *testing.M) { storetest.Main(m) }

func eachBackend(t *testing.T, fn func(t *testing.T, backend string)) { storetest.EachBackend(t, fn) }

// pgURLEnv passes a service's database to a crash-test child process.
func pgURLEnv(service string) string { return "MOTHERSHIP_TEST_PG_" + strings.ToUpper(service) }

var (
	pgMu   sync.Mutex
	pgURLs = map[string]string{} // dir/service → database URL
)

// pgURL returns the database of service for the test that owns dir,
// creating it on first use; a child process finds it in its environment.
func pgURL(tb testing.TB, dir, service string) string {
	tb.Helper()
	if url := os.Getenv(pgURLEnv(service)); url != "" {
		return url
	}
	pgMu.Lock()
	defer pgMu.Unlock()
	key := dir + "/" + service
	if url, ok := pgURLs[key]; ok {
		return url
	}
	url := pgtest.Shared(tb).NewDatabase(tb)
	pgURLs[key] = url
	return url
}

// opener opens the stores of the services of the test that owns dir.
func opener(tb testing.TB, backend, dir string) func(ctx context.Context, service string, owns []string) (store.Store, error) {
	if backend == "postgres" {
		return func(ctx context.Context, service string, owns []string) (store.Store, error) {
			return postgres.Open(ctx, postgres.Config{URL: pgURL(tb, dir, service), Service: service, Owns: owns})
		}
	}
	return func(ctx context.Context, service string, owns []string) (store.Store, error) {
		return sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(dir, service+".db"), Service: service, Owns: owns})
	}
}

func openStore(t *testing.T, backend, dir, service string) store.Store {
	t.Helper()
	s, err := opener(t, backend, dir)(t.Context(), service, nil)
	if err != nil {
		t.Fatalf("open %s on %s: %v", service, backend, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
