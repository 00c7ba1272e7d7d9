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
	err = f.st.Update(t.Context(), func(ctx context.Context, tx store.Tx) error {
		if _, err := tx.ObservedPut(ctx, event.Topic(resource.KindPKC, event.Desired), ev); err != nil {
			return err
		}
		return f.svc.Host().Reconcile(ctx, tx, id)
	})
	if err != nil {
		t.Fatal(err)
	}
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
		b, _, err := f.svc.Bundle(t.Context(), aws, -1, 0)
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
	b, fresh, err := f.svc.Bundle(t.Context(), aws, 13, 0)
	if err != nil || !fresh || b.Version != 14 || len(b.Resources) != 1 {
		t.Fatalf("bundle after 13: %v, fresh %v, version %d with %d resources; want version 14 with pkc-a", err, fresh, b.Version, len(b.Resources))
	}
}
