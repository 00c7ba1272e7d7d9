package controlplane_test

import (
	"os"
	"testing"

	"github.com/mothership-dev/mothership/internal/runtime/store/postgres/pgtest"
)

// TestMain stops the PostgreSQL server the tests on PostgreSQL started.
func TestMain(m *testing.M) {
	code := m.Run()
	pgtest.StopShared()
	os.Exit(code)
}
