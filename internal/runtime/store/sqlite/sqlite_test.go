package sqlite_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/mothership-dev/mothership/internal/runtime/store"
	"github.com/mothership-dev/mothership/internal/runtime/store/sqlite"
	"github.com/mothership-dev/mothership/internal/runtime/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T, dir string) store.Store {
		s, err := sqlite.Open(t.Context(), sqlite.Config{Path: filepath.Join(dir, "test.db"), Service: "test"})
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

// A data dir may contain characters that mean something in a URI.
func TestOpenPathWithURICharacters(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data?x=1#frag%20")
	if err := os.MkdirAll(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "svc.db")
	s, err := sqlite.Open(t.Context(), sqlite.Config{Path: path, Service: "svc"})
	if err != nil {
		t.Fatalf("open %q: %v", path, err)
	}
	defer s.Close()
	if err := s.Update(t.Context(), func(ctx context.Context, tx store.Tx) error {
		_, err := tx.ResourceCreate(ctx, store.CreateParams{Kind: "item", ID: "a"})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("the database is not at %q: %v", path, err)
	}
}
