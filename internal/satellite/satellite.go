// Package satellite is the data-plane agent of one site. It dials out to
// the control plane's sync service, receives the site's full desired
// configuration with its version, keeps it on its own disk, realizes it
// through a driver and reports the generation it realized. A restart, or
// the control plane being away, changes nothing in the data plane: the
// agent starts from the configuration on disk.
package satellite

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	json "github.com/segmentio/encoding/json"

	"github.com/mothership-dev/mothership/internal/resource"
	"github.com/mothership-dev/mothership/internal/runtime/atomicfile"
	"github.com/mothership-dev/mothership/internal/runtime/backoff"
	"github.com/mothership-dev/mothership/internal/runtime/startstop"
	"github.com/mothership-dev/mothership/internal/runtime/trace"
	"github.com/mothership-dev/mothership/internal/satellite/meter"
	"github.com/prometheus/client_golang/prometheus"
)

// Link is how an agent reaches the sync service (link.Client).
type Link interface {
	// Watch calls fn with each bundle newer than held (the bundle the
	// agent holds, whole) as sync sends it, whole, until ctx ends or fn
	// fails; it reconnects by itself after a cut, resuming after the last
	// bundle fn took, and returns early only on a refusal no retry heals.
	Watch(ctx context.Context, held resource.Bundle, fn func(resource.Bundle) error) error
	// Report sends what the agent realized.
	Report(ctx context.Context, rep resource.Report) error
}

// Driver realizes resources on a site. Apply is idempotent: the agent calls
// it with the desired state, again and again.
type Driver interface {
	// Apply realizes id at item's state; progress may be called with
	// intermediate states while it works.
	Apply(ctx context.Context, id string, item resource.BundleItem, progress func(resource.Realized)) (resource.Realized, error)
	// Stop stops serving id and keeps its data: a cluster deleted but
	// restorable (BundleItem.RetainedUntil). Apply brings it back from
	// that data; Remove deletes it.
	Stop(ctx context.Context, id string) error
	// Remove tears id down and deletes its data.
	Remove(ctx context.Context, id string) error
	// Present lists the resources the driver holds on disk, running or
	// not, so that one whose removal a crash interrupted is removed on the
	// next start.
	Present() ([]string, error)
	// Close stops what the driver runs, leaving it to be resumed.
	Close() error
}

// Watcher is a Driver whose resources change on their own, after Apply
// returned: an operator on the site brings a cluster up, or someone edits
// or deletes what the driver made. Watch calls changed with a resource's
// id whenever that happens, until ctx ends; the agent then calls Apply for
// it again (with the desired state it holds) and reports what it
// realized. Without it, Apply must wait until its resource is realized.
type Watcher interface {
	Watch(ctx context.Context, changed func(id string))
}

// Config configures an agent.
type Config struct {
	Site   resource.Site
	Link   Link
	Driver Driver
	// DataDir keeps the last bundle.
	DataDir string
	// Parallel is how many resources are realized at once (default 8): a
	// long resize of one PKC does not hold back the others of the site.
	Parallel int
	// OnBundle, if set, is called with each bundle once it is saved on
	// disk: from then on the satellite holds that desired state, whatever
	// the link does. A benchmark times the control plane with it.
	OnBundle func(b resource.Bundle, at time.Time)
	// Meter, if set, holds the site's metered usage, which the agent
	// saves and reports every MeterEvery (default DefaultMeterEvery) through a Link
	// that is a UsageReporter.
	Meter      *meter.Meter
	MeterEvery time.Duration
	Logger     *slog.Logger
	// WholeReportEvery is how often a report names every resource the
	// agent realized, not only what changed (default
	// DefaultWholeReportEvery): sync takes each entry on its own, so a
	// whole report heals what sync lost of earlier ones (restored from a
	// backup, failed over to a replica behind) without the agent knowing.
	WholeReportEvery time.Duration
	// Registerer, if set, receives the agent's metrics: how long its
	// driver takes to realize a resource, and the bundle it holds.
	Registerer prometheus.Registerer
}

// DefaultMeterEvery is how often an agent reports its metered usage: a
// bucket is a write in sync and in billing each time it grew, so at fleet
// scale minutes, not seconds.
const DefaultMeterEvery = 5 * time.Minute

// MeteredDriver is a Driver that measures its clusters' usage itself,
// given where to count it and how often to sample.
type MeteredDriver interface {
	SetMeter(add func(cluster string, in, out int64), sample func(cluster string, storedBytes int64, partitions int), every time.Duration)
}

// UsageReporter is a Link that also reports metered usage.
type UsageReporter interface {
	ReportUsage(ctx context.Context, rep resource.UsageReport) error
}

// Agent is a satellite agent.
type Agent struct {
	cfg    Config
	log    *slog.Logger
	runner startstop.Runner

	mu       sync.Mutex
	bundle   resource.Bundle
	realized map[string]resource.Realized

	// reportMu makes reports one at a time, each sending what changed
	// since the last one sync took (sent); sent is nil until a whole
	// report got through, and again after a failed one and every
	// WholeReportEvery.
	reportMu sync.Mutex
	sent     map[string]resource.Realized

	applySeconds *prometheus.HistogramVec
}

// New returns an agent.
func New(cfg Config) (*Agent, error) {
	if cfg.Link == nil || cfg.Driver == nil || cfg.DataDir == "" {
		return nil, errors.New("satellite: Link, Driver and DataDir are required")
	}
	cfg.Parallel = cmp.Or(cfg.Parallel, 8)
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("satellite %s: %w", cfg.Site, err)
	}
	a := &Agent{cfg: cfg, log: cfg.Logger.With("satellite", cfg.Site.String()), realized: map[string]resource.Realized{},
		applySeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "mothership_satellite_apply_seconds",
			Help:    "How long the driver took to realize a resource of the bundle, by result (ok, failed).",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 12)}, []string{"result"})}
	if cfg.Registerer != nil {
		held := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "mothership_satellite_bundle_version",
			Help: "The version of the site's bundle the satellite holds (kept on its disk)."},
			func() float64 { v, _ := a.Realized(); return float64(v) })
		for _, c := range []prometheus.Collector{a.applySeconds, held} {
			if err := cfg.Registerer.Register(c); err != nil {
				// An agent of the site started again in the same process:
				// the first one's metrics stay registered.
				a.log.Warn("satellite: metrics not registered", "err", err)
			}
		}
	}
	return a, nil
}

func (a *Agent) bundlePath() string { return filepath.Join(a.cfg.DataDir, "bundle.json") }

// Start realizes the bundle kept on disk, then follows the sync service.
func (a *Agent) Start(ctx context.Context) error {
	b, err := a.load()
	if err != nil {
		return err
	}
	return a.runner.Start(ctx, func(ctx context.Context) error {
		a.run(ctx, b)
		return nil
	})
}

// Stop stops the agent and its driver; the data plane resumes from disk on
// the next start. Safe to call twice.
func (a *Agent) Stop() error {
	err := a.runner.Stop()
	return errors.Join(err, a.cfg.Driver.Close())
}

// Realized returns what the agent last realized, for status pages and tests.
func (a *Agent) Realized() (int64, map[string]resource.Realized) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.bundle.Version, maps.Clone(a.realized)
}

func (a *Agent) load() (resource.Bundle, error) {
	b := resource.Bundle{Site: a.cfg.Site.String()}
	data, err := os.ReadFile(a.bundlePath())
	if errors.Is(err, os.ErrNotExist) {
		return b, nil
	}
	if err != nil {
		return b, fmt.Errorf("satellite %s: read bundle: %w", a.cfg.Site, err)
	}
	if err := json.Unmarshal(data, &b); err != nil {
		return b, fmt.Errorf("satellite %s: bundle on disk: %w", a.cfg.Site, err)
	}
	return b, nil
}

// save writes the bundle atomically (atomicfile: a crash leaves the old file
// or the new one, synced).
func (a *Agent) save(b resource.Bundle) error {
	// Every spec in b was parsed on its way in (from the link, or from
	// this file), so it is written as it is, not checked again; the file
	// is for this agent's own reading, so nothing is escaped either.
	data, err := json.Append(nil, b, json.TrustRawMessage)
	if err != nil {
		return err
	}
	if err := atomicfile.Write(a.bundlePath(), data, 0o600); err != nil {
		return fmt.Errorf("satellite %s: save bundle: %w", a.cfg.Site, err)
	}
	return nil
}

// meter saves the site's metered usage and reports what sync has not
// heard, every MeterEvery until ctx ends, and saves it once more then: a
// report that fails is tried again at the next round, every hour kept.
func (a *Agent) meter(ctx context.Context) {
	ur, ok := a.cfg.Link.(UsageReporter)
	every := cmp.Or(a.cfg.MeterEvery, DefaultMeterEvery)
	for done := false; !done; {
		select {
		case <-ctx.Done():
			done = true
		case <-time.After(every):
		}
		if due := a.cfg.Meter.Due(); ok && len(due) > 0 && !done {
			if err := ur.ReportUsage(ctx, resource.UsageReport{Site: a.cfg.Site.String(), Buckets: due}); err != nil {
				a.log.WarnContext(ctx, "metered usage not reported; kept for the next round", "buckets", len(due), "err", err)
			} else {
				a.cfg.Meter.Reported(due)
			}
		}
		if err := a.cfg.Meter.Save(); err != nil {
			a.log.ErrorContext(ctx, "metered usage not saved", "err", err)
		}
	}
}

func (a *Agent) run(ctx context.Context, b resource.Bundle) {
	a.removeLeftovers(ctx, b)
	// The newest bundle saved on disk and not applied yet: follow puts
	// it, replacing one not taken, so the agent always goes to the newest.
	latest := make(chan resource.Bundle, 1)
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { a.follow(ctx, b, latest) })
	if a.cfg.Meter != nil {
		wg.Go(func() { a.meter(ctx) })
	}
	changed := a.watch(ctx, &wg)

	ok := a.apply(ctx, b)
	reported := false
	whole := time.NewTicker(cmp.Or(a.cfg.WholeReportEvery, DefaultWholeReportEvery))
	defer whole.Stop()
	for failures := 0; ctx.Err() == nil; {
		if !reported {
			reported = a.report(ctx) == nil
		}
		var retry <-chan time.Time // nil: wait for a new bundle only
		if ok && reported {
			failures = 0
		} else {
			// Something failed to realize, or the report did not get
			// through: come back soon, whether or not a new bundle comes.
			failures++
			retry = time.After(backoff.Delay(failures, 200*time.Millisecond, 10*time.Second))
		}
		select {
		case <-ctx.Done():
			return
		case b = <-latest:
			ok, reported = a.apply(ctx, b), false
		case <-retry:
			if !ok {
				ok, reported = a.apply(ctx, b), false
			}
		case <-whole.C:
			a.reportMu.Lock()
			a.sent = nil
			a.reportMu.Unlock()
			reported = false
		case <-changed.wake:
			for _, id := range changed.take() {
				if item, held := b.Resources[id]; held {
					ok = a.realize(ctx, id, item) && ok
					reported = false
				}
			}
		}
	}
}

// changes are the ids a Watcher said changed, not yet applied again; wake
// has a value while there are some.
type changes struct {
	wake chan struct{}
	mu   sync.Mutex
	ids  map[string]bool
}

func (c *changes) add(id string) {
	c.mu.Lock()
	c.ids[id] = true
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (c *changes) take() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	ids := slices.Sorted(maps.Keys(c.ids))
	clear(c.ids)
	return ids
}

// watch follows the driver's own changes, if it has any (Watcher).
func (a *Agent) watch(ctx context.Context, wg *sync.WaitGroup) *changes {
	c := &changes{wake: make(chan struct{}, 1), ids: map[string]bool{}}
	if w, ok := a.cfg.Driver.(Watcher); ok {
		wg.Go(func() { w.Watch(ctx, c.add) })
	}
	return c
}

// follow keeps every bundle sync sends on disk, then hands it to run. It
// resumes after held, the bundle on disk, so the link never sends again
// what the agent holds; while sync is away the data plane keeps serving.
func (a *Agent) follow(ctx context.Context, held resource.Bundle, latest chan resource.Bundle) {
	for attempt := 1; ; attempt++ {
		err := a.cfg.Link.Watch(ctx, held, func(next resource.Bundle) error {
			if next.Site != a.cfg.Site.String() {
				return fmt.Errorf("satellite %s: sync sent the bundle of %q", a.cfg.Site, next.Site)
			}
			if err := a.save(next); err != nil {
				return err
			}
			if a.cfg.OnBundle != nil {
				a.cfg.OnBundle(next, time.Now())
			}
			held = next
			select {
			case <-latest: // not taken yet: the newer one replaces it
			default:
			}
			latest <- next
			return nil
		})
		if ctx.Err() != nil {
			return
		}
		a.log.ErrorContext(ctx, "following the bundle failed; will retry", "attempt", attempt, "version", held.Version, "err", err)
		sleep(ctx, backoff.Delay(attempt, time.Second, time.Minute))
	}
}

// removeLeftovers removes what the driver holds but the bundle does not
// name: a resource removed from the bundle just before a crash, whose data
// must not stay behind.
func (a *Agent) removeLeftovers(ctx context.Context, b resource.Bundle) {
	present, err := a.cfg.Driver.Present()
	if err != nil {
		a.log.ErrorContext(ctx, "listing what the driver holds failed", "err", err)
		return
	}
	for _, id := range present {
		if _, ok := b.Resources[id]; ok {
			continue
		}
		if err := a.cfg.Driver.Remove(ctx, id); err != nil {
			a.log.ErrorContext(ctx, "removing a leftover failed", "id", id, "err", err)
			continue
		}
		a.log.InfoContext(ctx, "leftover removed", "id", id)
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// apply realizes every resource of b and removes what b no longer holds;
// it reports whether all of it succeeded.
func (a *Agent) apply(ctx context.Context, b resource.Bundle) bool {
	ok := true
	a.mu.Lock()
	// What the last bundle held, or was realized, and b does not: a
	// stopped (retained) resource is not realized, but its data is there.
	stale := slices.Collect(maps.Keys(a.realized))
	for id := range a.bundle.Resources {
		if _, ok := a.realized[id]; !ok {
			stale = append(stale, id)
		}
	}
	a.bundle = b
	a.mu.Unlock()
	for _, id := range stale {
		if _, ok := b.Resources[id]; ok {
			continue
		}
		if err := a.cfg.Driver.Remove(ctx, id); err != nil {
			a.log.ErrorContext(ctx, "removing a resource failed", "id", id, "err", err)
			ok = false
			continue
		}
		a.mu.Lock()
		delete(a.realized, id)
		a.mu.Unlock()
		a.log.InfoContext(ctx, "resource removed", "id", id)
	}
	var wg sync.WaitGroup
	var failed atomic.Bool
	slots := make(chan struct{}, a.cfg.Parallel)
	for _, id := range slices.Sorted(maps.Keys(b.Resources)) {
		item := b.Resources[id]
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			if !a.realize(ctx, id, item) {
				failed.Store(true)
			}
		})
	}
	wg.Wait()
	return ok && !failed.Load()
}

// realize applies one resource of the bundle, or stops it if it is
// deleted but retained; it reports whether that succeeded.
func (a *Agent) realize(ctx context.Context, id string, item resource.BundleItem) bool {
	if item.RetainedUntil != nil {
		return a.stop(ctx, id)
	}
	return a.applyOne(ctx, id, item)
}

// stop stops serving a retained resource and keeps its data; it reports
// whether that succeeded.
func (a *Agent) stop(ctx context.Context, id string) bool {
	a.mu.Lock()
	_, running := a.realized[id]
	a.mu.Unlock()
	if err := a.cfg.Driver.Stop(ctx, id); err != nil {
		a.log.ErrorContext(ctx, "stopping a deleted resource failed", "id", id, "err", err)
		return false
	}
	a.mu.Lock()
	delete(a.realized, id)
	a.mu.Unlock()
	if running {
		a.log.InfoContext(ctx, "resource stopped: deleted, its data kept for a restore", "id", id)
	}
	return true
}

// applyOne realizes one resource and records what it realized; it reports
// whether that succeeded.
func (a *Agent) applyOne(ctx context.Context, id string, item resource.BundleItem) bool {
	set := func(r resource.Realized) {
		a.mu.Lock()
		a.realized[id] = r
		a.mu.Unlock()
	}
	start := time.Now()
	// The apply continues the change's trace: the driver's writes and
	// this log line carry it.
	ctx = trace.Continue(ctx, item.TraceParent)
	before, seen := a.realizedOf(id)
	r, err := a.cfg.Driver.Apply(ctx, id, item, func(r resource.Realized) {
		set(r)
		a.reportProgress(ctx)
	})
	result := "ok"
	if err != nil {
		result = "failed"
	}
	a.applySeconds.WithLabelValues(result).Observe(time.Since(start).Seconds())
	if err == nil && (!seen || before.Generation < r.Generation) {
		// A generation realized for the first time (every bundle applies
		// every resource again; those are not news).
		a.log.InfoContext(ctx, "resource realized", "id", id, "generation", item.Generation, "phase", r.Phase,
			"trace_id", trace.IDOf(ctx), "seconds", time.Since(start).Seconds())
	}
	if err != nil {
		a.log.ErrorContext(ctx, "realizing a resource failed", "id", id, "generation", item.Generation, "trace_id", trace.IDOf(ctx), "err", err)
		r = resource.Realized{Generation: item.Generation - 1, Phase: resource.PhaseProvisioning, Reason: "SATELLITE_ERROR", Message: err.Error()}
		if prev, ok := a.realizedOf(id); ok {
			r.Generation, r.Detail = prev.Generation, prev.Detail
		}
	}
	set(r)
	return err == nil
}

func (a *Agent) realizedOf(id string) (resource.Realized, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	r, ok := a.realized[id]
	return r, ok
}

// DefaultWholeReportEvery is Config.WholeReportEvery's default.
const DefaultWholeReportEvery = 5 * time.Minute

// reportProgress reports a resource's progress unless a report is on its
// way already: progress is best effort (that report, or the next, carries
// it, and the final one is retried), and a driver's parallel applies must
// not queue behind a slow link.
func (a *Agent) reportProgress(ctx context.Context) {
	if !a.reportMu.TryLock() {
		return
	}
	defer a.reportMu.Unlock()
	_ = a.sendReport(ctx)
}

// report sends what the agent realized that sync has not taken yet: each
// entry is a resource's whole realized state, and one unchanged since the
// last report that got through is left out, so a change to one PKC costs
// sync one delivery's read, not its whole site's.
func (a *Agent) report(ctx context.Context) error {
	a.reportMu.Lock()
	defer a.reportMu.Unlock()
	return a.sendReport(ctx)
}

// sendReport is report, with reportMu held.
func (a *Agent) sendReport(ctx context.Context) error {
	version, realized := a.Realized()
	rep := resource.Report{Site: a.cfg.Site.String(), Version: version, Resources: realized}
	if a.sent != nil {
		rep.Resources = make(map[string]resource.Realized)
		for id, r := range realized {
			if prev, ok := a.sent[id]; !ok || !prev.Equal(r) {
				rep.Resources[id] = r
			}
		}
	}
	err := a.cfg.Link.Report(ctx, rep)
	switch {
	case err == nil:
		a.sent = realized
	case ctx.Err() == nil:
		// Whether sync took it is unknown: the next report says it all.
		a.sent = nil
		a.log.WarnContext(ctx, "reporting status failed; will retry", "err", err)
	}
	return err
}
