package sync_test

import (
	"context"
	"encoding/json"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/mothership-dev/mothership/internal/resource"
	"github.com/mothership-dev/mothership/internal/runtime/event"
	"github.com/mothership-dev/mothership/internal/runtime/store"
)

// versions returns each delivery's resource version.
func (f *fixture) versions(t *testing.T) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	err := f.st.View(t.Context(), func(ctx context.Context, tx store.Tx) error {
		ds, err := tx.ResourceList(ctx, store.ListParams{Kind: resource.KindDelivery, IncludeDeleted: true})
		for _, d := range ds {
			out[d.ID] = d.Version
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// remove makes sync see PKC id deleted at generation gen.
func (f *fixture) remove(t *testing.T, id string, site resource.Site, gen int64) {
	t.Helper()
	now := time.Now()
	state, err := json.Marshal(store.Resource{ID: id, Kind: resource.KindPKC, Generation: gen, Version: gen, DeletedAt: &now,
		Spec: resource.Encode(resource.PKCSpec{Cloud: site.Cloud, Region: site.Region, Dedicated: true, Brokers: 3})})
	if err != nil {
		t.Fatal(err)
	}
	ev := event.New("pkc", resource.KindPKC, event.Desired, id, gen, gen, now, state)
	h := f.svc.Host()
	err = f.st.Update(t.Context(), func(ctx context.Context, tx store.Tx) error {
		if _, err := tx.ObservedPut(ctx, event.Topic(resource.KindPKC, event.Desired), ev); err != nil {
			return err
		}
		return h.Reconcile(ctx, tx, id)
	})
	if err != nil {
		t.Fatal(err)
	}
	// Wakes the site's satellite, as the reactor does: without it, a
	// watching satellite learned of the removal only when its wait ended.
	h.Reactor.AfterCommit([]event.Event{ev})
}

// TestADeliveryPerPKC: each PKC is a delivery of its own; the site's
// version grows with every change of any of them, deleted ones included;
// a report writes only the deliveries whose report changed.
func TestADeliveryPerPKC(t *testing.T) {
	f := newSync(t, nil)
	f.provision(t, "pkc-a", aws, 1)
	f.provision(t, "pkc-b", aws, 1)
	f.provision(t, "pkc-g", gcp, 1)
	bundle := func() resource.Bundle {
		b, _, err := f.svc.Bundle(t.Context(), aws, -1, 0, false)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	if b := bundle(); b.Version != 2 || !slices.Equal(slices.Sorted(maps.Keys(b.Resources)), []string{"pkc-a", "pkc-b"}) {
		t.Fatalf("aws bundle %d %v, want version 2 with pkc-a and pkc-b", b.Version, slices.Sorted(maps.Keys(b.Resources)))
	}
	f.provision(t, "pkc-a", aws, 2)
	if b := bundle(); b.Version != 3 || b.Resources["pkc-a"].Generation != 2 {
		t.Fatalf("after pkc-a's generation 2: version %d, pkc-a %+v; want 3 and generation 2", b.Version, b.Resources["pkc-a"])
	}

	provisioned := resource.Realized{Generation: 1, Phase: resource.PhaseProvisioned}
	if err := f.svc.Report(t.Context(), aws, resource.Report{Site: aws.String(), Version: 3,
		Resources: map[string]resource.Realized{"pkc-a": {Generation: 1, Phase: resource.PhaseProvisioning, Reason: "SCALING"}, "pkc-b": provisioned}}); err != nil {
		t.Fatal(err)
	}
	before := f.versions(t)
	// pkc-a moves on, pkc-b reports the same: only pkc-a is written.
	if err := f.svc.Report(t.Context(), aws, resource.Report{Site: aws.String(), Version: 3,
		Resources: map[string]resource.Realized{"pkc-a": {Generation: 2, Phase: resource.PhaseProvisioned}, "pkc-b": provisioned,
			"pkc-g": provisioned}}); err != nil {
		t.Fatal(err)
	}
	after := f.versions(t)
	if after["pkc-a"] == before["pkc-a"] || after["pkc-b"] != before["pkc-b"] || after["pkc-g"] != before["pkc-g"] {
		t.Fatalf("delivery versions %v → %v: want only pkc-a written (pkc-g is another site's)", before, after)
	}
	if _, reported := f.delivery(t, aws); reported != 2 {
		t.Fatalf("%d of aws's deliveries realized, want 2", reported)
	}

	f.remove(t, "pkc-b", aws, 2)
	if b := bundle(); b.Version != 4 || !slices.Equal(slices.Sorted(maps.Keys(b.Resources)), []string{"pkc-a"}) {
		t.Fatalf("after pkc-b's deletion: version %d with %v, want 4 with pkc-a alone", b.Version, slices.Sorted(maps.Keys(b.Resources)))
	}
}

// TestASiteServedBeforeDeliveriesPerPKCKeepsItsVersion: a site whose
// satellite holds a bundle of the delivery per site that came before
// goes on from that version, so the satellite takes the next bundle.
func TestASiteServedBeforeDeliveriesPerPKCKeepsItsVersion(t *testing.T) {
	f := newSync(t, nil)
	err := f.st.Update(t.Context(), func(ctx context.Context, tx store.Tx) error {
		_, err := tx.ResourceCreate(ctx, store.CreateParams{Kind: resource.KindDelivery, ID: aws.ID(), Spec: []byte(`{"site":"aws/us-west-2","resources":{}}`)})
		for range 6 {
			if err != nil {
				return err
			}
			_, err = tx.ResourceUpdateSpec(ctx, store.UpdateSpecParams{Kind: resource.KindDelivery, ID: aws.ID(), Spec: []byte(`{"site":"aws/us-west-2","resources":{"x":{}}}`)})
			if err == nil {
				_, err = tx.ResourceUpdateSpec(ctx, store.UpdateSpecParams{Kind: resource.KindDelivery, ID: aws.ID(), Spec: []byte(`{"site":"aws/us-west-2","resources":{}}`)})
			}
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	f.provision(t, "pkc-a", aws, 1)
	b, fresh, err := f.svc.Bundle(t.Context(), aws, 13, 0, false)
	if err != nil || !fresh || b.Version != 14 || len(b.Resources) != 1 {
		t.Fatalf("bundle after 13: %v, fresh %v, version %d with %d resources; want version 14 with pkc-a", err, fresh, b.Version, len(b.Resources))
	}
	// What changed since 13 is logged; before it, nothing is: a
	// satellite holding 5 is sent the bundle whole.
	if b, _, err := f.svc.Bundle(t.Context(), aws, 13, 0, true); err != nil || !b.Delta || len(b.Resources) != 1 {
		t.Fatalf("deltas after 13: %v, delta %v with %d resources; want a delta with pkc-a", err, b.Delta, len(b.Resources))
	}
	if b, _, err := f.svc.Bundle(t.Context(), aws, 5, 0, true); err != nil || b.Delta || b.Version != 14 || len(b.Resources) != 1 {
		t.Fatalf("deltas after 5, before the log: %v, delta %v, version %d; want the whole bundle at 14", err, b.Delta, b.Version)
	}
}

// TestADeltaCarriesOnlyWhatChanged: a satellite that merges deltas is sent
// only the deliveries that changed since the bundle it holds, and the ones
// that left it; merged, it holds what the whole bundle holds.
func TestADeltaCarriesOnlyWhatChanged(t *testing.T) {
	f := newSync(t, nil)
	bundle := func(after int64, deltas bool) resource.Bundle {
		t.Helper()
		b, _, err := f.svc.Bundle(t.Context(), aws, after, 0, deltas)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	ids := func(b resource.Bundle) []string { return slices.Sorted(maps.Keys(b.Resources)) }
	for _, id := range []string{"pkc-a", "pkc-b", "pkc-c"} {
		f.provision(t, id, aws, 1)
	}
	f.provision(t, "pkc-g", gcp, 1) // another site's: never in aws's
	held := bundle(-1, true)
	if held.Delta || held.Version != 3 || !slices.Equal(ids(held), []string{"pkc-a", "pkc-b", "pkc-c"}) {
		t.Fatalf("first bundle: delta %v, version %d with %v; want it whole at 3", held.Delta, held.Version, ids(held))
	}
	if b := bundle(held.Version, true); b.Version != held.Version || len(b.Resources) != 0 {
		t.Fatalf("nothing changed, yet the bundle after %d is version %d with %v", held.Version, b.Version, ids(b))
	}
	steps := []struct {
		name          string
		change        func()
		want, removed []string
	}{
		{"pkc-b's generation 2", func() { f.provision(t, "pkc-b", aws, 2) }, []string{"pkc-b"}, nil},
		{"pkc-c deleted", func() { f.remove(t, "pkc-c", aws, 2) }, nil, []string{"pkc-c"}},
		{"pkc-d new, pkc-a's generation 2", func() { f.provision(t, "pkc-d", aws, 1); f.provision(t, "pkc-a", aws, 2) }, []string{"pkc-a", "pkc-d"}, nil},
	}
	for _, step := range steps {
		step.change()
		d := bundle(held.Version, true)
		if !d.Delta || !slices.Equal(ids(d), step.want) || !slices.Equal(d.Removed, step.removed) {
			t.Fatalf("after %s: delta %v with %v, removed %v; want a delta with %v, removed %v", step.name, d.Delta, ids(d), d.Removed, step.want, step.removed)
		}
		whole := bundle(-1, false)
		held = held.Merge(d)
		if held.Version != whole.Version || !slices.Equal(ids(held), ids(whole)) {
			t.Fatalf("after %s: merged version %d with %v, but the whole bundle is %d with %v", step.name, held.Version, ids(held), whole.Version, ids(whole))
		}
		for id, item := range whole.Resources {
			if got := held.Resources[id]; got.Generation != item.Generation || string(got.Spec) != string(item.Spec) {
				t.Fatalf("after %s: merged %s is generation %d, the whole bundle's %d", step.name, id, got.Generation, item.Generation)
			}
		}
	}
	// Two changes of one delivery since the bundle held: it comes once.
	before := held.Version
	f.provision(t, "pkc-a", aws, 3)
	f.provision(t, "pkc-a", aws, 4)
	if d := bundle(before, true); !slices.Equal(ids(d), []string{"pkc-a"}) || d.Resources["pkc-a"].Generation != 4 {
		t.Fatalf("after pkc-a's generations 3 and 4: %v, pkc-a at %d; want pkc-a alone at 4", ids(d), d.Resources["pkc-a"].Generation)
	}
}
