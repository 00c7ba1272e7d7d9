package simdriver_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mothership-dev/mothership/internal/resource"
	"github.com/mothership-dev/mothership/internal/satellite/simdriver"
)

func pkc(gen int64, brokers int) resource.BundleItem {
	return resource.BundleItem{Kind: resource.KindPKC, Generation: gen, Spec: resource.Encode(resource.PKCSpec{
		Cloud: "AWS", Region: "us-west-2", Dedicated: true, Brokers: brokers,
		Tenants: map[string]resource.Tenant{"lkc-1": {CKU: max(brokers/3, 1)}}})}
}

// factor makes a broker step take step.
func factor(step time.Duration) float64 {
	return float64(step) / float64(simdriver.DefaultBrokerStep)
}

func newDriver(t testing.TB, cfg simdriver.Config) *simdriver.Driver {
	t.Helper()
	d, err := simdriver.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d
}

func detail(t testing.TB, r resource.Realized) resource.PKCRealized {
	t.Helper()
	pr, err := resource.Decode[resource.PKCRealized](r.Detail)
	if err != nil {
		t.Error(err)
	}
	return pr
}

// isFault tells a simulated fault from any other error.
func isFault(err error) (rateLimited, failed bool) {
	var rl *simdriver.RateLimitedError
	return errors.As(err, &rl), errors.Is(err, simdriver.ErrSimulated)
}

// applyRetrying applies item as the agent does, again after each fault,
// and returns the number of attempts. It may run in any goroutine.
func applyRetrying(t testing.TB, d *simdriver.Driver, id string, item resource.BundleItem) (resource.Realized, int) {
	t.Helper()
	for attempt := 1; ; attempt++ {
		r, err := d.Apply(t.Context(), id, item, func(resource.Realized) {})
		if err == nil {
			return r, attempt
		}
		if rl, failed := isFault(err); !rl && !failed || attempt > 3 {
			t.Errorf("apply %s attempt %d: %v", id, attempt, err)
			return r, attempt
		}
	}
}

func removeRetrying(t testing.TB, d *simdriver.Driver, id string) int {
	t.Helper()
	for attempt := 1; ; attempt++ {
		err := d.Remove(t.Context(), id)
		if err == nil {
			return attempt
		}
		if rl, failed := isFault(err); !rl && !failed || attempt > 3 {
			t.Errorf("remove %s attempt %d: %v", id, attempt, err)
			return attempt
		}
	}
}

// TestTimingScalesWithTimeFactor: each operation takes its steps times the
// scaled step, reports progress once a step, and a generation already
// realized returns at once. Bounds are loose: only the lower one is tight.
func TestTimingScalesWithTimeFactor(t *testing.T) {
	const step = 20 * time.Millisecond
	f := factor(step)
	scaled := func(d time.Duration) time.Duration { return time.Duration(float64(d) * f) }
	d := newDriver(t, simdriver.Config{TimeFactor: f})
	steps := []struct {
		reason   string
		item     resource.BundleItem
		least    time.Duration
		progress int
	}{
		{"a create builds the base, then one step a broker", pkc(1, 2), scaled(simdriver.DefaultCreateTime) + 2*step, 3},
		{"a grow of 4 brokers takes 4 steps", pkc(2, 6), 4 * step, 4},
		{"a shrink of 3 brokers takes 3 steps", pkc(3, 3), 3 * step, 3},
		{"a new generation that moves no broker is a config change", pkc(4, 3), scaled(simdriver.DefaultConfigTime), 1},
		{"a generation already realized returns at once", pkc(4, 3), 0, 0},
	}
	for _, s := range steps {
		var progress []resource.Realized
		start := time.Now()
		r, err := d.Apply(t.Context(), "pkc-1", s.item, func(r resource.Realized) { progress = append(progress, r) })
		took := time.Since(start)
		if err != nil {
			t.Fatalf("%s: %v", s.reason, err)
		}
		want, _ := resource.Decode[resource.PKCSpec](s.item.Spec)
		got := detail(t, r)
		if r.Generation != s.item.Generation || r.Phase != resource.PhaseProvisioned || got.Brokers != want.Brokers ||
			got.BootstrapEndpoint != "pkc-1.us-west-2.aws.sim.invalid:9092" {
			t.Fatalf("%s: realized %+v %+v", s.reason, r, got)
		}
		if took < s.least || took > s.least+2*time.Second {
			t.Errorf("%s: took %s, want about %s", s.reason, took, s.least)
		}
		if len(progress) != s.progress {
			t.Errorf("%s: %d progress reports, want %d", s.reason, len(progress), s.progress)
		}
		for _, p := range progress {
			if p.Phase != resource.PhaseProvisioning || p.Generation != s.item.Generation-1 || p.Message == "" {
				t.Errorf("%s: progress %+v", s.reason, p)
			}
		}
	}
	start := time.Now()
	if err := d.Remove(t.Context(), "pkc-1"); err != nil {
		t.Fatal(err)
	}
	if took, least := time.Since(start), scaled(simdriver.DefaultDeleteTime); took < least || took > least+2*time.Second {
		t.Errorf("remove took %s, want about %s", took, least)
	}
}

// TestFaultsAtConfiguredShare: the first attempts of about the configured
// shares of operations are refused or fail, every retry succeeds, and the
// same seed faults the same operations.
func TestFaultsAtConfiguredShare(t *testing.T) {
	const n, rlShare, failShare = 2000, 0.1, 0.2
	run := func(seed uint64) (faulted []string) {
		d := newDriver(t, simdriver.Config{TimeFactor: 1e-7, RateLimitShare: rlShare, FailShare: failShare, Seed: seed})
		var mu sync.Mutex
		var rateLimited, failed int
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				id := fmt.Sprintf("pkc-%d", i)
				_, err := d.Apply(t.Context(), id, pkc(1, 3), func(resource.Realized) {})
				if err == nil {
					return
				}
				var e *simdriver.RateLimitedError
				switch rl, fail := isFault(err); {
				case rl && errors.As(err, &e) && e.RetryAfter() != time.Duration(float64(simdriver.DefaultRetryAfter)*1e-7):
					t.Errorf("retry after %s", e.RetryAfter())
				case !rl && !fail:
					t.Errorf("apply %s: %v", id, err)
				}
				mu.Lock()
				if errors.Is(err, simdriver.ErrSimulated) {
					failed++
				} else {
					rateLimited++
				}
				faulted = append(faulted, id)
				mu.Unlock()
				if r, attempts := applyRetrying(t, d, id, pkc(1, 3)); attempts != 1 || detail(t, r).Brokers != 3 {
					t.Errorf("retry of %s: %d attempts, %+v", id, attempts, r)
				}
			})
		}
		wg.Wait()
		slices.Sort(faulted)
		// 5 standard deviations either way.
		within := func(what string, got int, share float64) {
			mean, sd := float64(n)*share, math.Sqrt(float64(n)*share*(1-share))
			if float64(got) < mean-5*sd || float64(got) > mean+5*sd {
				t.Errorf("%s: %d of %d, want about %.0f", what, got, n, mean)
			}
		}
		t.Logf("seed %d: %d rate limited, %d failed of %d", seed, rateLimited, failed, n)
		within("rate limited", rateLimited, rlShare)
		within("failed", failed, failShare)
		if st := d.Stats(); st.RateLimited != int64(rateLimited) || st.Failed != int64(failed) || st.Realized != n || st.Operations != n {
			t.Errorf("stats %+v", st)
		}
		var removeFaults int
		for i := range n {
			wg.Go(func() {
				if removeRetrying(t, d, fmt.Sprintf("pkc-%d", i)) > 1 {
					mu.Lock()
					removeFaults++
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		within("removals faulted", removeFaults, rlShare+failShare)
		if present, _ := d.Present(); len(present) != 0 {
			t.Errorf("present after removing all: %d", len(present))
		}
		return faulted
	}
	a, b, c := run(7), run(7), run(8)
	if !slices.Equal(a, b) {
		t.Errorf("the same seed faulted other operations")
	}
	if slices.Equal(a, c) {
		t.Errorf("another seed faulted the same operations")
	}
}

// TestContextAndCloseEndOperations: a long operation returns promptly when
// its context ends or the driver closes, and one waiting for the same PKC
// does too; the brokers added so far stay.
func TestContextAndCloseEndOperations(t *testing.T) {
	d := newDriver(t, simdriver.Config{}) // realistic: a create takes minutes
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range errs {
		wg.Go(func() {
			_, errs[i] = d.Apply(ctx, "pkc-1", pkc(1, 3), func(resource.Realized) {})
		})
	}
	wg.Wait()
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("took %s after the context ended", took)
	}
	for _, err := range errs {
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("err %v, want the context's", err)
		}
	}
	if present, _ := d.Present(); !slices.Equal(present, []string{"pkc-1"}) {
		t.Errorf("a create under way is present: %v", present)
	}

	done := make(chan error, 1)
	go func() { done <- d.Remove(t.Context(), "pkc-1") }()
	time.Sleep(20 * time.Millisecond) // let it start; Close ends it either way
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, simdriver.ErrClosed) {
			t.Errorf("remove cut by Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not end a removal")
	}
	if err := d.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestRestartKeepsWhatIsRealized: with a DataDir, a new driver on the same
// dir holds what the old one realized, and what it was removing.
func TestRestartKeepsWhatIsRealized(t *testing.T) {
	dir := t.TempDir()
	// Steps of 1 ms, a removal of 120 ms; only Close writes.
	cfg := simdriver.Config{TimeFactor: factor(time.Millisecond), DeleteTime: time.Hour, DataDir: dir, FlushInterval: time.Hour}
	d := newDriver(t, cfg)
	for _, id := range []string{"pkc-1", "pkc-2", "pkc-3"} {
		applyRetrying(t, d, id, pkc(1, 3))
	}
	if err := d.Remove(t.Context(), "pkc-2"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	if err := d.Remove(ctx, "pkc-3"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("remove cut by its context: %v", err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}

	var applied []string
	var mu sync.Mutex
	cfg.OnApplied = func(id string, _ resource.BundleItem, _ time.Time) {
		mu.Lock()
		defer mu.Unlock()
		applied = append(applied, id)
	}
	d = newDriver(t, cfg)
	if present, _ := d.Present(); !slices.Equal(present, []string{"pkc-1", "pkc-3"}) {
		t.Fatalf("present after restart: %v", present)
	}
	if st, ok := d.State("pkc-1"); !ok || st.Generation != 1 || st.Brokers != 3 || st.Removing {
		t.Fatalf("pkc-1 after restart: %+v", st)
	}
	if st, _ := d.State("pkc-3"); !st.Removing {
		t.Fatalf("pkc-3 after restart: %+v", st)
	}
	if r, _ := applyRetrying(t, d, "pkc-1", pkc(1, 3)); r.Generation != 1 || len(applied) != 0 {
		t.Fatalf("a realized generation was worked on again: %+v, applied %v", r, applied)
	}
	removeRetrying(t, d, "pkc-3")
	if present, _ := d.Present(); !slices.Equal(present, []string{"pkc-1"}) {
		t.Fatalf("present: %v", present)
	}
}

// TestManyDriversInOneProcess: 200 sites of 50 PKCs each create, resize
// and remove at once, with faults, each site one operation at a time as
// its agent does; no goroutine stays behind.
func TestManyDriversInOneProcess(t *testing.T) {
	const sites, pkcs = 200, 50
	idle := runtime.NumGoroutine()
	drivers := make([]*simdriver.Driver, sites)
	for i := range drivers {
		drivers[i] = newDriver(t, simdriver.Config{TimeFactor: 1e-6, FailShare: 0.1, RateLimitShare: 0.1, Seed: uint64(i),
			DataDir: t.TempDir()})
	}
	var wg sync.WaitGroup
	for _, d := range drivers {
		wg.Go(func() {
			for gen, brokers := range []int{3, 6} {
				for j := range pkcs {
					applyRetrying(t, d, fmt.Sprintf("pkc-%d", j), pkc(int64(gen+1), brokers))
				}
			}
			for j := 0; j < pkcs; j += 2 {
				removeRetrying(t, d, fmt.Sprintf("pkc-%d", j))
			}
		})
	}
	wg.Wait()
	var ops int64
	for _, d := range drivers {
		if present, _ := d.Present(); len(present) != pkcs/2 {
			t.Fatalf("present: %d, want %d", len(present), pkcs/2)
		}
		ops += d.Stats().Operations
	}
	if ops != sites*pkcs*5/2 {
		t.Errorf("%d operations, want %d", ops, sites*pkcs*5/2)
	}
	for deadline := time.Now().Add(5 * time.Second); runtime.NumGoroutine() > idle; {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines with every driver idle, %d before", runtime.NumGoroutine(), idle)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func atVersion(item resource.BundleItem, version string) resource.BundleItem {
	spec, _ := resource.Decode[resource.PKCSpec](item.Spec)
	spec.Version = version
	item.Spec = resource.Encode(spec)
	return item
}

// TestUpgradeRollsEachBroker: another version rolls the brokers one at a
// time and reports the version they run; with every upgrade set to fail,
// the PKC reports FAILED at the version it still runs, and going back to
// it succeeds.
func TestUpgradeRollsEachBroker(t *testing.T) {
	d := newDriver(t, simdriver.Config{TimeFactor: factor(time.Millisecond)})
	r, _ := applyRetrying(t, d, "pkc-1", atVersion(pkc(1, 3), "4.2.0"))
	if got := detail(t, r); got.Version != "4.2.0" || got.MetadataVersion != "4.2-IV1" {
		t.Fatalf("created at %+v", got)
	}
	var rolls []string
	r, err := d.Apply(t.Context(), "pkc-1", atVersion(pkc(2, 3), "4.3.0"), func(p resource.Realized) { rolls = append(rolls, p.Message) })
	if err != nil || r.Phase != resource.PhaseProvisioned || detail(t, r).Version != "4.3.0" {
		t.Fatalf("upgraded: %+v %v", r, err)
	}
	if len(rolls) != 3 || rolls[2] != "upgrading: rolling broker 3 of 3 to Kafka 4.3.0" {
		t.Fatalf("progress of the roll: %q", rolls)
	}
	if got := detail(t, r).MetadataVersion; got != "4.2-IV1" {
		t.Fatalf("the metadata version moved before it was finalized: %s", got)
	}

	failing := newDriver(t, simdriver.Config{TimeFactor: factor(time.Millisecond), UpgradeFailShare: 1})
	applyRetrying(t, failing, "pkc-1", atVersion(pkc(1, 3), "4.2.0"))
	r, err = failing.Apply(t.Context(), "pkc-1", atVersion(pkc(2, 3), "4.3.0"), func(resource.Realized) {})
	if err != nil || r.Phase != resource.PhaseFailed || r.Reason != "UPGRADE_FAILED" || r.Generation != 2 || detail(t, r).Version != "4.2.0" {
		t.Fatalf("a failed upgrade: %+v %v", r, err)
	}
	r, err = failing.Apply(t.Context(), "pkc-1", atVersion(pkc(3, 3), "4.2.0"), func(resource.Realized) {})
	if err != nil || r.Phase != resource.PhaseProvisioned || r.Generation != 3 || detail(t, r).Version != "4.2.0" {
		t.Fatalf("rolled back: %+v %v", r, err)
	}
}
