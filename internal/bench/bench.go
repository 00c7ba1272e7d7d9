// Package bench drives the fleet-scale scenario of `mothership bench`: it
// starts the whole control plane on the embedded default with many
// simulated satellites, creates clusters over several organizations,
// clouds and regions, applies a steady stream of changes at a given rate,
// and times every change through each hop to the satellite and back to
// PROVISIONED. It also times a full resync after a cold restart and checks
// that no accepted change was lost.
package bench

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mothership-dev/mothership/internal/api"
	"github.com/mothership-dev/mothership/internal/cloud/sim"
	"github.com/mothership-dev/mothership/internal/controlplane"
	"github.com/mothership-dev/mothership/internal/resource"
	"github.com/mothership-dev/mothership/internal/runtime/broker"
	"github.com/mothership-dev/mothership/internal/runtime/event"
	"github.com/mothership-dev/mothership/internal/runtime/store"
	"github.com/mothership-dev/mothership/internal/runtime/store/sqlite"
	"github.com/mothership-dev/mothership/internal/satellite"
)

// Config is a scenario.
type Config struct {
	// Clusters is how many LKCs to create before the steady phase.
	Clusters int
	// Satellites is how many simulated sites (over three clouds).
	Satellites int
	// Rate is the steady phase's changes per second, for Duration.
	Rate     float64
	Duration time.Duration
	// DataDir holds the run's state (a temporary directory when empty,
	// removed afterwards).
	DataDir string
	// URL, if set, is a running control plane to drive instead of
	// starting one. Key and Secret act in one organization (its quota
	// bounds Clusters), Kafka is its event cluster (the hops are read
	// there) and Sites the sites its satellites serve. The satellite hop
	// and the cold restart are not measured then, the PKCs not counted,
	// and CPU and memory are the control plane's as its /metrics says.
	URL, Key, Secret string
	Kafka            []string
	// KafkaOpts are further client options for Kafka (its SASL user).
	KafkaOpts []kgo.Opt
	Sites     []resource.Site
	// Driver makes each site's simulated satellite driver.
	Driver func(site resource.Site, dir string) (satellite.Driver, error)
	// ResyncInterval is every service's periodic resync (the default
	// when zero: 10 minutes).
	ResyncInterval time.Duration
	// Concurrency bounds the requests in flight (default 64).
	Concurrency int
	// Seed makes the scenario repeatable.
	Seed uint64
	// Progress receives a line every few seconds.
	Progress io.Writer
	// HeapProfile, if set, receives a heap profile (pprof's, after a
	// collection) at the end of the steady phase, with the whole system
	// still running: what holds the memory at that scale.
	HeapProfile io.Writer
	// CPUProfile, if set, receives a CPU profile of the steady phase,
	// from its start until its changes completed and the services
	// drained: the span that cpu_per_change_ms measures, without the
	// create phase's work.
	CPUProfile io.Writer
	// Upgrade, if set, runs the upgrade scenario instead of the steady
	// phase and the cold restart.
	Upgrade *UpgradeConfig
	Logger  *slog.Logger
}

// Latency is a distribution of one hop, in milliseconds.
type Latency struct {
	N   int     `json:"n"`
	P50 float64 `json:"p50_ms"`
	P95 float64 `json:"p95_ms"`
	P99 float64 `json:"p99_ms"`
	Max float64 `json:"max_ms"`
}

// Result is what a run measured.
type Result struct {
	Clusters   int `json:"clusters"`
	PKCs       int `json:"pkcs"`
	Satellites int `json:"satellites"`
	// CreateS is how long creating the clusters took, until all were
	// PROVISIONED.
	CreateS float64 `json:"create_s"`
	// Changes were accepted in the steady phase; ChangesPerS is the rate
	// achieved, and Completed how many went through every hop.
	Changes     int     `json:"changes"`
	ChangesPerS float64 `json:"changes_per_s"`
	Completed   int     `json:"completed"`
	// E2E is API accepted (kafka committed the change) → the satellite
	// holds the desired state, for the changes the data plane sees
	// (create, resize, delete).
	E2EP50ms float64            `json:"e2e_p50_ms"`
	E2EP95ms float64            `json:"e2e_p95_ms"`
	E2EP99ms float64            `json:"e2e_p99_ms"`
	Hops     map[string]Latency `json:"hops"`
	// CPUSeconds and RSSBytes are this process's (control plane,
	// satellites and the bench's own client): user+system CPU over the
	// whole run, and peak resident memory.
	CPUSeconds float64 `json:"cpu_s"`
	RSSBytes   int64   `json:"rss_bytes"`
	// CPUPerChangeMs is the CPU of the steady phase (from its start until
	// its changes completed and every service applied what it had seen)
	// over its changes: the control plane's, the satellites' and the
	// bench's own client's.
	CPUPerChangeMs float64 `json:"cpu_per_change_ms"`
	// DeferredS is how long, after the steady phase's changes
	// completed, the services off their path took to apply what they
	// had seen (audit's records, billing, the fleet view): work a run
	// would otherwise leave out of cpu_per_change_ms.
	DeferredS float64 `json:"deferred_s"`
	// Drained is false if they were still behind when the bench stopped
	// waiting (two minutes). With URL it is not watched: true, and
	// DeferredS 0.
	Drained bool `json:"drained"`
	// LoadAvg is the machine's one-minute load average at the end of the
	// steady phase: runs on shared machines compare only beside it.
	LoadAvg float64 `json:"load_avg"`
	// ResyncS is the time from a cold restart until every service has
	// caught up: applied every event written before the restart and
	// retried the keys that were failing (the periodic resync heals the
	// rest in its turn).
	ResyncS float64 `json:"resync_s"`
	// ResyncPeakOverAvg is the busiest second's resync reconciles over the
	// average second's, during the steady phase (which runs during the
	// periodic resync a cold start begins).
	ResyncPeakOverAvg float64 `json:"resync_peak_over_avg"`
	// Against is the URL of the control plane driven, when the bench did
	// not start it; end to end is then accepted → PROVISIONED, RSSBytes
	// the control plane's at the end, and the cold restart, the resync
	// spread and the PKCs are not measured.
	Against string `json:"against,omitempty"`
	// Lost counts accepted changes the final state does not show.
	Lost int `json:"lost"`
	// Unconverged names up to 10 clusters whose final state is wrong.
	Unconverged []string `json:"unconverged,omitempty"`
	// Console is how long the web console's pages took to load at the
	// end of the run, with every cluster behind them.
	Console []ConsolePage `json:"console,omitempty"`
	// Upgrade is what the upgrade scenario measured.
	Upgrade *UpgradeResult `json:"upgrade,omitempty"`
}

// clustersPerOrg stays under an organization's default quota (50).
const clustersPerOrg = 40

// Sites returns n sites over three clouds.
func Sites(n int) []resource.Site {
	regions := map[string][]string{
		"AWS":   {"us-west-2", "us-east-1", "eu-west-1", "eu-central-1", "ap-southeast-1", "ap-northeast-1", "sa-east-1", "ca-central-1"},
		"GCP":   {"europe-west1", "us-central1", "us-east4", "asia-east1", "europe-west3", "australia-southeast1"},
		"AZURE": {"westeurope", "eastus", "westus2", "northeurope", "southeastasia", "japaneast"},
	}
	clouds := []string{"AWS", "GCP", "AZURE"}
	var out []resource.Site
	for i := range n {
		cloud := clouds[i%3]
		rs := regions[cloud]
		j := i / 3
		region := rs[j%len(rs)]
		if j >= len(rs) {
			region = fmt.Sprintf("%s-cell%d", region, j/len(rs))
		}
		out = append(out, resource.Site{Cloud: cloud, Region: region})
	}
	return out
}

// tenant is one organization the bench acts as.
type tenant struct {
	org, key, secret, env string
}

// model is what the bench expects a cluster to be.
type model struct {
	id, name   string
	tenant     *tenant
	kind       string
	cku        int
	generation int64
	deleted    bool
	site       resource.Site
}

// runner is one run.
type runner struct {
	cfg     Config
	log     *slog.Logger
	dir     string
	brokers []string
	sys     *controlplane.System
	url     string
	track   *tracker
	rng     *rand.Rand
	http    *http.Client
	tenants []*tenant
	sites   []resource.Site

	heldMu      sync.Mutex
	generations map[string]map[string]heldItem // site → PKC → what it held

	// adminKey and adminSecret are the installation's operator's, for
	// the fleet routes; upw what the upgrade scenario watches.
	adminKey, adminSecret string
	upw                   *upgradeWatch

	mu       sync.Mutex
	clusters []*model
	names    atomic.Int64
	run      string // this run's mark in the names it gives
}

// Run runs the scenario and returns what it measured.
func Run(ctx context.Context, cfg Config) (res Result, err error) {
	if cfg.URL != "" {
		return runAgainst(ctx, cfg)
	}
	if cfg.Clusters <= 0 || cfg.Satellites <= 0 || cfg.Rate <= 0 || cfg.Duration <= 0 || cfg.Driver == nil {
		return res, errors.New("bench: clusters, satellites, rate, duration and a driver are required")
	}
	r := newRunner(cfg)
	r.sites = Sites(cfg.Satellites)
	if r.dir = cfg.DataDir; r.dir == "" {
		if r.dir, err = os.MkdirTemp("", "mothership-bench-"); err != nil {
			return res, err
		}
		defer os.RemoveAll(r.dir)
	}
	b, err := broker.Start(broker.Config{DataDir: filepath.Join(r.dir, "broker"), Logger: r.log})
	if err != nil {
		return res, err
	}
	defer b.Close()
	r.brokers = b.Addrs()
	if err := r.start(ctx); err != nil {
		return res, err
	}
	defer func() {
		if r.sys != nil {
			err = errors.Join(err, r.sys.Stop())
		}
	}()
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	go func() {
		if err := r.watch(watchCtx); err != nil {
			r.log.Error("bench: watching the topics failed", "err", err)
		}
	}()

	res.Satellites = cfg.Satellites
	r.adminKey, r.adminSecret = r.sys.AdminKey, r.sys.AdminSecret
	if cfg.Upgrade != nil {
		go func() {
			if err := r.watchUpgrades(watchCtx); err != nil {
				r.log.Error("bench: watching the campaign failed", "err", err)
			}
		}()
		if err := r.setDefault(ctx, cfg.Upgrade.From); err != nil {
			return res, err
		}
	}
	started := time.Now()
	if err := r.createAll(ctx); err != nil {
		return res, err
	}
	res.CreateS = time.Since(started).Seconds()
	res.Clusters = cfg.Clusters
	if cfg.Upgrade != nil {
		if res.Upgrade, err = r.upgrade(ctx); err != nil {
			return res, err
		}
		if res.PKCs, err = r.countPKCs(ctx); err != nil {
			return res, err
		}
		res.usage()
		return res, nil
	}

	r.track.takeDone() // the create phase's changes are not the steady phase's

	// A cold restart: stop everything, start again on the same data, and
	// time until every service has caught up. The steady phase then runs
	// beside the periodic resync this start began.
	if err := r.sys.Stop(); err != nil {
		return res, err
	}
	r.sys = nil
	restarted := time.Now()
	if err := r.start(ctx); err != nil {
		return res, err
	}
	for !r.sys.Fleet.Settled() {
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	res.ResyncS = time.Since(restarted).Seconds()
	fmt.Fprintf(cfg.Progress, "cold restart: caught up (pending events applied, failing keys retried) after %.1fs\n", res.ResyncS)

	if err := r.measure(ctx, &res); err != nil {
		return res, err
	}
	if res.PKCs, err = r.countPKCs(ctx); err != nil {
		return res, err
	}
	if res.Console, err = r.consolePages(ctx); err != nil {
		return res, err
	}

	res.usage()
	return res, nil
}

// measure runs the steady phase, waits for its changes to complete, and
// reads every cluster back.
func (r *runner) measure(ctx context.Context, res *Result) error {
	cpu0, _ := r.cpuSeconds(ctx)
	profiling := false
	if r.cfg.CPUProfile != nil {
		if err := pprof.StartCPUProfile(r.cfg.CPUProfile); err != nil {
			return fmt.Errorf("bench: CPU profile: %w", err)
		}
		profiling = true
	}
	stopProfile := func() {
		if profiling {
			pprof.StopCPUProfile()
			profiling = false
		}
	}
	defer stopProfile()
	perSecond, changes, err := r.steady(ctx)
	if err != nil {
		return err
	}
	res.Changes, res.ChangesPerS = changes, float64(changes)/r.cfg.Duration.Seconds()
	res.ResyncPeakOverAvg = peakOverAvg(perSecond) // 0 when the resyncs are out of sight
	res.LoadAvg = loadAvg()
	r.drain(ctx, 60*time.Second)
	// The changes completed every hop; the consumers off their path
	// (audit's records, billing, the fleet view) may still be behind.
	// Their deferred work is the changes' too: it is counted.
	res.DeferredS, res.Drained = r.settleDeferred(ctx, 120*time.Second)
	if !res.Drained {
		fmt.Fprintf(r.cfg.Progress, "services still behind %.0fs after the changes completed: cpu_per_change_ms leaves their work out\n", res.DeferredS)
	}
	stopProfile()
	if r.cfg.HeapProfile != nil {
		runtime.GC()
		if err := pprof.Lookup("heap").WriteTo(r.cfg.HeapProfile, 0); err != nil {
			return fmt.Errorf("bench: heap profile: %w", err)
		}
	}
	if cpu1, ok := r.cpuSeconds(ctx); ok && changes > 0 {
		res.CPUPerChangeMs = (cpu1 - cpu0) * 1000 / float64(changes)
	}
	if stuck := r.track.stuck(); len(stuck) > 0 {
		fmt.Fprintf(r.cfg.Progress, "changes that never completed every hop: %v\n", stuck)
	}
	done := r.track.takeDone()
	res.Completed = len(done)
	res.Hops, res.E2EP50ms, res.E2EP95ms, res.E2EP99ms = latencies(done)
	res.Lost, res.Unconverged, err = r.verify(ctx)
	return err
}

// newRunner fills cfg's defaults and returns a run of it.
func newRunner(cfg Config) *runner {
	cfg.Concurrency = cmp.Or(cfg.Concurrency, 64)
	if cfg.Progress == nil {
		cfg.Progress = io.Discard
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &runner{cfg: cfg, log: cfg.Logger, track: newTracker(), rng: rand.New(rand.NewPCG(cfg.Seed, 7)), run: strconv.FormatInt(time.Now().UnixNano(), 36),
		http:        &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: cfg.Concurrency * 2}},
		generations: map[string]map[string]heldItem{},
		upw:         &upgradeWatch{admitted: map[string]time.Time{}, touched: map[string]time.Time{}, waveStart: map[int]time.Time{}}}
}

// usage records the process's CPU over the whole run and its peak RSS.
func (res *Result) usage() {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		res.CPUSeconds = tv(ru.Utime) + tv(ru.Stime)
		res.RSSBytes = ru.Maxrss * 1024 // kilobytes on Linux
	}
}

func tv(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }

// cpuSeconds is the CPU used so far by what the bench measures: this
// process, or the control plane it drives (its /metrics).
func (r *runner) cpuSeconds(ctx context.Context) (float64, bool) {
	if r.sys == nil {
		return r.metric(ctx, "process_cpu_seconds_total")
	}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0, false
	}
	return tv(ru.Utime) + tv(ru.Stime), true
}

// loadAvg is the one-minute load average (Linux), 0 where unknown.
func loadAvg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f, _ := strconv.ParseFloat(strings.Fields(string(b) + " 0")[0], 64)
	return f
}

// runAgainst drives a control plane the bench did not start.
func runAgainst(ctx context.Context, cfg Config) (res Result, err error) {
	if cfg.Clusters <= 0 || cfg.Rate <= 0 || cfg.Duration <= 0 || cfg.Key == "" || len(cfg.Kafka) == 0 {
		return res, errors.New("bench: against a running control plane, clusters, rate, duration, credentials and its Kafka are required")
	}
	r := newRunner(cfg)
	r.sites, r.url, r.brokers = cfg.Sites, strings.TrimSuffix(cfg.URL, "/"), cfg.Kafka
	if len(r.sites) == 0 {
		r.sites = controlplane.DefaultSites
	}
	r.track.blind = true
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	go func() {
		if err := r.watch(watchCtx); err != nil {
			r.log.Error("bench: watching the topics failed", "err", err)
		}
	}()
	started := time.Now()
	if err := r.createAll(ctx); err != nil {
		return res, err
	}
	res.CreateS, res.Clusters, res.Satellites, res.Against = time.Since(started).Seconds(), cfg.Clusters, len(r.sites), r.url
	r.track.takeDone()
	cpu0, _ := r.metric(ctx, "process_cpu_seconds_total")
	if err := r.measure(ctx, &res); err != nil {
		return res, err
	}
	// The satellites are out of sight: end to end is accepted → PROVISIONED.
	e := res.Hops[HopProvisioned]
	res.E2EP50ms, res.E2EP95ms, res.E2EP99ms = e.P50, e.P95, e.P99
	if cpu1, ok := r.metric(ctx, "process_cpu_seconds_total"); ok {
		res.CPUSeconds = cpu1 - cpu0
	}
	if rss, ok := r.metric(ctx, "process_resident_memory_bytes"); ok {
		res.RSSBytes = int64(rss)
	}
	return res, nil
}

// metric reads one unlabelled sample of the control plane's /metrics.
func (r *runner) metric(ctx context.Context, name string) (float64, bool) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.url+"/metrics", nil)
	if err != nil {
		return 0, false
	}
	resp, err := r.http.Do(req)
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return f, err == nil
		}
	}
	return 0, false
}

// start starts the control plane with the simulated satellites.
func (r *runner) start(ctx context.Context) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	dir := r.dir
	sys, err := controlplane.Start(ctx, controlplane.Config{
		DataDir: dir, Listener: ln, Kafka: []kgo.Opt{kgo.SeedBrokers(r.brokers...)},
		OpenStore: func(ctx context.Context, service string, owns []string) (store.Store, error) {
			return sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(dir, service+".db"), Service: service, Owns: owns, Logger: r.log})
		},
		Sites: r.sites, Driver: r.cfg.Driver, OnBundle: r.held, ResyncInterval: r.cfg.ResyncInterval,
		// The cloud's own operations are simulated quickly: the bench times
		// the control plane, not the cloud.
		Cloud: sim.Config{OperationTime: 10 * time.Millisecond},
		// Rate limits protect a real API from its clients; the bench is
		// the one client of many organizations and measures capacity.
		RatePerSecond: 1e6, RateBurst: 1_000_000,
		Logger: r.log,
	})
	if err != nil {
		return err
	}
	r.sys, r.url = sys, sys.URL
	return nil
}

// held takes a bundle a satellite saved: what changed in it since the
// site's previous bundle is what the satellite now holds.
func (r *runner) held(b resource.Bundle, at time.Time) {
	r.heldMu.Lock()
	prev := r.generations[b.Site]
	next := make(map[string]heldItem, len(b.Resources))
	r.generations[b.Site] = next
	r.heldMu.Unlock()
	for id, item := range b.Resources {
		now := heldItem{generation: item.Generation, retained: item.RetainedUntil != nil}
		next[id] = now
		if prev[id] == now || item.Kind != resource.KindPKC {
			continue
		}
		if now.retained {
			// Deleted, kept for a restore: the satellite stopped it.
			r.track.pkcSpec(HopSatellite, id, resource.PKCSpec{}, true, at)
			continue
		}
		if spec, err := resource.Decode[resource.PKCSpec](item.Spec); err == nil {
			r.track.pkcSpec(HopSatellite, id, spec, false, at)
		}
	}
	for id := range prev {
		if _, ok := next[id]; !ok {
			r.track.pkcSpec(HopSatellite, id, resource.PKCSpec{}, true, at)
		}
	}
}

// heldItem is what a satellite held of a resource.
type heldItem struct {
	generation int64
	retained   bool
}

// watch follows the LKC and PKC topics and feeds the tracker. It reads
// from their start: the bench starts on an empty system, and a change a
// watcher not yet positioned missed would never complete.
func (r *runner) watch(ctx context.Context) error {
	topics := []string{event.Topic(resource.KindLKC, event.Desired), event.Topic(resource.KindLKC, event.Status), event.Topic(resource.KindPKC, event.Desired)}
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(r.brokers...), kgo.ConsumeTopics(topics...), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(50 * time.Millisecond)}, r.cfg.KafkaOpts...)...)
	if err != nil {
		return err
	}
	defer cl.Close()
	for ctx.Err() == nil {
		fetches := cl.PollFetches(ctx)
		now := time.Now()
		fetches.EachRecord(func(rec *kgo.Record) {
			ev, err := event.Decode(rec.Value)
			if err != nil {
				return
			}
			if rec.Topic == topics[2] {
				var res store.Resource
				if json.Unmarshal(ev.Data, &res) != nil {
					return
				}
				spec, err := resource.Decode[resource.PKCSpec](res.Spec)
				if err != nil {
					return
				}
				r.track.pkcSpec(HopPKC, res.ID, spec, res.Deleted(), now)
				return
			}
			r.track.lkcEvent(rec.Topic, ev, now)
		})
	}
	return nil
}

// request sends an API request as t and decodes a 2xx answer into out.
func (r *runner) request(ctx context.Context, t *tenant, method, path string, body, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, r.url+path, rd)
	if err != nil {
		return 0, err
	}
	req.SetBasicAuth(t.key, t.secret)
	resp, err := r.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		return resp.StatusCode, fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, bytes.TrimSpace(data))
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return resp.StatusCode, err
		}
	}
	return resp.StatusCode, nil
}

// createAll makes the organizations and their environments, then creates
// every cluster and waits until all are PROVISIONED.
func (r *runner) createAll(ctx context.Context) error {
	orgs := (r.cfg.Clusters + clustersPerOrg - 1) / clustersPerOrg
	if r.sys == nil {
		orgs = 1 // a control plane the bench did not start: the one given
	}
	var mu sync.Mutex
	err := parallel(ctx, min(orgs, 8), orgs, func(ctx context.Context, i int) error {
		t := &tenant{key: r.cfg.Key, secret: r.cfg.Secret}
		if r.sys != nil {
			var err error
			if t.org, t.key, t.secret, err = r.sys.IAM.CreateOrganization(ctx, fmt.Sprintf("bench-%d", i)); err != nil {
				return err
			}
		}
		var env api.Environment
		if _, err := r.request(ctx, t, http.MethodPost, "/org/v2/environments", map[string]any{"display_name": "bench"}, &env); err != nil {
			return err
		}
		t.env = env.ID
		mu.Lock()
		r.tenants = append(r.tenants, t)
		mu.Unlock()
		return nil
	})
	if err != nil {
		return fmt.Errorf("bench: organizations: %w", err)
	}
	fmt.Fprintf(r.cfg.Progress, "%d organizations ready; creating %d clusters over %d sites\n", orgs, r.cfg.Clusters, len(r.sites))
	var created atomic.Int64
	stopProgress := r.progress("create", func() string {
		return fmt.Sprintf("%d/%d accepted, %d in flight", created.Load(), r.cfg.Clusters, r.track.inFlight())
	})
	err = parallel(ctx, r.cfg.Concurrency, r.cfg.Clusters, func(ctx context.Context, i int) error {
		t := r.tenants[min(i/clustersPerOrg, len(r.tenants)-1)]
		if err := r.create(ctx, t); err != nil {
			return err
		}
		created.Add(1)
		return nil
	})
	if err != nil {
		stopProgress()
		return fmt.Errorf("bench: create: %w", err)
	}
	r.drain(ctx, 10*time.Minute)
	stopProgress()
	if n := r.track.inFlight(); n > 0 {
		return fmt.Errorf("bench: %d clusters never became PROVISIONED", n)
	}
	return nil
}

// kinds is the fleet's mix: mostly shared clusters, some dedicated; for
// the upgrade scenario, all dedicated (a PKC each).
func (r *runner) kind() (string, int) {
	if r.cfg.Upgrade != nil {
		return "Dedicated", 1
	}
	switch p := r.rng.Float64(); {
	case p < 0.6:
		return "Basic", 0
	case p < 0.99:
		return "Standard", 0
	default:
		return "Dedicated", 1
	}
}

// create creates one cluster of t.
func (r *runner) create(ctx context.Context, t *tenant) error {
	r.mu.Lock()
	kind, cku := r.kind()
	site := r.sites[r.rng.IntN(len(r.sites))]
	r.mu.Unlock()
	name := r.newName()
	cfg := map[string]any{"kind": kind}
	if cku > 0 {
		cfg["cku"] = cku
	}
	c := &change{op: opCreate, name: name, generation: 1, cku: max(cku, 1), sent: time.Now()}
	r.track.reserve(c)
	var out api.Cluster
	_, err := r.request(ctx, t, http.MethodPost, "/cmk/v2/clusters", map[string]any{"spec": map[string]any{"display_name": name,
		"cloud": site.Cloud, "region": site.Region, "config": cfg, "environment": map[string]any{"id": t.env}}}, &out)
	if err != nil {
		r.track.release(c)
		return err
	}
	r.track.answered(c, out.ID, time.Now())
	r.mu.Lock()
	r.clusters = append(r.clusters, &model{id: out.ID, name: name, tenant: t, kind: kind, cku: cku, generation: 1, site: site})
	r.mu.Unlock()
	return nil
}

// steady applies changes at the configured rate for the configured time.
// It returns the periodic resyncs per second and the changes accepted.
func (r *runner) steady(ctx context.Context) ([]float64, int, error) {
	var accepted, refused atomic.Int64
	stopProgress := r.progress("steady", func() string {
		return fmt.Sprintf("%d accepted, %d in flight, %d refused", accepted.Load(), r.track.inFlight(), refused.Load())
	})
	defer stopProgress()
	sem := make(chan struct{}, r.cfg.Concurrency)
	var wg sync.WaitGroup
	interval := time.Duration(float64(time.Second) / r.cfg.Rate)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	second := time.NewTicker(time.Second)
	defer second.Stop()
	var perSecond []float64
	last := r.resyncs()
	end := time.Now().Add(r.cfg.Duration)
	var firstErr atomic.Value
	for time.Now().Before(end) {
		select {
		case <-ctx.Done():
			wg.Wait()
			return nil, 0, ctx.Err()
		case <-second.C:
			now := r.resyncs()
			perSecond = append(perSecond, float64(now-last))
			last = now
			continue
		case <-tick.C:
		}
		select {
		case sem <- struct{}{}:
		default:
			refused.Add(1) // the system is behind: the rate is not reached
			continue
		}
		wg.Go(func() {
			defer func() { <-sem }()
			ok, err := r.change(ctx)
			switch {
			case err != nil:
				refused.Add(1)
				firstErr.CompareAndSwap(nil, err)
			case ok:
				accepted.Add(1)
			}
		})
	}
	wg.Wait()
	if err, ok := firstErr.Load().(error); ok && err != nil {
		r.log.Warn("bench: a change was refused", "err", err)
	}
	return perSecond, int(accepted.Load()), nil
}

// change applies one random change: resize, rename, create or delete.
func (r *runner) change(ctx context.Context) (bool, error) {
	r.mu.Lock()
	p := r.rng.Float64()
	var m *model
	for range 20 {
		cand := r.clusters[r.rng.IntN(len(r.clusters))]
		if !cand.deleted && !r.track.busy(cand.id) {
			m = cand
			break
		}
	}
	r.mu.Unlock()
	if m == nil {
		return false, nil
	}
	switch {
	case p < 0.10:
		return true, r.create(ctx, m.tenant)
	case p < 0.20:
		return r.remove(ctx, m)
	case p < 0.60:
		return r.resize(ctx, m)
	default:
		return r.rename(ctx, m)
	}
}

func (r *runner) patch(ctx context.Context, m *model, c *change, spec map[string]any) (bool, error) {
	r.mu.Lock()
	c.lkc, c.generation, c.sent = m.id, m.generation+1, time.Now()
	r.mu.Unlock()
	if !r.track.reserve(c) {
		return false, nil
	}
	var out api.Cluster
	if _, err := r.request(ctx, m.tenant, http.MethodPatch, "/cmk/v2/clusters/"+m.id, map[string]any{"spec": spec}, &out); err != nil {
		r.track.release(c)
		return false, err
	}
	r.track.answered(c, m.id, time.Now())
	return true, nil
}

// resize grows or shrinks a Dedicated cluster, or upgrades a Basic one.
func (r *runner) resize(ctx context.Context, m *model) (bool, error) {
	r.mu.Lock()
	kind, cku := m.kind, m.cku
	r.mu.Unlock()
	cfg := map[string]any{}
	switch kind {
	case "Dedicated":
		cku = 3 - cku // 1 ↔ 2
		cfg = map[string]any{"kind": "Dedicated", "cku": cku}
	case "Basic":
		kind = "Standard"
		cfg = map[string]any{"kind": "Standard"}
	default:
		return r.rename(ctx, m)
	}
	c := &change{op: opResize, cku: max(cku, 1)}
	if kind == "Standard" {
		c.op = opUpgrade
	}
	ok, err := r.patch(ctx, m, c, map[string]any{"config": cfg})
	if ok {
		r.mu.Lock()
		m.kind, m.cku, m.generation = kind, cku, m.generation+1
		r.mu.Unlock()
	}
	return ok, err
}

func (r *runner) rename(ctx context.Context, m *model) (bool, error) {
	name := r.newName()
	ok, err := r.patch(ctx, m, &change{op: opRename}, map[string]any{"display_name": name})
	if ok {
		r.mu.Lock()
		m.name, m.generation = name, m.generation+1
		r.mu.Unlock()
	}
	return ok, err
}

func (r *runner) remove(ctx context.Context, m *model) (bool, error) {
	c := &change{op: opDelete, lkc: m.id, sent: time.Now()}
	if !r.track.reserve(c) {
		return false, nil
	}
	if _, err := r.request(ctx, m.tenant, http.MethodDelete, "/cmk/v2/clusters/"+m.id, nil, nil); err != nil {
		r.track.release(c)
		return false, err
	}
	r.mu.Lock()
	m.deleted = true
	r.mu.Unlock()
	r.track.answered(c, m.id, time.Now())
	return true, nil
}

// settleDeferred waits, up to within, until every service's reactor
// has applied all it has seen, and returns how long that took after the
// changes completed. A control plane the bench did not start is not
// waited for.
func (r *runner) settleDeferred(ctx context.Context, within time.Duration) (float64, bool) {
	if r.sys == nil {
		return 0, true
	}
	took, ok := waitUntil(ctx, within, r.sys.Fleet.Drained)
	return took.Seconds(), ok
}

// drain waits until no change is in flight, or within ends.
func (r *runner) drain(ctx context.Context, within time.Duration) {
	waitUntil(ctx, within, func() bool { return r.track.inFlight() == 0 })
}

// waitUntil polls done every 20ms until it holds, within ends or ctx is
// done, and returns how long it waited and whether done held.
func waitUntil(ctx context.Context, within time.Duration, done func() bool) (time.Duration, bool) {
	start := time.Now()
	for !done() {
		if time.Since(start) >= within || ctx.Err() != nil {
			return time.Since(start), false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start), true
}

// verify reads every cluster back through the API and compares it with
// what the bench was told it accepted.
func (r *runner) verify(ctx context.Context) (int, []string, error) {
	r.mu.Lock()
	models := slices.Clone(r.clusters)
	r.mu.Unlock()
	var lost atomic.Int64
	var mu sync.Mutex
	var bad []string
	err := parallel(ctx, r.cfg.Concurrency, len(models), func(ctx context.Context, i int) error {
		m := models[i]
		var got api.Cluster
		code, err := r.request(ctx, m.tenant, http.MethodGet, "/cmk/v2/clusters/"+m.id, nil, &got)
		var why string
		switch {
		case m.deleted && code == http.StatusNotFound:
		case m.deleted:
			why = fmt.Sprintf("deleted, but GET answers %d", code)
		case err != nil:
			return err
		case got.Spec.DisplayName != m.name:
			why = fmt.Sprintf("name %q, want %q", got.Spec.DisplayName, m.name)
		case got.Spec.Config.Kind != m.kind:
			why = fmt.Sprintf("kind %s, want %s", got.Spec.Config.Kind, m.kind)
		case m.kind == "Dedicated" && got.Spec.Config.CKU != m.cku:
			why = fmt.Sprintf("cku %d, want %d", got.Spec.Config.CKU, m.cku)
		case got.Status == nil || got.Status.Phase != "PROVISIONED" || got.Status.ObservedGeneration != got.Status.Generation:
			why = fmt.Sprintf("status %+v, want PROVISIONED at its generation", got.Status)
		}
		if why != "" {
			lost.Add(1)
			mu.Lock()
			if len(bad) < 10 {
				bad = append(bad, m.id+": "+why)
			}
			mu.Unlock()
		}
		return nil
	})
	return int(lost.Load()), bad, err
}

// countPKCs counts the PKCs pkc holds.
func (r *runner) countPKCs(ctx context.Context) (int, error) {
	for _, rs := range r.sys.Fleet.Services() {
		if rs.Service.Name != "pkc" {
			continue
		}
		n := 0
		err := rs.Store.View(ctx, func(ctx context.Context, tx store.Tx) error {
			after := ""
			for {
				page, err := tx.ResourceList(ctx, store.ListParams{Kind: resource.KindPKC, AfterID: after, Limit: 1000})
				if err != nil {
					return err
				}
				n += len(page)
				if len(page) < 1000 {
					return nil
				}
				after = page[len(page)-1].ID
			}
		})
		return n, err
	}
	return 0, errors.New("bench: no pkc service")
}

// newName returns a display name no other run's cluster has: the topics
// are read from their start, and a create is matched to its cluster by name
// until the API's answer names it.
func (r *runner) newName() string {
	return fmt.Sprintf("b%s-%d", r.run, r.names.Add(1))
}

// resyncs sums the periodic-resync reconciles of every service.
func (r *runner) resyncs() int64 {
	if r.sys == nil {
		return 0 // out of sight
	}
	var n int64
	for _, rs := range r.sys.Fleet.Services() {
		if rs.Reactor != nil {
			n += rs.Reactor.Stats().Resyncs
		}
	}
	return n
}

// progress prints a line every 2 seconds until stopped.
func (r *runner) progress(phase string, line func() string) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	started := time.Now()
	wg.Go(func() {
		t := time.NewTicker(2 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				fmt.Fprintf(r.cfg.Progress, "[%s %5.0fs] %s\n", phase, time.Since(started).Seconds(), line())
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

// parallel runs fn for 0..n-1 on workers goroutines; the first error
// stops it.
func parallel(ctx context.Context, workers, n int, fn func(context.Context, int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range max(workers, 1) {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if err := fn(ctx, i); err != nil {
					cancel(err)
					return
				}
			}
		})
	}
	wg.Wait()
	return context.Cause(ctx)
}

// latencies computes every hop's distribution and the end-to-end one.
func latencies(done []*change) (map[string]Latency, float64, float64, float64) {
	samples := map[string][]float64{}
	for _, c := range done {
		if api, ok := c.seen[HopAPI]; ok {
			samples[HopAPI] = append(samples[HopAPI], ms(api.Sub(c.sent)))
		}
		if c.relay > 0 {
			samples[HopRelay] = append(samples[HopRelay], ms(c.relay))
		}
		// The hops count from kafka's commit, which the API's answer
		// follows: under load the answer can come back after the
		// satellite already holds the change.
		from := c.committed
		if from.IsZero() {
			from = c.accepted
		}
		for _, hop := range []string{HopPKC, HopSatellite, HopProvisioned} {
			if at, ok := c.seen[hop]; ok {
				samples[hop] = append(samples[hop], max(ms(at.Sub(from)), 0))
			}
		}
	}
	out := map[string]Latency{}
	for hop, xs := range samples {
		slices.Sort(xs)
		out[hop] = Latency{N: len(xs), P50: pct(xs, 0.50), P95: pct(xs, 0.95), P99: pct(xs, 0.99), Max: xs[len(xs)-1]}
	}
	e := out[HopSatellite]
	return out, e.P50, e.P95, e.P99
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func pct(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[max(i, 0)]
}

// peakOverAvg is the busiest second over the average one (0 without data).
func peakOverAvg(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	var sum, peak float64
	for _, x := range xs {
		sum += x
		peak = max(peak, x)
	}
	if sum == 0 {
		return 0
	}
	return peak / (sum / float64(len(xs)))
}
