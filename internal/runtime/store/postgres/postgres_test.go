package postgres_test

import (
	"os"
	"sync"
	"testing"

	"github.com/mothership-dev/mothership/internal/runtime/store"
	"github.com/mothership-dev/mothership/internal/runtime/store/postgres"
	"github.com/mothership-dev/mothership/internal/runtime/store/postgres/pgtest"
	"github.com/mothership-dev/mothership/internal/runtime/store/storetest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	pgtest.StopShared()
	os.Exit(code)
}

func TestConformance(t *testing.T) {
	var mu sync.Mutex
	dbs := map[string]string{} // test dir → database, so a reopen finds its data
	storetest.Run(t, func(t *testing.T, dir string) store.Store {
		srv := pgtest.Shared(t)
		mu.Lock()
		url, ok := dbs[dir]
		if !ok {
			url = srv.NewDatabase(t)
			dbs[dir] = url
		}
		mu.Unlock()
		s, err := postgres.Open(t.Context(), postgres.Config{URL: url, Service: "test"})
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}
