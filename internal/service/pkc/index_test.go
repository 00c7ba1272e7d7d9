package pkc

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/mothership-dev/mothership/internal/resource"
	"github.com/mothership-dev/mothership/internal/runtime/event"
	"github.com/mothership-dev/mothership/internal/runtime/store"
	"github.com/mothership-dev/mothership/internal/runtime/store/storetest"
)

func listIndexes(ctx context.Context, tx store.Tx) (map[string]string, error) {
	all := map[string]string{}
	for _, ix := range []string{ixTenant, ixSite, ixRoom} {
		es, err := tx.IndexList(ctx, store.IndexListParams{Index: ix})
		if err != nil {
			return nil, err
		}
		for _, e := range es {
			all[ix+" "+e.Key] = e.Value
		}
	}
	return all, nil
}

var errRollback = errors.New("rollback")

var testNow = time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)

// putObserved records r's event on topic as the reactor would.
func putObserved(t testing.TB, ctx context.Context, tx store.Tx, topic string, d event.Direction, r store.Resource) {
	t.Helper()
	ev := event.New("test", r.Kind, d, r.ID, r.Generation, r.Version, testNow, resource.Encode(r))
	if _, err := tx.ObservedPut(ctx, topic, ev); err != nil {
		t.Fatal(err)
	}
}

// checkIndex fails unless the indexes are exactly what a build from the
// PKCs makes of them: derived from the PKCs alone.
func checkIndex(t *testing.T, st store.Store, s *Service) {
	t.Helper()
	err := st.Update(t.Context(), func(ctx context.Context, tx store.Tx) error {
		got, err := listIndexes(ctx, tx)
		if err != nil {
			return err
		}
		if err := s.buildIndex(ctx, tx); err != nil {
			return err
		}
		want, err := listIndexes(ctx, tx)
		if err != nil {
			return err
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("index entry %s = %q, want %q", k, got[k], v)
			}
		}
		for k, v := range got {
			if _, ok := want[k]; !ok {
				t.Errorf("index entry %s = %q: no PKC says so", k, v)
			}
		}
		return errRollback
	})
	if !errors.Is(err, errRollback) {
		t.Fatal(err)
	}
}

// react records an LKC event and reconciles it, as the reactor would.
func react(t *testing.T, st store.Store, s *Service, id string, gen int64, spec resource.LKCSpec, deleted bool) {
	t.Helper()
	err := st.Update(t.Context(), func(ctx context.Context, tx store.Tx) error {
		r := store.Resource{ID: id, Kind: resource.KindLKC, Generation: gen, Version: gen, Spec: resource.Encode(spec)}
		if deleted {
			r.DeletedAt = &testNow
		}
		putObserved(t, ctx, tx, lkcDesired, event.Desired, r)
		return s.reconcile(ctx, tx, id)
	})
	if err != nil {
		t.Fatalf("reconcile %s: %v", id, err)
	}
}

// hostsOf returns the live PKCs and their tenants.
func hostsOf(t *testing.T, st store.Store) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	err := st.View(t.Context(), func(ctx context.Context, tx store.Tx) error {
		rs, err := tx.ResourceList(ctx, store.ListParams{Kind: resource.KindPKC})
		for _, r := range rs {
			ps, _ := resource.Decode[resource.PKCSpec](r.Spec)
			for lkc := range ps.Tenants {
				out[r.ID] = append(out[r.ID], lkc)
			}
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestIndexBuiltForPKCsFromBefore: a store whose PKCs were written before
// the indexes gets them built by the first reconcile, and only once they
// are committed does the service stop checking; a build that rolls back
// is built again.
func TestIndexBuiltForPKCsFromBefore(t *testing.T) {
	storetest.EachBackend(t, testIndexBuiltForPKCsFromBefore)
}

func testIndexBuiltForPKCsFromBefore(t *testing.T, backend string) {
	ctx := t.Context()
	st := storetest.Open(t, backend, Name, []string{resource.KindPKC})
	west := func(tenants ...string) resource.PKCSpec { return sharedSpec(tenants...) }
	east := sharedSpec("lkc-e")
	east.Region = "us-east-1"
	err := st.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		for id, ps := range map[string]resource.PKCSpec{"pkc-full": west("lkc-a", "lkc-b"), "pkc-room": west("lkc-c"), "pkc-east": east, "pkc-gone": west("lkc-gone")} {
			if _, err := tx.ResourceCreate(ctx, store.CreateParams{Kind: resource.KindPKC, ID: id, Spec: resource.Encode(ps)}); err != nil {
				return err
			}
		}
		_, err := tx.ResourceDelete(ctx, resource.KindPKC, "pkc-gone")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}

	s := New(Config{MaxTenants: 2})
	// A first reconcile whose transaction fails: its build is undone, and
	// the service must not believe the indexes are there.
	err = st.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		observeLKC(t, ctx, tx, "lkc-new", 1, basic)
		if err := s.reconcile(ctx, tx, "lkc-new"); err != nil {
			return err
		}
		return errRollback
	})
	if !errors.Is(err, errRollback) {
		t.Fatal(err)
	}
	if s.indexed {
		t.Fatal("after a build that rolled back, the service believes the indexes are built")
	}
	react(t, st, s, "lkc-new", 1, basic, false)
	if got := hostsOf(t, st)["pkc-room"]; len(got) != 2 {
		t.Fatalf("pkc-room hosts %v: the new tenant should have found its room through the built index (fleet %v)", got, hostsOf(t, st))
	}
	checkIndex(t, st, s)
	err = st.View(ctx, func(ctx context.Context, tx store.Tx) error {
		for lkc, want := range map[string]string{"lkc-a": "pkc-full", "lkc-c": "pkc-room", "lkc-e": "pkc-east", "lkc-new": "pkc-room"} {
			if got, err := tx.IndexGet(ctx, ixTenant, lkc); err != nil || got != want {
				t.Errorf("tenant %s indexed on %q (%v), want %s", lkc, got, err, want)
			}
		}
		if _, err := tx.IndexGet(ctx, ixTenant, "lkc-gone"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("a tenant of a deleted PKC is indexed: %v", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	react(t, st, s, "lkc-other", 1, basic, false) // finds the committed build
	if !s.indexed {
		t.Fatal("the service keeps checking indexes that are built and committed")
	}
}

// TestIndexFollowsPlacementsAndDeletes: after every step the indexes are
// what the PKCs say, and a changed MaxTenants rebuilds the rooms.
func TestIndexFollowsPlacementsAndDeletes(t *testing.T) {
	storetest.EachBackend(t, testIndexFollowsPlacementsAndDeletes)
}

func testIndexFollowsPlacementsAndDeletes(t *testing.T, backend string) {
	st := storetest.Open(t, backend, Name, []string{resource.KindPKC})
	s := New(Config{MaxTenants: 2})
	dedicated := resource.LKCSpec{DisplayName: "d", Type: resource.TypeDedicated, CKU: 2, Cloud: "AWS", Region: "us-west-2", Availability: resource.SingleZone}
	east := basic
	east.Region = "us-east-1"
	steps := []struct {
		reason  string
		lkc     string
		spec    resource.LKCSpec
		deleted bool
	}{
		{"a first tenant makes a shared PKC with room", "lkc-1", basic, false},
		{"a second fills it: no room left", "lkc-2", basic, false},
		{"a third makes another", "lkc-3", basic, false},
		{"another site has its own", "lkc-e1", east, false},
		{"a Dedicated one gets its own PKC", "lkc-d", dedicated, false},
		{"a resize writes no entry", "lkc-d", func() resource.LKCSpec { d := dedicated; d.CKU = 4; return d }(), false},
		{"a tenant gone makes room", "lkc-1", basic, true},
		{"the room is taken", "lkc-4", basic, false},
		{"a Dedicated LKC gone takes its PKC along", "lkc-d", dedicated, true},
		{"the last tenants gone take their PKC along", "lkc-3", basic, true},
		{"Basic to Standard stays on its PKC", "lkc-2", func() resource.LKCSpec { b := basic; b.Type = resource.TypeStandard; return b }(), false},
	}
	gens := map[string]int64{}
	for _, step := range steps {
		gens[step.lkc]++
		react(t, st, s, step.lkc, gens[step.lkc], step.spec, step.deleted)
		checkIndex(t, st, s)
		if t.Failed() {
			t.Fatalf("after %q: the indexes are not the PKCs' (fleet %v)", step.reason, hostsOf(t, st))
		}
	}
	// us-west-2 has lkc-2 and lkc-4 on one PKC or two: a fifth tenant
	// leaves one PKC full and one with a single tenant.
	react(t, st, s, "lkc-5", 1, basic, false)
	err := st.Update(t.Context(), func(ctx context.Context, tx store.Tx) error {
		return s.reconcile(ctx, tx, resource.Site{Cloud: "AWS", Region: "us-west-2"}.ID())
	})
	if err != nil {
		t.Fatal(err)
	}
	checkIndex(t, st, s)

	// Three tenants per PKC: the full one has room again, so three more
	// tenants fit on the two PKCs of us-west-2.
	roomy := New(Config{MaxTenants: 3})
	before := hostsOf(t, st)
	for _, lkc := range []string{"lkc-6", "lkc-7", "lkc-8"} {
		react(t, st, roomy, lkc, 1, basic, false)
		checkIndex(t, st, roomy)
	}
	if fleet := hostsOf(t, st); len(fleet) != len(before) {
		t.Fatalf("fleet %v, before %v: lkc-6, 7 and 8 should have filled the two PKCs of us-west-2 to 3 each", fleet, before)
	}
}

// TestSiteEventReachesOnlyItsSite: a site event refreshes the PKCs of its
// site, found through the index, and no other.
func TestSiteEventReachesOnlyItsSite(t *testing.T) {
	storetest.EachBackend(t, testSiteEventReachesOnlyItsSite)
}

func testSiteEventReachesOnlyItsSite(t *testing.T, backend string) {
	st := storetest.Open(t, backend, Name, []string{resource.KindPKC})
	s := New(Config{MaxTenants: 1})
	east := basic
	east.Region = "us-east-1"
	for i, spec := range []resource.LKCSpec{basic, basic, east} {
		react(t, st, s, fmt.Sprintf("lkc-%d", i), 1, spec, false)
	}
	versions := func() map[string]int64 {
		out := map[string]int64{}
		st.View(t.Context(), func(ctx context.Context, tx store.Tx) error {
			rs, err := tx.ResourceList(ctx, store.ListParams{Kind: resource.KindPKC})
			for _, r := range rs {
				ps, _ := resource.Decode[resource.PKCSpec](r.Spec)
				out[ps.Region+" "+r.ID] = r.Version
			}
			return err
		})
		return out
	}
	before := versions()
	err := st.Update(t.Context(), func(ctx context.Context, tx store.Tx) error {
		observed := store.Resource{ID: "site-aws-us-west-2", Kind: resource.KindCapacity, Generation: 1, Version: 1, Spec: []byte(`{}`),
			Status: store.Status{Message: "node pools are growing", Detail: []byte(`{}`)}}
		putObserved(t, ctx, tx, capacityStatus, event.Status, observed)
		return s.reconcile(ctx, tx, "site-aws-us-west-2")
	})
	if err != nil {
		t.Fatal(err)
	}
	after := versions()
	for k, v := range after {
		west := k[:len("us-west-2")] == "us-west-2"
		if changed := v != before[k]; changed != west {
			t.Errorf("PKC %s: version %d → %d; want a change only in us-west-2", k, before[k], v)
		}
	}
}

// TestKeyBeforeItsClusterBecomesAUser: a cluster-scoped key observed
// before its cluster is placed is found through the key index when it is,
// a deleted one is not, and the index stays what a build makes of it.
func TestKeyBeforeItsClusterBecomesAUser(t *testing.T) {
	storetest.EachBackend(t, func(t *testing.T, backend string) {
		st := storetest.Open(t, backend, Name, []string{resource.KindPKC})
		s := New(Config{})
		key := func(id string, deleted bool) {
			err := st.Update(t.Context(), func(ctx context.Context, tx store.Tx) error {
				r := store.Resource{ID: id, Kind: resource.KindAPIKey, Generation: 1, Version: 1,
					Spec: resource.Encode(resource.APIKeySpec{Owner: "u-1", Resource: "lkc-1", SCRAM: &resource.SealedSCRAM{Site: "aws/us-west-2", Sealed: []byte("sealed")}})}
				if deleted {
					r.DeletedAt, r.Generation, r.Version = &testNow, 2, 2
				}
				putObserved(t, ctx, tx, apikeyDesired, event.Desired, r)
				return s.reconcile(ctx, tx, id)
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		key("KEYLIVE", false)
		key("KEYGONE", false)
		key("KEYGONE", true)
		react(t, st, s, "lkc-1", 1, basic, false)
		checkIndex(t, st, s)
		err := st.View(t.Context(), func(ctx context.Context, tx store.Tx) error {
			_, ps, err := hostOf(ctx, tx, "lkc-1", false)
			if err != nil {
				return err
			}
			var names []string
			for _, u := range ps.Tenants["lkc-1"].Users {
				names = append(names, u.Name)
			}
			if !slices.Equal(names, []string{"KEYLIVE"}) {
				t.Errorf("the placed tenant's users: %v, want [KEYLIVE]", names)
			}
			if q, want := ps.Tenants["lkc-1"].Quotas, resource.SKUQuotas(resource.TypeBasic, 0); q == nil || *q != want {
				t.Errorf("the placed Basic tenant's quotas: %+v, want its SKU's %+v", q, want)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})
}

// TestAResyncDoesNotUnsettleATenant: a Basic tenant reconciled again
// (a resync, an event delivered twice) after a neighbour joined its PKC
// keeps the PKC generation that carried it, so it stays PROVISIONED while
// the neighbour's change is realized.
func TestAResyncDoesNotUnsettleATenant(t *testing.T) {
	storetest.EachBackend(t, func(t *testing.T, backend string) {
		st := storetest.Open(t, backend, Name, []string{resource.KindPKC})
		s := New(Config{})
		carried := func(lkc string) int64 {
			t.Helper()
			var gen int64
			err := st.View(t.Context(), func(ctx context.Context, tx store.Tx) error {
				pkc, _, err := hostOf(ctx, tx, lkc, false)
				if err != nil {
					return err
				}
				ps, err := resource.Decode[resource.PKCStatus](pkc.Status.Detail)
				gen = ps.Tenants[lkc].PKCGeneration
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			return gen
		}
		react(t, st, s, "lkc-a", 1, basic, false)
		before := carried("lkc-a")
		react(t, st, s, "lkc-b", 1, basic, false) // joins the same PKC: its generation moves
		react(t, st, s, "lkc-a", 1, basic, false) // a resync of a
		if after := carried("lkc-a"); after != before {
			t.Fatalf("a resync moved lkc-a to PKC generation %d from %d: it would wait for its neighbour's change", after, before)
		}
	})
}
