package sqlite_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/mothership-dev/mothership/internal/runtime/store"
	"github.com/mothership-dev/mothership/internal/runtime/store/sqlite"
)

// TestConcurrentUpdatesCommitAlone: many concurrent Update calls, some of
// which fail, one of which panics: each that succeeded is committed with
// its events, each that failed left nothing (not even the writes it made
// before failing), the panic reaches its own caller, and every event is
// in the feed once, in commit order.
func TestConcurrentUpdatesCommitAlone(t *testing.T) {
	s, err := sqlite.Open(t.Context(), sqlite.Config{Path: filepath.Join(t.TempDir(), "test.db"), Service: "test"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const n = 300
	errFailed := errors.New("this call fails")
	var wg sync.WaitGroup
	results := make([]error, n)
	panics := make([]any, n)
	for i := range n {
		wg.Go(func() {
			defer func() { panics[i] = recover() }()
			results[i] = s.Update(t.Context(), func(ctx context.Context, tx store.Tx) error {
				if _, err := tx.ResourceCreate(ctx, store.CreateParams{Kind: "item", ID: fmt.Sprintf("item-%03d", i), Spec: []byte(`{}`)}); err != nil {
					return err
				}
				switch {
				case i == 150:
					panic("call 150 panics")
				case i%7 == 0:
					return errFailed // after a write: it must be rolled back
				}
				return nil
			})
		})
	}
	wg.Wait()
	want := map[string]bool{}
	for i := range n {
		switch {
		case i == 150:
			if panics[i] != "call 150 panics" {
				t.Fatalf("call 150: panic %v, want its own", panics[i])
			}
		case i%7 == 0:
			if !errors.Is(results[i], errFailed) {
				t.Fatalf("call %d: %v, want its own error", i, results[i])
			}
		default:
			if results[i] != nil || panics[i] != nil {
				t.Fatalf("call %d: %v, %v; want it committed", i, results[i], panics[i])
			}
			want[fmt.Sprintf("item-%03d", i)] = true
		}
	}
	var got []string
	err = s.View(t.Context(), func(ctx context.Context, tx store.Tx) error {
		rs, err := tx.ResourceList(ctx, store.ListParams{Kind: "item"})
		for _, r := range rs {
			got = append(got, r.ID)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("%d items stored, want the %d that succeeded", len(got), len(want))
	}
	for _, id := range got {
		if !want[id] {
			t.Fatalf("%s is stored, but its call failed", id)
		}
	}
	seen := map[string]bool{}
	for len(seen) < len(want) {
		cs, err := s.Feed().Next(t.Context(), 1000)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cs {
			if !want[c.Key] || seen[c.Key] {
				t.Fatalf("the feed has %s (again: %v), which no committed call wrote once", c.Key, seen[c.Key])
			}
			seen[c.Key] = true
		}
	}
}
