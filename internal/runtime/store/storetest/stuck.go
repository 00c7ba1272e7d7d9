package storetest

import (
	"context"
	"testing"

	"github.com/mothership-dev/mothership/internal/runtime/store"
)

// testPendingAndStuck: the store times how long a resource waits for a
// generation to be observed (the owner cannot set it), keeps a STUCK
// condition across the owner's status writes while nothing progresses,
// and drops both once the observed generation moves.
func testPendingAndStuck(t *testing.T, open Opener) {
	s := open(t, t.TempDir())
	r := create(t, s, "pkc", "pkc-1", map[string]any{"brokers": 3})
	if r.Status.PendingSince == nil {
		t.Fatal("a new resource waits for its first generation: no pending_since")
	}
	since := *r.Status.PendingSince
	set := func(st store.Status) store.Resource {
		t.Helper()
		var out store.Resource
		update(t, s, func(ctx context.Context, tx store.Tx) error {
			var err error
			out, err = tx.ResourceSetStatus(ctx, "pkc", "pkc-1", st)
			return err
		})
		return out
	}
	stuck := &store.Stuck{Since: since, Layer: "satellite", Message: "not connected"}
	r = set(store.Status{Phase: "PROVISIONING", Stuck: stuck, PendingSince: nil})
	if r.Status.Stuck == nil || r.Status.PendingSince == nil || !r.Status.PendingSince.Equal(since) {
		t.Fatalf("marked stuck: %+v", r.Status)
	}
	// A retry's new reason is no progress: the condition stays.
	r = set(store.Status{Phase: "PROVISIONING", Reason: "RETRYING"})
	if r.Status.Stuck == nil || *r.Status.Stuck != *stuck {
		t.Fatalf("the owner's next status dropped the condition: %+v", r.Status)
	}
	// A new generation while waiting waits on from the first.
	update(t, s, func(ctx context.Context, tx store.Tx) error {
		var err error
		r, err = tx.ResourceUpdateSpec(ctx, store.UpdateSpecParams{Kind: "pkc", ID: "pkc-1", Spec: spec(map[string]any{"brokers": 6})})
		return err
	})
	if r.Generation != 2 || r.Status.PendingSince == nil || !r.Status.PendingSince.Equal(since) || r.Status.Stuck == nil {
		t.Fatalf("a change while stuck: %+v", r.Status)
	}
	// Progress (generation 1 observed, 2 not yet) drops the condition
	// and restarts the wait; catching up ends it.
	r = set(store.Status{ObservedGeneration: 1, Phase: "PROVISIONING"})
	if r.Status.Stuck != nil || r.Status.PendingSince == nil {
		t.Fatalf("after progress: %+v", r.Status)
	}
	r = set(store.Status{ObservedGeneration: 2, Phase: "PROVISIONED", Stuck: stuck})
	if r.Status.Stuck != nil || r.Status.PendingSince != nil {
		t.Fatalf("caught up: %+v", r.Status)
	}
	// A change after catching up starts a new wait.
	update(t, s, func(ctx context.Context, tx store.Tx) error {
		var err error
		r, err = tx.ResourceUpdateSpec(ctx, store.UpdateSpecParams{Kind: "pkc", ID: "pkc-1", Spec: spec(map[string]any{"brokers": 9})})
		return err
	})
	if r.Status.PendingSince == nil {
		t.Fatalf("a change after catching up: %+v", r.Status)
	}
}
