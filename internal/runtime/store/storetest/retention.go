package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/mothership-dev/mothership/internal/runtime/store"
)

// testRetention: a resource deleted with a retention is kept, restorable,
// until its purge time, which every event of it carries; a restore makes
// it live again at a new generation; the end of its retention removes the
// row and announces it with a last event marked purged.
func testRetention(t *testing.T, open Opener) {
	s := open(t, t.TempDir())
	create(t, s, "lkc", "lkc-1", map[string]any{"cku": 2})
	drain(t, s.Feed())
	until := testTime.Add(7 * 24 * time.Hour)
	var r store.Resource
	update(t, s, func(ctx context.Context, tx store.Tx) error {
		var err error
		r, err = tx.ResourceDeleteRetained(ctx, "lkc", "lkc-1", until)
		return err
	})
	if !r.Retained() || r.PurgeAt == nil || !r.PurgeAt.Equal(until) || r.Generation != 2 {
		t.Fatalf("deleted with a retention: %+v", r)
	}
	_ = s.View(t.Context(), func(ctx context.Context, tx store.Tx) error {
		got, err := tx.ResourceGetAny(ctx, "lkc", "lkc-1")
		if err != nil || got.PurgeAt == nil || !got.PurgeAt.Equal(until) {
			t.Errorf("read back: %+v, %v", got, err)
		}
		if _, err := tx.ResourceGet(ctx, "lkc", "lkc-1"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("a retained resource is not live: get = %v", err)
		}
		return nil
	})
	changes := drain(t, s.Feed())
	if len(changes) != 1 {
		t.Fatalf("%d events for the delete, want 1", len(changes))
	}
	if _, st := decode(t, changes[0]); st.PurgeAt == nil || !st.PurgeAt.Equal(until) || st.DeletedAt == nil {
		t.Fatalf("the delete's event: %+v", st)
	}

	update(t, s, func(ctx context.Context, tx store.Tx) error {
		var err error
		r, err = tx.ResourceRestore(ctx, "lkc", "lkc-1")
		return err
	})
	if r.Deleted() || r.PurgeAt != nil || r.Generation != 3 {
		t.Fatalf("restored: %+v", r)
	}
	if err := s.Update(t.Context(), func(ctx context.Context, tx store.Tx) error {
		_, err := tx.ResourceRestore(ctx, "lkc", "lkc-1")
		return err
	}); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("restoring a live resource: %v, want ErrInvalid", err)
	}
	if err := s.Update(t.Context(), func(ctx context.Context, tx store.Tx) error {
		_, err := tx.ResourceEndRetention(ctx, "lkc", "lkc-1")
		return err
	}); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("purging a live resource: %v, want ErrInvalid", err)
	}
	changes = drain(t, s.Feed())
	if len(changes) != 1 {
		t.Fatalf("%d events for the restore, want 1", len(changes))
	}
	if _, st := decode(t, changes[0]); st.Deleted() || st.PurgeAt != nil || st.Generation != 3 {
		t.Fatalf("the restore's event: %+v", st)
	}

	update(t, s, func(ctx context.Context, tx store.Tx) error {
		if _, err := tx.ResourceDeleteRetained(ctx, "lkc", "lkc-1", until); err != nil {
			return err
		}
		var err error
		r, err = tx.ResourceEndRetention(ctx, "lkc", "lkc-1")
		return err
	})
	if !r.Purged || r.Generation != 5 {
		t.Fatalf("purged: %+v", r)
	}
	_ = s.View(t.Context(), func(ctx context.Context, tx store.Tx) error {
		if _, err := tx.ResourceGetAny(ctx, "lkc", "lkc-1"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("the purged row: %v, want ErrNotFound", err)
		}
		return nil
	})
	changes = drain(t, s.Feed())
	if len(changes) != 2 {
		t.Fatalf("%d events for the delete and the purge, want 2", len(changes))
	}
	if _, st := decode(t, changes[1]); !st.Purged || !st.Deleted() || st.Generation != 5 {
		t.Fatalf("the purge's event: %+v", st)
	}
	if err := s.Update(t.Context(), func(ctx context.Context, tx store.Tx) error {
		_, err := tx.ResourceRestore(ctx, "lkc", "lkc-1")
		return err
	}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("restoring a purged resource: %v, want ErrNotFound", err)
	}
}
