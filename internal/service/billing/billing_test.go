package billing_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mothership-dev/mothership/internal/resource"
	"github.com/mothership-dev/mothership/internal/runtime/store"
	"github.com/mothership-dev/mothership/internal/runtime/store/sqlite"
	"github.com/mothership-dev/mothership/internal/service/billing"
	"github.com/mothership-dev/mothership/internal/service/svcapi"
)

// day is the Monday the tests bill, in UTC.
var day = time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)

func at(hhmm string) time.Time {
	t, err := time.Parse("15:04", hhmm)
	if err != nil {
		panic(err)
	}
	return day.Add(time.Duration(t.Hour())*time.Hour + time.Duration(t.Minute())*time.Minute)
}

var (
	admin    = svcapi.Principal{Owner: "u-admin", Organization: "org-1", Bindings: []svcapi.Binding{{Role: svcapi.RoleOrganizationAdmin, Scope: svcapi.Scope{Org: "org-1"}}}}
	operator = svcapi.Principal{Owner: "u-ops", Organization: "org-ops", Bindings: []svcapi.Binding{{Role: svcapi.RoleFleetAdmin}}}
)

// rig is the billing service on its own SQLite file, with a clock the
// test moves, fed cluster states as kafka's events would carry them.
type rig struct {
	t    *testing.T
	path string
	now  time.Time
	svc  *billing.Service
	st   store.Store
	ver  map[string]int64
}

func newRig(t *testing.T) *rig {
	r := &rig{t: t, path: filepath.Join(t.TempDir(), "billing.db"), ver: map[string]int64{}}
	r.open()
	return r
}

// open (again) the service on the same database: a restart.
func (r *rig) open() {
	if r.st != nil {
		_ = r.st.Close()
	}
	r.svc = billing.New(billing.Config{Now: func() time.Time { return r.now }})
	h := r.svc.Host()
	st, err := sqlite.Open(r.t.Context(), sqlite.Config{Path: r.path, Service: billing.Name, Owns: h.Owns})
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { _ = st.Close() })
	r.st = st
	h.Attach(st)
}

// cluster is kafka writing cluster id's state at t: its phase, realized
// CKUs, and whether deleted; version, when set, replays an older one.
func (r *rig) cluster(id, typ string, t time.Time, phase string, cku int, deleted bool, version int64) {
	r.t.Helper()
	if version == 0 {
		r.ver[id]++
		version = r.ver[id]
	}
	c := store.Resource{ID: id, Kind: resource.KindLKC, Organization: "org-1", Environment: "env-1", Generation: 1, Version: version, UpdatedAt: t,
		Spec:   resource.Encode(resource.LKCSpec{DisplayName: "orders", Type: typ, CKU: cku, Cloud: "AWS", Region: "us-west-2"}),
		Status: store.Status{ObservedGeneration: 1, Phase: phase, Detail: resource.Encode(resource.LKCStatus{CKU: cku})}}
	if deleted {
		c.DeletedAt = &t
	}
	if err := r.st.Update(r.t.Context(), func(ctx context.Context, tx store.Tx) error { return r.svc.Apply(ctx, tx, c) }); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rig) costs(p svcapi.Principal, granularity string) []billing.Cost {
	r.t.Helper()
	l, err := r.svc.ListCosts(r.t.Context(), p, billing.CostQuery{Organization: "org-1", StartDate: "2026-12-07", EndDate: "2026-12-08", Granularity: granularity})
	if err != nil {
		r.t.Fatal(err)
	}
	return l.Data
}

type want struct {
	start    string
	quantity float64
	price    float64
	amount   float64
}

func check(t *testing.T, what string, got []billing.Cost, lineType string, w ...want) {
	t.Helper()
	if len(got) != len(w) {
		t.Fatalf("%s: %d lines, want %d: %+v", what, len(got), len(w), got)
	}
	for i, c := range got {
		quantity := float64(int64(c.Quantity*10000+0.5)) / 10000
		if c.StartTime.Format("15:04") != w[i].start || quantity != w[i].quantity || c.Price != w[i].price || c.Amount != w[i].amount || c.LineType != lineType {
			t.Errorf("%s: line %d is %s %s quantity %v at %v = %v, want %s quantity %v at %v = %v", what, i, c.StartTime.Format("15:04"), c.LineType,
				c.Quantity, c.Price, c.Amount, w[i].start, w[i].quantity, w[i].price, w[i].amount)
		}
	}
}

// TestCKUHoursFromTheHistory: a Dedicated cluster provisioned at 10:00
// with 2 CKU, resized to 4 realized at 10:20, deleted at 11:30, restored
// at 13:15; the price raised at 12:00 (an operator's new version); the
// day asked at 14:45 shows what accrued so far. Totals are exact to the
// cent, hourly and daily; a state replayed out of order changes nothing;
// after a restart in the middle of an hour, and recomputed, the lines are
// the same.
func TestCKUHoursFromTheHistory(t *testing.T) {
	r := newRig(t)
	r.now = at("09:00")
	r.cluster("lkc-1", resource.TypeDedicated, at("09:50"), resource.PhaseProvisioning, 0, false, 0) // accepted: nothing to bill
	r.cluster("lkc-1", resource.TypeDedicated, at("10:00"), resource.PhaseProvisioned, 2, false, 0)
	r.cluster("lkc-1", resource.TypeDedicated, at("10:05"), resource.PhaseProvisioning, 2, false, 0) // resize asked: still 2
	r.cluster("lkc-1", resource.TypeDedicated, at("10:20"), resource.PhaseProvisioned, 4, false, 0)  // realized
	r.cluster("lkc-1", resource.TypeDedicated, at("10:05"), resource.PhaseProvisioning, 2, false, 3) // a late replay
	r.cluster("lkc-1", resource.TypeDedicated, at("11:30"), resource.PhaseProvisioned, 4, true, 0)   // deleted
	r.now = at("11:59")
	if _, err := r.svc.SetPrices(t.Context(), operator, billing.PriceBookUpdate{EffectiveFrom: ptr(at("12:00")),
		Prices: []resource.Price{{LineType: billing.LineCKUs, UnitMicros: 3_000_000}}}); err != nil {
		t.Fatal(err)
	}
	r.cluster("lkc-1", resource.TypeDedicated, at("13:15"), resource.PhaseProvisioned, 4, false, 0) // restored
	r.now = at("14:45")

	hourly := []want{
		{"10:00", 3.3333, 2, 6.67}, // 2 × 20/60 + 4 × 40/60 CKU-hours at $2
		{"11:00", 2, 2, 4},         // 4 × 30/60, deleted at 11:30
		{"13:00", 3, 3, 9},         // 4 × 45/60 after the restore, at the new price
		{"14:00", 3, 3, 9},         // 4 × 45/60 accrued so far
	}
	check(t, "hourly", r.costs(admin, billing.Hourly), billing.LineCKUs, hourly...)
	daily := r.costs(admin, billing.Daily)
	check(t, "daily", daily, billing.LineCKUs, want{"00:00", 5.3333, 2, 10.67}, want{"00:00", 6, 3, 18})
	if daily[0].StartDate != "2026-12-07" || daily[0].EndDate != "2026-12-08" || daily[0].Resource.ID != "lkc-1" || daily[0].Unit != billing.UnitCKU {
		t.Errorf("a daily line: %+v", daily[0])
	}

	// A restart in the middle of an hour, then the same request.
	r.now = at("14:45")
	r.open()
	again := r.costs(admin, billing.Daily)
	for i := range daily {
		if again[i] != daily[i] {
			t.Errorf("after a restart, line %d is %+v, was %+v", i, again[i], daily[i])
		}
	}
}

// TestBaseHoursAndWhoMayAsk: a Standard cluster bills its hours at the
// Standard price, a Basic one at the Basic price (free by default); an
// organization's admin sees its own costs, another organization's key
// is refused, an operator may ask for any organization; bad dates are
// named.
func TestBaseHoursAndWhoMayAsk(t *testing.T) {
	r := newRig(t)
	r.now = at("12:00")
	r.cluster("lkc-std", resource.TypeStandard, at("09:30"), resource.PhaseProvisioned, 0, false, 0)
	r.cluster("lkc-bas", resource.TypeBasic, at("10:00"), resource.PhaseProvisioned, 0, false, 0)
	var std, basic []billing.Cost
	for _, c := range r.costs(operator, billing.Daily) {
		if c.Resource.ID == "lkc-std" {
			std = append(std, c)
		} else {
			basic = append(basic, c)
		}
	}
	check(t, "standard", std, billing.LineBase, want{"00:00", 2.5, 1.5, 3.75})
	check(t, "basic", basic, billing.LineBase, want{"00:00", 2, 0, 0})

	other := svcapi.Principal{Owner: "u-2", Organization: "org-2", Bindings: []svcapi.Binding{{Role: svcapi.RoleOrganizationAdmin, Scope: svcapi.Scope{Org: "org-2"}}}}
	if _, err := r.svc.ListCosts(t.Context(), other, billing.CostQuery{Organization: "org-1", StartDate: "2026-12-07", EndDate: "2026-12-08"}); err == nil {
		t.Error("another organization's admin read org-1's costs")
	}
	if l, err := r.svc.ListCosts(t.Context(), other, billing.CostQuery{StartDate: "2026-12-07", EndDate: "2026-12-08"}); err != nil || len(l.Data) != 0 {
		t.Errorf("org-2's own costs: %v, %v", l.Data, err)
	}
	_, err := r.svc.ListCosts(t.Context(), admin, billing.CostQuery{StartDate: "7/12/2026", EndDate: "2026-12-01", Granularity: "WEEKLY"})
	if err == nil || !containsAll(err.Error(), "start_date", "granularity") {
		t.Errorf("bad dates and granularity: %v", err)
	}
	if _, err := r.svc.SetPrices(t.Context(), admin, billing.PriceBookUpdate{Prices: []resource.Price{{LineType: billing.LineCKUs}}}); err == nil {
		t.Error("a tenant set the prices")
	}
	if _, err := r.svc.SetPrices(t.Context(), operator, billing.PriceBookUpdate{EffectiveFrom: ptr(at("08:00")),
		Prices: []resource.Price{{LineType: "KAFKA_FOO", UnitMicros: -1}}}); err == nil || !containsAll(err.Error(), "effective_from", "line_type", "unit_micros") {
		t.Errorf("a bad price book: %v", err)
	}
}

func ptr[T any](v T) *T { return &v }

func containsAll(s string, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

// meter is sync announcing a satellite's bucket, whole.
func (r *rig) meter(site, cluster string, hour time.Time, in, out int64, final bool) {
	r.t.Helper()
	r.bucket(resource.MeterSpec{Site: site, Cluster: cluster, Hour: hour, BytesIn: in, BytesOut: out, Final: final})
}

// bucket is sync announcing bucket b, whole.
func (r *rig) bucket(b resource.MeterSpec) {
	r.t.Helper()
	r.ver["meter"]++
	m := store.Resource{ID: resource.MeterID(b.Cluster, b.Hour), Kind: resource.KindMeter, Version: r.ver["meter"], Generation: r.ver["meter"],
		Spec: resource.Encode(b)}
	if err := r.st.Update(r.t.Context(), func(ctx context.Context, tx store.Tx) error { return r.svc.ApplyMeter(ctx, tx, m) }); err != nil {
		r.t.Fatal(err)
	}
}

// TestMeteredBytesFromTheSatellites: a satellite's hourly buckets become
// network lines per GB; a bucket reported again as it grew replaces the
// one before (nothing counted twice); a satellite away for three hours
// reports those hours when it returns, each in its own hour; a bucket of
// an unknown cluster, or from another site, is dropped.
func TestMeteredBytesFromTheSatellites(t *testing.T) {
	r := newRig(t)
	r.now = at("16:30")
	r.cluster("lkc-m", resource.TypeStandard, at("09:00"), resource.PhaseProvisioned, 0, false, 0)
	const site = "aws/us-west-2"
	r.meter(site, "lkc-m", at("09:00"), 1_000_000_000, 500_000_000, false)
	r.meter(site, "lkc-m", at("09:00"), 2_000_000_000, 1_000_000_000, true) // grown, then closed: replaces
	// Away from 10:00 to 13:00; back at 13:10 with the hours it kept.
	for _, h := range []string{"10:00", "11:00", "12:00"} {
		r.meter(site, "lkc-m", at(h), 1_000_000_000, 0, true)
	}
	r.meter("gcp/europe-west1", "lkc-m", at("14:00"), 9_000_000_000, 0, true) // not its site
	r.meter(site, "lkc-unknown", at("14:00"), 9_000_000_000, 0, true)         // not a cluster billing knows
	hourly := r.costs(admin, billing.Hourly)
	write, read := ofType(hourly, billing.LineWrite), ofType(hourly, billing.LineRead)
	check(t, "written", write, billing.LineWrite,
		want{"09:00", 2, 0.05, 0.1}, want{"10:00", 1, 0.05, 0.05}, want{"11:00", 1, 0.05, 0.05}, want{"12:00", 1, 0.05, 0.05})
	check(t, "read", read, billing.LineRead, want{"09:00", 1, 0.05, 0.05})
	if read[0].Unit != billing.UnitGB {
		t.Errorf("unit %q, want GB", read[0].Unit)
	}
	daily := r.costs(admin, billing.Daily)
	total := 0.0
	for _, c := range daily {
		total += c.Amount
	}
	// 7.5 Standard hours at $1.50, 5 GB written and 1 GB read at $0.05.
	if want := 11.25 + 0.25 + 0.05; fmt.Sprintf("%.2f", total) != fmt.Sprintf("%.2f", want) {
		t.Errorf("the day's total is %.2f, want %.2f: %+v", total, want, daily)
	}

	// Storage (the hour's average) per GB-hour and partitions per hour,
	// at prices an operator set for the hours from 15:00.
	r.now = at("14:59")
	if _, err := r.svc.SetPrices(t.Context(), operator, billing.PriceBookUpdate{EffectiveFrom: ptr(at("15:00")), Prices: []resource.Price{
		{LineType: billing.LineStorage, UnitMicros: 100_000}, {LineType: billing.LinePartition, UnitMicros: 10_000}}}); err != nil {
		t.Fatal(err)
	}
	r.now = at("16:30")
	r.bucket(resource.MeterSpec{Site: site, Cluster: "lkc-m", Hour: at("15:00"), StoredBytes: 3_000_000_000, Partitions: 6})
	hourly = r.costs(admin, billing.Hourly)
	storage, partitions := ofType(hourly, billing.LineStorage), ofType(hourly, billing.LinePartition)
	check(t, "stored", storage, billing.LineStorage, want{"15:00", 3, 0.1, 0.3})
	check(t, "partitions", partitions, billing.LinePartition, want{"15:00", 6, 0.01, 0.06})
}

// ofType are the lines of lineType.
func ofType(lines []billing.Cost, lineType string) []billing.Cost {
	var out []billing.Cost
	for _, c := range lines {
		if c.LineType == lineType {
			out = append(out, c)
		}
	}
	return out
}
