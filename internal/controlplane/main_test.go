package controlplane_test

import (
	"testing"

	"github.com/mothership-dev/mothership/internal/runtime/store/storetest"
)

// TestMain stops the PostgreSQL server the tests on PostgreSQL started.
func TestMain(m *testing.M) { storetest.Main(m) }
