package fleet_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mothership-dev/mothership/internal/resource"
	"github.com/mothership-dev/mothership/internal/runtime/event"
	"github.com/mothership-dev/mothership/internal/runtime/store"
	"github.com/mothership-dev/mothership/internal/runtime/store/sqlite"
	"github.com/mothership-dev/mothership/internal/service/fleet"
)

// observe records a resource's event as the reactor would, and reacts.
func observe(t *testing.T, st store.Store, h func(context.Context, store.Tx, string) error, r store.Resource, d event.Direction) {
	t.Helper()
	data, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	ev := event.New("test", r.Kind, d, r.ID, r.Generation, r.Version, time.Now(), data)
	err = st.Update(t.Context(), func(ctx context.Context, tx store.Tx) error {
		if _, err := tx.ObservedPut(ctx, event.Topic(r.Kind, d), ev); err != nil {
			return err
		}
		return h(ctx, tx, r.ID)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func lkc(id, org, kind, cloud, region, pkc, phase string, version int64) store.Resource {
	st, _ := json.Marshal(resource.LKCStatus{PKC: pkc})
	return store.Resource{ID: id, Kind: resource.KindLKC, Organization: org, Environment: "env-1", Generation: 1, Version: version,
		Spec:   resource.Encode(resource.LKCSpec{DisplayName: id, Type: kind, Cloud: cloud, Region: region, Availability: resource.SingleZone}),
		Status: store.Status{ObservedGeneration: 1, Phase: phase, Detail: st}}
}

func pkc(id, cloud, region, kafkaVersion string, dedicated bool, tenants ...string) store.Resource {
	ts := map[string]resource.Tenant{}
	for _, t := range tenants {
		ts[t] = resource.Tenant{}
	}
	st, _ := json.Marshal(resource.PKCStatus{Version: kafkaVersion})
	return store.Resource{ID: id, Kind: resource.KindPKC, Generation: 1, Version: 1,
		Spec:   resource.Encode(resource.PKCSpec{Cloud: cloud, Region: region, Dedicated: dedicated, Tenants: ts, Version: kafkaVersion}),
		Status: store.Status{ObservedGeneration: 1, Phase: "PROVISIONED", Detail: st}}
}

// TestFleetViewAcrossOrganizations: the view lists and counts every
// organization's clusters and PKCs from the state their owners publish,
// filters them, pages them, keeps the newest state of each, and is whole
// again after a restart, from its own database.
func TestFleetViewAcrossOrganizations(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fleet.db")
	st, err := sqlite.Open(t.Context(), sqlite.Config{Path: path, Service: fleet.Name})
	if err != nil {
		t.Fatal(err)
	}
	svc := fleet.New(fleet.Config{})
	h := svc.Host()
	h.Attach(st)
	observe(t, st, h.Reconcile, pkc("pkc-a", "AWS", "us-west-2", "4.1.0", true, "lkc-1"), event.Desired)
	observe(t, st, h.Reconcile, pkc("pkc-b", "GCP", "europe-west1", "4.0.0", false, "lkc-2", "lkc-3"), event.Status)
	observe(t, st, h.Reconcile, lkc("lkc-1", "org-1", "Dedicated", "AWS", "us-west-2", "pkc-a", "PROVISIONED", 3), event.Status)
	observe(t, st, h.Reconcile, lkc("lkc-2", "org-1", "Basic", "GCP", "europe-west1", "pkc-b", "PROVISIONED", 2), event.Status)
	observe(t, st, h.Reconcile, lkc("lkc-3", "org-2", "Basic", "GCP", "europe-west1", "pkc-b", "PROVISIONING", 1), event.Desired)
	// An older state of lkc-1 arriving late changes nothing.
	observe(t, st, h.Reconcile, lkc("lkc-1", "org-1", "Dedicated", "AWS", "us-west-2", "", "PROVISIONING", 1), event.Desired)

	ids := func(l fleet.List[fleet.Cluster]) []string {
		var out []string
		for _, c := range l.Data {
			out = append(out, c.ID)
		}
		return out
	}
	check := func(svc *fleet.Service) {
		t.Helper()
		for what, tc := range map[string]struct {
			f    fleet.Filter
			want []string
		}{
			"everything":       {fleet.Filter{}, []string{"lkc-1", "lkc-2", "lkc-3"}},
			"one organization": {fleet.Filter{Organization: "org-1"}, []string{"lkc-1", "lkc-2"}},
			"one site":         {fleet.Filter{Site: "GCP/europe-west1"}, []string{"lkc-2", "lkc-3"}},
			"one SKU":          {fleet.Filter{SKU: "dedicated"}, []string{"lkc-1"}},
			"one phase":        {fleet.Filter{Phase: "PROVISIONING"}, []string{"lkc-3"}},
			"one version":      {fleet.Filter{Version: "4.0.0"}, []string{"lkc-2", "lkc-3"}},
		} {
			if got := ids(svc.Clusters(tc.f, fleet.Page{})); !slices.Equal(got, tc.want) {
				t.Errorf("%s: %v, want %v", what, got, tc.want)
			}
		}
		first := svc.Clusters(fleet.Filter{}, fleet.Page{Size: 2})
		rest := svc.Clusters(fleet.Filter{}, fleet.Page{Size: 2, After: first.Next})
		if !slices.Equal(ids(first), []string{"lkc-1", "lkc-2"}) || first.Next != "lkc-2" || !slices.Equal(ids(rest), []string{"lkc-3"}) ||
			rest.Next != "" || first.Total != 3 {
			t.Errorf("pages %v (next %q, total %d) and %v (next %q)", ids(first), first.Next, first.Total, ids(rest), rest.Next)
		}
		if c := svc.Clusters(fleet.Filter{Organization: "org-1", SKU: "Dedicated"}, fleet.Page{}).Data; len(c) != 1 ||
			c[0].Phase != "PROVISIONED" || c[0].Version != "4.1.0" || c[0].PKC != "pkc-a" {
			t.Errorf("lkc-1 is %+v, want its newest state: PROVISIONED on pkc-a at 4.1.0", c)
		}
		pkcs := svc.PKCs(fleet.Filter{Organization: "org-2"}, fleet.Page{})
		if len(pkcs.Data) != 1 || pkcs.Data[0].ID != "pkc-b" || !slices.Equal(pkcs.Data[0].LKCs, []string{"lkc-2", "lkc-3"}) ||
			pkcs.Data[0].Status.Version != "4.0.0" {
			t.Errorf("org-2's PKCs: %+v, want pkc-b with its two tenants at 4.0.0", pkcs.Data)
		}
		if shared := svc.PKCs(fleet.Filter{SKU: "shared"}, fleet.Page{}); len(shared.Data) != 1 || shared.Data[0].ID != "pkc-b" {
			t.Errorf("shared PKCs: %+v", shared.Data)
		}
		sum := svc.Summarize()
		want := []fleet.Count{{Site: "aws/us-west-2", Version: "4.1.0", Phase: "PROVISIONED", PKCs: 1, LKCs: 1},
			{Site: "gcp/europe-west1", Version: "4.0.0", Phase: "PROVISIONED", PKCs: 1, LKCs: 2}}
		if sum.PKCs != 2 || sum.Clusters != 3 || !slices.Equal(sum.Counts, want) {
			t.Errorf("summary %+v, want %+v", sum, want)
		}
	}
	check(svc)

	// A new process rebuilds the same view from the database.
	again := fleet.New(fleet.Config{})
	h2 := again.Host()
	h2.Attach(st)
	if err := again.Load(t.Context()); err != nil {
		t.Fatal(err)
	}
	if !again.Summarize().Loaded {
		t.Error("the summary does not say the view was loaded")
	}
	check(again)
}

// TestStuckResourcesAreFound: a resource whose accepted generation stays
// unobserved past the limit is stuck, in the list, its filter and the
// summary, and is not once the generation is observed.
func TestStuckResourcesAreFound(t *testing.T) {
	st, err := sqlite.Open(t.Context(), sqlite.Config{Path: filepath.Join(t.TempDir(), "fleet.db"), Service: fleet.Name})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	reg := prometheus.NewRegistry()
	svc := fleet.New(fleet.Config{StuckAfter: 15 * time.Minute, Now: func() time.Time { return now }, Registerer: reg})
	h := svc.Host()
	h.Attach(st)
	waiting := lkc("lkc-1", "org-1", "Dedicated", "AWS", "us-west-2", "", "PROVISIONING", 2)
	waiting.Generation, waiting.UpdatedAt = 2, now.Add(-time.Minute)
	observe(t, st, h.Reconcile, waiting, event.Desired)
	stuck := func() []string {
		var out []string
		for _, c := range svc.Clusters(fleet.Filter{Stuck: new(true)}, fleet.Page{}).Data {
			out = append(out, c.ID)
		}
		return out
	}
	if got := stuck(); len(got) != 0 || svc.Summarize().StuckClusters != 0 {
		t.Fatalf("a minute after its change, stuck: %v", got)
	}
	now = now.Add(20 * time.Minute)
	if got := stuck(); !slices.Equal(got, []string{"lkc-1"}) || svc.Summarize().StuckClusters != 1 {
		t.Fatalf("20 minutes after its change, unobserved: stuck %v (summary %+v)", got, svc.Summarize())
	}
	if c := svc.Clusters(fleet.Filter{}, fleet.Page{}).Data; len(c) != 1 || !c[0].Stuck || c[0].StuckLayer != fleet.LayerPKC {
		t.Fatalf("the list does not say lkc-1 is stuck, waiting for pkc: %+v", c)
	}
	// Its PKC waits for its satellite: that is the layer the cluster names.
	behind := pkc("pkc-a", "AWS", "us-west-2", "4.2.0", true, "lkc-1")
	behind.Generation, behind.UpdatedAt = 2, now.Add(-20*time.Minute)
	behind.Status.Phase, behind.Status.Reason = "PROVISIONING", "WAITING_FOR_SATELLITE"
	observe(t, st, h.Reconcile, behind, event.Desired)
	waiting.Status.Detail, _ = json.Marshal(resource.LKCStatus{PKC: "pkc-a"})
	waiting.Version = 3
	observe(t, st, h.Reconcile, waiting, event.Status)
	if c := svc.Clusters(fleet.Filter{}, fleet.Page{}).Data; len(c) != 1 || c[0].StuckLayer != fleet.LayerSatellite {
		t.Fatalf("a cluster whose PKC waits for its satellite: %+v", c)
	}
	if p := svc.PKCs(fleet.Filter{Stuck: new(true)}, fleet.Page{}).Data; len(p) != 1 || p[0].StuckLayer != fleet.LayerSatellite {
		t.Fatalf("the stuck PKC: %+v", p)
	}
	want := `
# HELP mothership_fleet_stuck_resources_by_layer Resources whose accepted generation has stayed unobserved longer than the limit, by kind and the lowest layer that has not caught up.
# TYPE mothership_fleet_stuck_resources_by_layer gauge
mothership_fleet_stuck_resources_by_layer{kind="lkc",layer="capacity"} 0
mothership_fleet_stuck_resources_by_layer{kind="lkc",layer="paused"} 0
mothership_fleet_stuck_resources_by_layer{kind="lkc",layer="pkc"} 0
mothership_fleet_stuck_resources_by_layer{kind="lkc",layer="satellite"} 1
mothership_fleet_stuck_resources_by_layer{kind="pkc",layer="capacity"} 0
mothership_fleet_stuck_resources_by_layer{kind="pkc",layer="paused"} 0
mothership_fleet_stuck_resources_by_layer{kind="pkc",layer="pkc"} 0
mothership_fleet_stuck_resources_by_layer{kind="pkc",layer="satellite"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "mothership_fleet_stuck_resources_by_layer"); err != nil {
		t.Fatal(err)
	}
	done := waiting
	done.Version, done.Status.ObservedGeneration, done.Status.Phase = 4, 2, "PROVISIONED"
	observe(t, st, h.Reconcile, done, event.Status)
	if got := stuck(); len(got) != 0 {
		t.Fatalf("observed, still stuck: %v", got)
	}
}

// BenchmarkFilterAt100kClusters measures a filtered, paged query of the
// view over 100,000 clusters on 20,000 PKCs (the figure is in
// BENCHMARKS.md).
func BenchmarkFilterAt100kClusters(b *testing.B) {
	svc := fleet.New(fleet.Config{})
	sites := [][2]string{{"AWS", "us-west-2"}, {"GCP", "europe-west1"}, {"AWS", "eu-central-1"}, {"AZURE", "eastus"}}
	for i := range 20_000 {
		site := sites[i%len(sites)]
		r := pkc(fmt.Sprintf("pkc-%06d", i), site[0], site[1], []string{"3.9.0", "4.0.0", "4.1.0"}[i%3], i%4 != 0)
		if err := svc.Observe(r); err != nil {
			b.Fatal(err)
		}
	}
	kinds := []string{"Basic", "Standard", "Dedicated"}
	for i := range 100_000 {
		site := sites[(i/5)%len(sites)]
		if err := svc.Observe(lkc(fmt.Sprintf("lkc-%06d", i), fmt.Sprintf("org-%04d", i%5000), kinds[i%3], site[0], site[1],
			fmt.Sprintf("pkc-%06d", i/5), "PROVISIONED", 1)); err != nil {
			b.Fatal(err)
		}
	}
	f := fleet.Filter{Site: "gcp/europe-west1", SKU: "Dedicated", Version: "4.1.0"}
	b.ResetTimer()
	for b.Loop() {
		if l := svc.Clusters(f, fleet.Page{Size: 100}); l.Total == 0 {
			b.Fatal("the filter selects nothing")
		}
	}
}
