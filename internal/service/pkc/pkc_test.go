package pkc

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/mothership-dev/mothership/internal/resource"
	"github.com/mothership-dev/mothership/internal/runtime/event"
	"github.com/mothership-dev/mothership/internal/runtime/store"
	"github.com/mothership-dev/mothership/internal/runtime/store/storetest"
)

func TestMain(m *testing.M) { storetest.Main(m) }

// observeLKC records an LKC event as the reactor would.
func observeLKC(t testing.TB, ctx context.Context, tx store.Tx, id string, gen int64, spec resource.LKCSpec) {
	t.Helper()
	r := store.Resource{ID: id, Kind: resource.KindLKC, Organization: "org-1", Generation: gen, Version: gen, Spec: resource.Encode(spec)}
	putObserved(t, ctx, tx, lkcDesired, event.Desired, r)
}

func sharedSpec(tenants ...string) resource.PKCSpec {
	ps := resource.PKCSpec{Cloud: "AWS", Region: "us-west-2", Availability: resource.MultiZone, Brokers: SharedBrokers, Tenants: map[string]resource.Tenant{}}
	for _, t := range tenants {
		ps.Tenants[t] = resource.Tenant{Prefix: t + "."}
	}
	return ps
}

var basic = resource.LKCSpec{DisplayName: "x", Type: resource.TypeBasic, Cloud: "AWS", Region: "us-west-2", Availability: resource.SingleZone}

// TestConcurrentPlacementsLoseNoTenant: several pkc workers place tenants
// onto one shared PKC at once; every placement must survive, on either
// backend.
func TestConcurrentPlacementsLoseNoTenant(t *testing.T) {
	storetest.EachBackend(t, testConcurrentPlacementsLoseNoTenant)
}

func testConcurrentPlacementsLoseNoTenant(t *testing.T, backend string) {
	ctx := t.Context()
	st := storetest.Open(t, backend, Name, []string{resource.KindPKC})
	s := New(Config{MaxTenants: 1000})
	const n = 40
	err := st.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		if _, err := tx.ResourceCreate(ctx, store.CreateParams{Kind: resource.KindPKC, ID: "pkc-shared", Spec: resource.Encode(sharedSpec("lkc-first"))}); err != nil {
			return err
		}
		for i := range n {
			observeLKC(t, ctx, tx, fmt.Sprintf("lkc-%06d", i), 1, basic)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if err := st.Update(ctx, func(ctx context.Context, tx store.Tx) error {
				return s.reconcile(ctx, tx, fmt.Sprintf("lkc-%06d", i))
			}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	var ps resource.PKCSpec
	st.View(ctx, func(ctx context.Context, tx store.Tx) error {
		r, err := tx.ResourceGet(ctx, resource.KindPKC, "pkc-shared")
		ps, _ = resource.Decode[resource.PKCSpec](r.Spec)
		return err
	})
	if len(ps.Tenants) != n+1 {
		t.Fatalf("the shared PKC has %d tenants after %d concurrent placements onto 1, want %d", len(ps.Tenants), n, n+1)
	}
	// The indexes, built by several of them at once, are the PKC's.
	checkIndex(t, st, s)
}

// TestDedicatedPKCNeverLandsOnASharedOne: a Dedicated LKC whose id suffix
// equals a shared PKC's id gets its own PKC, and the shared one is not
// touched (it would have given the newcomer every tenant's topics).
func TestDedicatedPKCNeverLandsOnASharedOne(t *testing.T) {
	storetest.EachBackend(t, testDedicatedPKCNeverLandsOnASharedOne)
}

func testDedicatedPKCNeverLandsOnASharedOne(t *testing.T, backend string) {
	ctx := t.Context()
	st := storetest.Open(t, backend, Name, []string{resource.KindPKC})
	s := New(Config{})
	dedicated := resource.LKCSpec{DisplayName: "d", Type: resource.TypeDedicated, CKU: 2, Cloud: "AWS", Region: "us-west-2", Availability: resource.SingleZone}
	err := st.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		if _, err := tx.ResourceCreate(ctx, store.CreateParams{Kind: resource.KindPKC, ID: "pkc-q1w2e3", Spec: resource.Encode(sharedSpec("lkc-victim"))}); err != nil {
			return err
		}
		observeLKC(t, ctx, tx, "lkc-q1w2e3", 1, dedicated)
		return s.reconcile(ctx, tx, "lkc-q1w2e3")
	})
	if err != nil {
		t.Fatal(err)
	}
	st.View(ctx, func(ctx context.Context, tx store.Tx) error {
		shared, _ := tx.ResourceGet(ctx, resource.KindPKC, "pkc-q1w2e3")
		if shared.Generation != 1 {
			t.Errorf("the shared PKC was changed: %s", shared.Spec)
		}
		own, err := tx.ResourceGet(ctx, resource.KindPKC, dedicatedID("lkc-q1w2e3"))
		if err != nil {
			t.Fatalf("the Dedicated LKC has no PKC of its own: %v", err)
		}
		ps, _ := resource.Decode[resource.PKCSpec](own.Spec)
		if !ps.Dedicated || ps.Brokers != 6 || len(ps.Tenants) != 1 {
			t.Errorf("its own PKC: %s", own.Spec)
		}
		return nil
	})
}

// TestConcurrentFirstPlacementsShareAPKC: tenants placed at once on a site
// with no PKC yet fill one PKC after another instead of each making its
// own (on PostgreSQL, where placements run in parallel transactions).
func TestConcurrentFirstPlacementsShareAPKC(t *testing.T) {
	storetest.EachBackend(t, func(t *testing.T, backend string) {
		ctx := t.Context()
		st := storetest.Open(t, backend, Name, []string{resource.KindPKC})
		s := New(Config{MaxTenants: 5})
		const n = 20
		err := st.Update(ctx, func(ctx context.Context, tx store.Tx) error {
			for i := range n {
				observeLKC(t, ctx, tx, fmt.Sprintf("lkc-f%05d", i), 1, basic)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				// A reconcile that PostgreSQL picks as a deadlock victim
				// (the first ones build the indexes at once) is retried,
				// as the reactor retries it.
				var err error
				for range 5 {
					if err = st.Update(ctx, func(ctx context.Context, tx store.Tx) error {
						return s.reconcile(ctx, tx, fmt.Sprintf("lkc-f%05d", i))
					}); err == nil {
						return
					}
				}
				t.Error(err)
			})
		}
		wg.Wait()
		hosts := hostsOf(t, st)
		tenants := 0
		for _, ts := range hosts {
			tenants += len(ts)
		}
		if len(hosts) != n/5 || tenants != n {
			t.Fatalf("%d tenants placed at once, 5 per PKC: %d PKCs holding %d tenants, want %d holding %d", n, len(hosts), tenants, n/5, n)
		}
		checkIndex(t, st, s)
	})
}
