package fleet_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mothership-dev/mothership/internal/api"
	"github.com/mothership-dev/mothership/internal/resource"
	"github.com/mothership-dev/mothership/internal/runtime/event"
	"github.com/mothership-dev/mothership/internal/runtime/host"
	"github.com/mothership-dev/mothership/internal/runtime/store"
	"github.com/mothership-dev/mothership/internal/runtime/store/storetest"
	"github.com/mothership-dev/mothership/internal/service/fleet"
	"github.com/mothership-dev/mothership/internal/service/svcapi"
)

func TestMain(m *testing.M) { storetest.Main(m) }

// clock is a time the test moves.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

var operator = svcapi.Principal{Owner: "u-ops", Organization: "org-ops", Bindings: []svcapi.Binding{{Role: svcapi.RoleFleetAdmin}}}

// fleetRig runs the fleet service on a store of one backend and plays the
// pkc service and the satellites: it publishes each PKC's state as its
// owner would.
type fleetRig struct {
	t     *testing.T
	svc   *fleet.Service
	h     host.Service
	st    store.Store
	clock *clock
	gen   map[string]int64
	ver   map[string]int64
	// running is the version each PKC runs; "ID/failed" the version it
	// failed to reach. specv is the version its spec asks for.
	running map[string]string
	specv   map[string]string
}

func newRig(t *testing.T, backend string) *fleetRig {
	c := &clock{now: time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)}
	svc := fleet.New(fleet.Config{Now: c.Now})
	h := svc.Host()
	st := storetest.Open(t, backend, fleet.Name, h.Owns)
	h.Attach(st)
	if err := svc.Load(t.Context()); err != nil {
		t.Fatal(err)
	}
	return &fleetRig{t: t, svc: svc, h: h, st: st, clock: c, gen: map[string]int64{}, ver: map[string]int64{}, specv: map[string]string{}}
}

// publish is the PKC's owner announcing its state: spec version and the
// version its satellite reports, at phase.
func (r *fleetRig) publish(id, site string, specVersion, running, phase string, newGen bool) {
	r.t.Helper()
	if r.gen[id] == 0 || newGen {
		r.gen[id]++
	}
	r.specv[id] = specVersion
	r.ver[id]++
	cloud, region, _ := strings.Cut(site, "/")
	ps := resource.PKCStatus{Version: running}
	if phase == resource.PhaseFailed {
		ps.FailedGeneration = r.gen[id] // as pkc says which generation failed
	}
	st, _ := json.Marshal(ps)
	observed := r.gen[id]
	if phase != resource.PhaseProvisioned {
		observed--
	}
	p := store.Resource{ID: id, Kind: resource.KindPKC, Generation: r.gen[id], Version: r.ver[id], UpdatedAt: r.clock.Now(),
		Spec: resource.Encode(resource.PKCSpec{Cloud: strings.ToUpper(cloud), Region: region, Dedicated: true, Brokers: 3,
			Tenants: map[string]resource.Tenant{"lkc-" + id[4:]: {}}, Version: specVersion}),
		Status: store.Status{ObservedGeneration: observed, Phase: phase, Reason: map[bool]string{true: "UPGRADE_FAILED"}[phase == resource.PhaseFailed], Detail: st}}
	observe(r.t, r.st, r.h.Reconcile, p, event.Status)
}

// assignments reads the campaign's assignments as the pkc service sees
// them.
func (r *fleetRig) assignments() map[string]resource.PKCUpgradeSpec {
	r.t.Helper()
	out := map[string]resource.PKCUpgradeSpec{}
	err := r.st.View(r.t.Context(), func(ctx context.Context, tx store.Tx) error {
		rs, err := tx.ResourceList(ctx, store.ListParams{Kind: resource.KindPKCUpgrade, Limit: 1000})
		for _, a := range rs {
			out[a.ID], _ = resource.Decode[resource.PKCUpgradeSpec](a.Spec)
		}
		return err
	})
	if err != nil {
		r.t.Fatal(err)
	}
	return out
}

// follow plays the pkc service and a satellite: every admitted PKC not
// yet at its assignment's version gets there (or fails, for the ones in
// fail); it returns the PKCs it moved.
func (r *fleetRig) follow(site string, fail map[string]bool, only int) []string {
	r.t.Helper()
	var moved []string
	for id, a := range r.assignments() {
		if !a.Admitted || r.specv[id] == a.Version || (only > 0 && len(moved) == only) {
			continue
		}
		if fail[id] {
			r.publish(id, site, a.Version, r.running[id], resource.PhaseFailed, true)
			r.running[id+"/failed"] = a.Version
		} else {
			r.publish(id, site, a.Version, a.Version, resource.PhaseProvisioned, true)
			r.running[id] = a.Version
		}
		moved = append(moved, id)
	}
	return moved
}

func (r *fleetRig) get(id string) fleet.Upgrade {
	r.t.Helper()
	u, err := r.svc.GetUpgrade(r.t.Context(), operator, id)
	if err != nil {
		r.t.Fatal(err)
	}
	return u
}

// upkeep runs the service's upkeep as the host does: rounds while it
// says there is more.
func (r *fleetRig) upkeep() {
	r.t.Helper()
	for more := true; more; {
		if err := r.st.Update(r.t.Context(), func(ctx context.Context, tx store.Tx) error {
			var err error
			more, err = r.h.Upkeep(ctx, tx)
			return err
		}); err != nil {
			r.t.Fatal(err)
		}
	}
}

func (r *fleetRig) op(id, op string, wantStatus int) fleet.Upgrade {
	r.t.Helper()
	u, err := r.svc.OperateUpgrade(r.t.Context(), operator, id, op)
	if wantStatus != 0 {
		if e := api.AsError(err); e == nil || e.Status != wantStatus {
			r.t.Fatalf("%s: got %v, want %d", op, err, wantStatus)
		}
		return u
	}
	if err != nil {
		r.t.Fatalf("%s: %v", op, err)
	}
	return u
}

func inFlight(as map[string]resource.PKCUpgradeSpec, running map[string]string) int {
	n := 0
	for id, a := range as {
		if a.Admitted && running[id] != a.Version && running[id+"/failed"] != a.Version {
			n++
		}
	}
	return n
}

// TestUpgradeCampaignInWaves walks a campaign through every step: the
// PKCs fixed at creation and the ones skipped, the first wave alone, at
// most max_in_flight at once, a soak and its skip, a failure within the
// budget, pause and resume, the last wave, finalization, and a rollback
// refused after it.
func TestUpgradeCampaignInWaves(t *testing.T) {
	storetest.EachBackend(t, func(t *testing.T, backend string) {
		r := newRig(t, backend)
		r.running = map[string]string{}
		const site = "aws/us-west-2"
		for i := range 10 {
			id := fmt.Sprintf("pkc-d%05d", i)
			r.publish(id, site, "4.2.0", "4.2.0", resource.PhaseProvisioned, false)
			r.running[id] = "4.2.0"
		}
		r.publish("pkc-dnewer", site, "4.3.0", "4.3.0", resource.PhaseProvisioned, false)
		r.publish("pkc-dgcp00", "gcp/europe-west1", "4.2.0", "4.2.0", resource.PhaseProvisioned, false)

		u, err := r.svc.CreateUpgrade(t.Context(), operator, fleet.UpgradeRequest{TargetVersion: "4.3.0",
			Selector:    resource.UpgradeSelector{Sites: []string{site}},
			Waves:       []resource.UpgradeWave{{Count: 1, Soak: "10m"}, {Percent: 50, Soak: "10m"}, {Percent: 100, Soak: "0s"}},
			MaxInFlight: 2, FailureBudget: 1})
		if err != nil {
			t.Fatal(err)
		}
		if u.Status.PKCCount != 10 || len(u.Status.PKCs) != 10 || len(u.Status.Skipped) != 1 || u.Status.Skipped[0].PKC != "pkc-dnewer" {
			t.Fatalf("covered %d %v, skipped %+v", u.Status.PKCCount, u.Status.PKCs, u.Status.Skipped)
		}
		if got := []int{u.Status.Waves[0].PKCs, u.Status.Waves[1].PKCs, u.Status.Waves[2].PKCs}; got[0] != 1 || got[1] != 4 || got[2] != 5 {
			t.Fatalf("wave sizes %v, want [1 4 5]", got)
		}
		if u.Status.Phase != resource.UpgradeRunning || inFlight(r.assignments(), r.running) != 1 {
			t.Fatalf("first wave: %s with %d admitted", u.Status.Phase, inFlight(r.assignments(), r.running))
		}
		if _, held := r.assignments()["pkc-dgcp00"]; held {
			t.Fatal("a PKC outside the selector was assigned")
		}
		r.follow(site, nil, 0)
		u = r.get(u.ID)
		if u.Status.Phase != resource.UpgradeSoaking || u.Status.Waves[0].Upgraded != 1 {
			t.Fatalf("after the first wave: %s %+v", u.Status.Phase, u.Status.Waves[0])
		}
		r.clock.Add(5 * time.Minute)
		r.upkeep()
		if u = r.get(u.ID); u.Status.Phase != resource.UpgradeSoaking || inFlight(r.assignments(), r.running) != 0 {
			t.Fatalf("mid-soak: %s", u.Status.Phase)
		}
		// Advance skips the rest of the soak.
		u = r.op(u.ID, fleet.OpAdvance, 0)
		if u.Status.Wave != 1 || u.Status.Phase != resource.UpgradeRunning {
			t.Fatalf("after advance: wave %d %s", u.Status.Wave, u.Status.Phase)
		}
		// Wave 2 (index 1): at most two at once, one fails within the
		// budget.
		var failing string
		for id, a := range r.assignments() {
			if a.Admitted && a.Wave == 1 {
				failing = id
				break
			}
		}
		for range 10 {
			if n := inFlight(r.assignments(), r.running); n > 2 {
				t.Fatalf("%d PKCs upgrading at once, max_in_flight 2", n)
			}
			for id, a := range r.assignments() {
				if a.Admitted && a.Wave > r.get(u.ID).Status.Wave {
					t.Fatalf("%s of wave %d admitted during wave %d", id, a.Wave, r.get(u.ID).Status.Wave)
				}
			}
			if len(r.follow(site, map[string]bool{failing: true}, 1)) == 0 {
				break
			}
		}
		u = r.get(u.ID)
		if u.Status.Phase != resource.UpgradeSoaking || u.Status.Waves[1].Failed != 1 || u.Status.Waves[1].Upgraded != 3 ||
			len(u.Status.Failures) != 1 || u.Status.Failures[0].PKC != failing || !strings.Contains(u.Status.Failures[0].Reason, "UPGRADE_FAILED") {
			t.Fatalf("after the second wave: %s %+v %+v", u.Status.Phase, u.Status.Waves[1], u.Status.Failures)
		}
		r.clock.Add(11 * time.Minute)
		r.upkeep()
		u = r.get(u.ID)
		if u.Status.Wave != 2 || u.Status.Phase != resource.UpgradeRunning {
			t.Fatalf("after the soak: wave %d %s", u.Status.Wave, u.Status.Phase)
		}
		// Paused: the two upgrading finish, no other starts.
		r.op(u.ID, fleet.OpPause, 0)
		r.op(u.ID, fleet.OpPause, 409)
		r.follow(site, nil, 0)
		if u = r.get(u.ID); u.Status.Phase != resource.UpgradePaused || u.Status.Waves[2].Upgraded != 2 || u.Status.Waves[2].Waiting != 3 ||
			u.Spec.PausedBy != "u-ops" {
			t.Fatalf("paused: %s %+v by %q", u.Status.Phase, u.Status.Waves[2], u.Spec.PausedBy)
		}
		r.op(u.ID, fleet.OpResume, 0)
		for len(r.follow(site, nil, 0)) > 0 {
		}
		u = r.get(u.ID)
		if u.Status.Phase != resource.UpgradeSucceeded || !u.Status.Finalized {
			t.Fatalf("at the end: %s %s", u.Status.Phase, u.Status.Message)
		}
		for id, a := range r.assignments() {
			if id != failing && a.MetadataVersion != "4.3-IV0" {
				t.Errorf("%s not finalized: %+v", id, a)
			}
		}
		if a := r.assignments()[failing]; a.MetadataVersion != "" {
			t.Errorf("the failed PKC was finalized: %+v", a)
		}
		r.op(u.ID, fleet.OpRollback, 409)
		r.op(u.ID, fleet.OpPause, 409)
	})
}

// TestUpgradeCampaignHaltsAndRollsBack: past its budget a campaign starts
// no PKC; the ones in flight finish; a PKC stuck in its upgrade counts as
// failed; a rollback sends every PKC it started back where it was.
func TestUpgradeCampaignHaltsAndRollsBack(t *testing.T) {
	storetest.EachBackend(t, func(t *testing.T, backend string) {
		r := newRig(t, backend)
		r.running = map[string]string{}
		const site = "aws/us-west-2"
		for i := range 6 {
			id := fmt.Sprintf("pkc-d%05d", i)
			r.publish(id, site, "4.2.0", "4.2.0", resource.PhaseProvisioned, false)
			r.running[id] = "4.2.0"
		}
		u, err := r.svc.CreateUpgrade(t.Context(), operator, fleet.UpgradeRequest{TargetVersion: "4.3.0",
			Waves: []resource.UpgradeWave{{Percent: 100, Soak: "1h"}}, MaxInFlight: 3, FailureBudget: 1})
		if err != nil {
			t.Fatal(err)
		}
		admitted := func() []string {
			var out []string
			for id, a := range r.assignments() {
				if a.Admitted {
					out = append(out, id)
				}
			}
			return out
		}
		first := admitted()
		if len(first) != 3 {
			t.Fatalf("admitted %v, want 3", first)
		}
		// One fails; another never reports (stuck); the budget of one
		// is exceeded by the second.
		r.publish(first[0], site, "4.3.0", "4.2.0", resource.PhaseFailed, true)
		r.running[first[0]+"/failed"] = "4.3.0"
		if u = r.get(u.ID); u.Status.Phase != resource.UpgradeRunning || len(admitted()) != 4 {
			t.Fatalf("one failure within the budget: %s, %d admitted", u.Status.Phase, len(admitted()))
		}
		r.clock.Add(16 * time.Minute)
		r.upkeep()
		u = r.get(u.ID)
		if u.Status.Phase != resource.UpgradeHalted || u.Status.Reason != "FAILURE_BUDGET_EXCEEDED" {
			t.Fatalf("past the budget: %s %s", u.Status.Phase, u.Status.Message)
		}
		stuck := 0
		for _, f := range u.Status.Failures {
			if strings.HasPrefix(f.Reason, "STUCK") {
				stuck++
			}
		}
		if stuck == 0 {
			t.Fatalf("no PKC failed as stuck: %+v", u.Status.Failures)
		}
		halted := len(admitted())
		r.follow(site, nil, 0)
		r.upkeep()
		if n := len(admitted()); n != halted {
			t.Fatalf("%d PKCs started after the campaign halted", n-halted)
		}
		r.op(u.ID, fleet.OpAdvance, 409)
		u = r.op(u.ID, fleet.OpRollback, 0)
		if u.Status.Phase != resource.UpgradeAborted || u.Status.Reason != "ROLLED_BACK" || !strings.HasPrefix(u.Status.Message, "rolling back") {
			t.Fatalf("rolling back: %s %s %s", u.Status.Phase, u.Status.Reason, u.Status.Message)
		}
		for id, a := range r.assignments() {
			if a.Admitted && a.Version != "4.2.0" {
				t.Errorf("%s not sent back: %+v", id, a)
			}
		}
		// The campaign follows its PKCs back, and is done once all are.
		r.follow(site, nil, 0)
		if u = r.get(u.ID); u.Status.Message != "rolled back: the campaign's PKCs are back at the versions they had" {
			t.Fatalf("after the PKCs went back: %s", u.Status.Message)
		}
		// A new campaign may take the PKCs again. Aborted with one in
		// flight, it follows that one until it finished; the PKC that
		// failed before is not counted as failing this campaign.
		again, err := r.svc.CreateUpgrade(t.Context(), operator, fleet.UpgradeRequest{TargetVersion: "4.3.0",
			Waves: []resource.UpgradeWave{{Percent: 100}}})
		if err != nil {
			t.Fatal(err)
		}
		if again.Status.Phase != resource.UpgradeRunning || again.Status.Waves[0].Failed != 0 {
			t.Fatalf("a new campaign over PKCs that failed before: %s %+v", again.Status.Phase, again.Status.Waves[0])
		}
		u = r.op(again.ID, fleet.OpAbort, 0)
		if u.Status.Phase != resource.UpgradeAborted || !strings.Contains(u.Status.Message, "1 upgrading finish") {
			t.Fatalf("aborted: %s %s", u.Status.Phase, u.Status.Message)
		}
		r.follow(site, nil, 0)
		if u = r.get(again.ID); u.Status.Waves[0].Upgraded != 1 || u.Status.Waves[0].Upgrading != 0 || strings.Contains(u.Status.Message, "finish") {
			t.Fatalf("after the one in flight finished: %+v %s", u.Status.Waves[0], u.Status.Message)
		}
	})
}

// TestUpgradeRequestsAreValidated: every mistake of a request is named at
// once, and a tenant learns nothing.
func TestUpgradeRequestsAreValidated(t *testing.T) {
	r := newRig(t, "sqlite")
	_, err := r.svc.CreateUpgrade(t.Context(), operator, fleet.UpgradeRequest{TargetVersion: "9.9",
		Waves: []resource.UpgradeWave{{Count: 1, Percent: 5}, {Percent: 150, Soak: "soon"}}, MaxInFlight: -1})
	e := api.AsError(err)
	if e == nil || e.Status != 422 || len(e.More) < 4 {
		t.Fatalf("a bad request: %v", err)
	}
	_, err = r.svc.CreateUpgrade(t.Context(), operator, fleet.UpgradeRequest{TargetVersion: "4.3.0", Waves: []resource.UpgradeWave{{Percent: 100}}})
	if e := api.AsError(err); e == nil || e.Status != 422 || !strings.Contains(e.Detail, "no PKC") {
		t.Fatalf("nothing to upgrade: %v", err)
	}
	tenant := svcapi.Principal{Owner: "u-1", Organization: "org-1", Bindings: []svcapi.Binding{{Role: svcapi.RoleOrganizationAdmin}}}
	if _, err := r.svc.GetVersions(t.Context(), tenant); api.AsError(err) == nil || api.AsError(err).Status != 404 {
		t.Fatalf("a tenant asked for the versions: %v", err)
	}
}

// TestUpgradeWaitsForMaintenanceWindowsAndSkipsPins: a PKC whose cluster
// has a maintenance window starts only inside it (the status says when);
// an emergency campaign does not wait; a pinned cluster's PKC is skipped.
func TestUpgradeWaitsForMaintenanceWindowsAndSkipsPins(t *testing.T) {
	r := newRig(t, "sqlite")
	r.running = map[string]string{}
	const site = "aws/us-west-2"
	// Monday 10:00 UTC; the window opens on Tuesday at 02:00 for 4 hours.
	r.clock.now = time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	for _, id := range []string{"pkc-dwindow", "pkc-dpinned", "pkc-dplain0"} {
		r.publish(id, site, "4.2.0", "4.2.0", resource.PhaseProvisioned, false)
		r.running[id] = "4.2.0"
	}
	tenant := func(pkc string, spec resource.LKCSpec) {
		st, _ := json.Marshal(resource.LKCStatus{PKC: pkc})
		spec.DisplayName, spec.Type, spec.Cloud, spec.Region, spec.CKU = pkc, resource.TypeDedicated, "AWS", "us-west-2", 1
		observe(t, r.st, r.h.Reconcile, store.Resource{ID: "lkc-" + pkc[4:], Kind: resource.KindLKC, Organization: "org-1", Generation: 1, Version: 1,
			Spec: resource.Encode(spec), Status: store.Status{ObservedGeneration: 1, Phase: resource.PhaseProvisioned, Detail: st}}, event.Desired)
	}
	tenant("pkc-dwindow", resource.LKCSpec{MaintenanceWindow: &resource.Window{Day: "TUESDAY", StartTime: "02:00", Duration: "4h"}})
	tenant("pkc-dpinned", resource.LKCSpec{KafkaVersionPin: "4.2.0"})
	tenant("pkc-dplain0", resource.LKCSpec{})

	u, err := r.svc.CreateUpgrade(t.Context(), operator, fleet.UpgradeRequest{TargetVersion: "4.3.0",
		Waves: []resource.UpgradeWave{{Percent: 100}}, MaxInFlight: 5})
	if err != nil {
		t.Fatal(err)
	}
	if len(u.Status.Skipped) != 1 || u.Status.Skipped[0].PKC != "pkc-dpinned" || !strings.Contains(u.Status.Skipped[0].Reason, "pinned") {
		t.Fatalf("skipped %+v, want the pinned one", u.Status.Skipped)
	}
	as := r.assignments()
	if !as["pkc-dplain0"].Admitted || as["pkc-dwindow"].Admitted {
		t.Fatalf("admitted outside the window: %+v", as)
	}
	r.follow(site, nil, 0)
	u = r.get(u.ID)
	if u.Status.Reason != "WAITING_FOR_MAINTENANCE_WINDOW" || !strings.Contains(u.Status.Message, "2026-12-08T02:00:00Z") {
		t.Fatalf("waiting for the window: %s %s", u.Status.Reason, u.Status.Message)
	}
	r.clock.Add(16*time.Hour + 30*time.Minute) // Tuesday 02:30
	r.upkeep()
	if !r.assignments()["pkc-dwindow"].Admitted {
		t.Fatal("not admitted inside its window")
	}
	r.follow(site, nil, 0)
	if u = r.get(u.ID); u.Status.Phase != resource.UpgradeSucceeded {
		t.Fatalf("at the end: %s %s", u.Status.Phase, u.Status.Message)
	}

	// An emergency does not wait; the window is Tuesday's, it is Friday.
	r.clock.Add(3 * 24 * time.Hour)
	u, err = r.svc.CreateUpgrade(t.Context(), operator, fleet.UpgradeRequest{TargetVersion: "4.3.1",
		Selector: resource.UpgradeSelector{Versions: []string{"4.3.0"}}, Waves: []resource.UpgradeWave{{Percent: 100}}, MaxInFlight: 5, Emergency: true})
	if err != nil {
		t.Fatal(err)
	}
	if !r.assignments()["pkc-dwindow"].Admitted || !u.Spec.Emergency {
		t.Fatalf("an emergency waited for the window: %+v", r.assignments()["pkc-dwindow"])
	}
}

func TestWindowNext(t *testing.T) {
	w := resource.Window{Day: "SUNDAY", StartTime: "23:00", Duration: "4h"}
	for _, c := range []struct{ now, want string }{
		{"2026-12-06T23:30:00Z", "2026-12-06T23:30:00Z"}, // Sunday, open
		{"2026-12-07T02:59:00Z", "2026-12-07T02:59:00Z"}, // Monday, still open past midnight
		{"2026-12-07T03:00:00Z", "2026-12-13T23:00:00Z"}, // closed: next Sunday
		{"2026-12-06T10:00:00Z", "2026-12-06T23:00:00Z"}, // Sunday, before it opens
	} {
		now, _ := time.Parse(time.RFC3339, c.now)
		if got := w.Next(now).Format(time.RFC3339); got != c.want {
			t.Errorf("Next(%s) = %s, want %s", c.now, got, c.want)
		}
	}
	if bad := (resource.Window{Day: "FUNDAY", StartTime: "25:00", Duration: "10m"}).Validate(); len(bad) != 3 {
		t.Errorf("Validate found %v", bad)
	}
}

// TestSiteWindowHoldsPKCsWithoutTheirOwn: a site's window holds its PKCs
// whose tenants set none; a removed window holds nothing.
func TestSiteWindowHoldsPKCsWithoutTheirOwn(t *testing.T) {
	r := newRig(t, "sqlite")
	r.running = map[string]string{}
	r.clock.now = time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC) // Monday
	r.publish("pkc-d00001", "aws/us-west-2", "4.2.0", "4.2.0", resource.PhaseProvisioned, false)
	r.publish("pkc-d00002", "gcp/europe-west1", "4.2.0", "4.2.0", resource.PhaseProvisioned, false)
	w, err := r.svc.SetSiteWindow(t.Context(), operator, "AWS/us-west-2", resource.Window{Day: "tuesday", StartTime: "02:00", Duration: "4h"})
	if err != nil || w.MaintenanceWindow.Day != "TUESDAY" {
		t.Fatalf("set: %+v %v", w, err)
	}
	if _, err := r.svc.SetSiteWindow(t.Context(), operator, "aws/us-west-2", resource.Window{StartTime: "2am", Duration: "4h"}); api.AsError(err) == nil || api.AsError(err).Status != 422 {
		t.Fatalf("a bad window: %v", err)
	}
	if _, err := r.svc.CreateUpgrade(t.Context(), operator, fleet.UpgradeRequest{TargetVersion: "4.3.0", Waves: []resource.UpgradeWave{{Percent: 100}}, MaxInFlight: 5}); err != nil {
		t.Fatal(err)
	}
	if as := r.assignments(); as["pkc-d00001"].Admitted || !as["pkc-d00002"].Admitted {
		t.Fatalf("the site window does not hold its PKC alone: %+v", as)
	}
	if err := r.svc.DeleteSiteWindow(t.Context(), operator, "aws/us-west-2"); err != nil {
		t.Fatal(err)
	}
	if err := r.svc.DeleteSiteWindow(t.Context(), operator, "aws/us-west-2"); api.AsError(err) == nil || api.AsError(err).Status != 404 {
		t.Fatalf("removed twice: %v", err)
	}
	r.upkeep()
	if !r.assignments()["pkc-d00001"].Admitted {
		t.Fatal("held after its site's window was removed")
	}
	// Set again after removal: it holds again (a reload reads it back).
	if _, err := r.svc.SetSiteWindow(t.Context(), operator, "aws/us-west-2", resource.Window{StartTime: "02:00", Duration: "1h"}); err != nil {
		t.Fatal(err)
	}
	if err := r.svc.Load(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// TestOrganizationWindowHoldsItsDedicatedPKCs: an organization's window
// holds its Dedicated clusters' PKCs that set none of their own; a
// cluster's own window comes first; another organization's PKC is not
// held; the window is known again after a restart of the view.
func TestOrganizationWindowHoldsItsDedicatedPKCs(t *testing.T) {
	r := newRig(t, "sqlite")
	r.running = map[string]string{}
	r.clock.now = time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC) // Monday
	const site = "aws/us-west-2"
	for _, id := range []string{"pkc-dorg001", "pkc-down001", "pkc-dother1"} {
		r.publish(id, site, "4.2.0", "4.2.0", resource.PhaseProvisioned, false)
	}
	tenant := func(pkc, org string, w *resource.Window) {
		st, _ := json.Marshal(resource.LKCStatus{PKC: pkc})
		spec := resource.LKCSpec{DisplayName: pkc, Type: resource.TypeDedicated, Cloud: "AWS", Region: "us-west-2", CKU: 1, MaintenanceWindow: w}
		observe(t, r.st, r.h.Reconcile, store.Resource{ID: "lkc-" + pkc[4:], Kind: resource.KindLKC, Organization: org, Generation: 1, Version: 1,
			Spec: resource.Encode(spec), Status: store.Status{ObservedGeneration: 1, Phase: resource.PhaseProvisioned, Detail: st}}, event.Desired)
	}
	tenant("pkc-dorg001", "org-1", nil)
	tenant("pkc-down001", "org-1", &resource.Window{StartTime: "09:00", Duration: "2h"}) // open now: its own comes first
	tenant("pkc-dother1", "org-2", nil)
	observe(t, r.st, r.h.Reconcile, store.Resource{ID: "org-1", Kind: resource.KindOrganization, Organization: "org-1", Generation: 2, Version: 2,
		Spec: resource.Encode(resource.OrganizationSpec{DisplayName: "one", MaintenanceWindow: &resource.Window{Day: "TUESDAY", StartTime: "02:00", Duration: "4h"}})}, event.Desired)
	// The view as a restarted fleet reads it back.
	if err := r.svc.Load(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := r.svc.CreateUpgrade(t.Context(), operator, fleet.UpgradeRequest{TargetVersion: "4.3.0", Waves: []resource.UpgradeWave{{Percent: 100}}, MaxInFlight: 5}); err != nil {
		t.Fatal(err)
	}
	as := r.assignments()
	if as["pkc-dorg001"].Admitted || !as["pkc-down001"].Admitted || !as["pkc-dother1"].Admitted {
		t.Fatalf("admitted: org-1's without a window %v, org-1's with its own %v, org-2's %v; want false, true, true",
			as["pkc-dorg001"].Admitted, as["pkc-down001"].Admitted, as["pkc-dother1"].Admitted)
	}
	r.follow(site, nil, 0)
	r.clock.Add(16*time.Hour + 30*time.Minute) // Tuesday 02:30
	r.upkeep()
	if !r.assignments()["pkc-dorg001"].Admitted {
		t.Fatal("not admitted inside its organization's window")
	}
}
