// Package simdriver is a satellite driver that runs no brokers: it
// simulates a site's infrastructure for tests and benchmarks. Creating,
// resizing and deleting a PKC take the time they take on a real site,
// scaled by a time factor; a share of operations is refused with a rate
// limit or fails part way, and succeeds when retried. It keeps a few bytes
// per PKC and runs no goroutine while idle, so one process can host
// hundreds of simulated satellites with thousands of PKCs.
//
// Faults are a pure function of the seed, the PKC and its generation, so a
// run is reproducible however its operations interleave: the first attempt
// of an operation may be refused or fail, its retries never do.
package simdriver

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mothership-dev/mothership/internal/runtime/atomicfile"
	json "github.com/segmentio/encoding/json"

	"github.com/mothership-dev/mothership/internal/kafkaversion"
	"github.com/mothership-dev/mothership/internal/resource"
)

// Realistic durations, at TimeFactor 1.
const (
	// DefaultCreateTime is what a new PKC needs before its first broker:
	// namespace, certificates, load balancer and DNS record.
	DefaultCreateTime = 60 * time.Second
	// DefaultBrokerStep is adding or removing one broker: pod scheduled and
	// started, broker joined, partitions moved.
	DefaultBrokerStep = 30 * time.Second
	// DefaultConfigTime is a change that moves no broker: SASL users, ACLs.
	DefaultConfigTime = 5 * time.Second
	// DefaultRollTime is restarting one broker at another Kafka version
	// and waiting for its partitions to be in sync again.
	DefaultRollTime = 45 * time.Second
	// DefaultDeleteTime is tearing a PKC down: brokers, volumes, DNS.
	DefaultDeleteTime = 45 * time.Second
	// DefaultRetryAfter is what a rate limit asks.
	DefaultRetryAfter = 10 * time.Second
	// DefaultFlushInterval bounds how long a change stays only in memory
	// when DataDir is set (not scaled).
	DefaultFlushInterval = time.Second
)

// ErrSimulated is the cause of a simulated failure.
var ErrSimulated = errors.New("simulated failure")

// ErrClosed is returned by operations cut short by Close.
var ErrClosed = errors.New("simdriver: closed")

// RateLimitedError is a simulated 429 of the site's infrastructure API.
type RateLimitedError struct {
	After time.Duration
}

// RetryAfter says when to call again, in the shape the runtime's reactor
// honours.
func (e *RateLimitedError) RetryAfter() time.Duration { return e.After }

func (e *RateLimitedError) Error() string {
	return fmt.Sprintf("simulated infrastructure rate limit (429); retry after %s", e.After)
}

// Config configures a driver. Every duration but FlushInterval is the
// realistic one and is multiplied by TimeFactor.
type Config struct {
	// TimeFactor scales the durations (default 1: realistic); 0.001 turns
	// a 30 s broker step into 30 ms.
	TimeFactor float64
	// CreateTime is what a new PKC takes before its first broker (default
	// DefaultCreateTime). A create then adds its brokers one step at a
	// time: 60 s + 3 × 30 s for 3 brokers.
	CreateTime time.Duration
	// BrokerStep is adding or removing one broker (default
	// DefaultBrokerStep): a resize of N brokers takes N steps.
	BrokerStep time.Duration
	// ConfigTime is a new generation that moves no broker (default
	// DefaultConfigTime).
	ConfigTime time.Duration
	// RollTime is restarting one broker at another Kafka version (default
	// DefaultRollTime): an upgrade of N brokers takes N rolls.
	RollTime time.Duration
	// DeleteTime is removing a PKC (default DefaultDeleteTime).
	DeleteTime time.Duration
	// RateLimitShare is the share of operations whose first attempt is
	// refused with a RateLimitedError, FailShare the share whose first
	// attempt fails after a random part of its steps (both 0..1, their
	// sum at most 1; default 0).
	RateLimitShare, FailShare float64
	// UpgradeFailShare is the share of version changes that fail for good
	// (the brokers do not come back healthy at that version): the PKC
	// reports FAILED until it is asked for another version. Default 0.
	UpgradeFailShare float64
	// RetryAfter is what a rate limit asks (default DefaultRetryAfter).
	RetryAfter time.Duration
	// Seed picks which operations fault; give each driver of a process
	// its own.
	Seed uint64
	// DataDir, if set, keeps what the driver holds in one small JSON file,
	// written at most every FlushInterval and on Close, so that a restart
	// keeps what was realized. Empty: memory only.
	DataDir       string
	FlushInterval time.Duration
	Logger        *slog.Logger

	// The hooks are called without the driver's lock held; they must be
	// quick and safe for concurrent use.

	// OnApplied is called when Apply first sees a generation of a PKC,
	// before any simulated work: from then on the satellite holds that
	// desired state.
	OnApplied func(id string, item resource.BundleItem, at time.Time)
	// OnRealized is called when a generation is realized.
	OnRealized func(id string, item resource.BundleItem, r resource.Realized, at time.Time)
	// OnRemoved is called when a PKC is removed.
	OnRemoved func(id string, at time.Time)
}

// Stats counts what a driver did.
type Stats struct {
	// Operations are the creates, resizes and config changes started (one
	// per generation) and the removals started.
	Operations int64
	// RateLimited and Failed are the faults injected.
	RateLimited, Failed int64
	// Realized are the generations realized, Removed the PKCs removed.
	Realized, Removed int64
}

// State is what the driver holds of one PKC.
type State struct {
	// Generation is the last realized.
	Generation int64 `json:"generation"`
	// Brokers run now; 0 while a create has not reached its first broker.
	Brokers int `json:"brokers"`
	// Removing is set once a removal started.
	Removing bool `json:"removing,omitempty"`
	// Stopped is set while the PKC is deleted but kept for a restore.
	Stopped bool `json:"stopped,omitempty"`
	// Version and MetadataVersion are the Kafka version the brokers run
	// and the metadata version finalized.
	Version         string `json:"version,omitempty"`
	MetadataVersion string `json:"metadata_version,omitempty"`
	// Tenants are the clusters (LKCs) the PKC hosts, whose usage the
	// driver draws (SetMeter).
	Tenants []string `json:"tenants,omitempty"`

	seen int64 // the generation OnApplied was called for
	// failed is what Apply returned for failedGen, an upgrade that
	// failed for good.
	failedGen int64
	failed    resource.Realized
	// held is what Apply returned for Generation, while it still holds:
	// an agent applies every PKC of its site again on each new bundle,
	// and one realized costs no decoding then.
	held resource.Realized
}

// Driver is a simulated site. It is safe for concurrent use; operations
// on one PKC run one at a time.
type Driver struct {
	cfg                              Config
	log                              *slog.Logger
	create, step, config, del, retry time.Duration
	roll                             time.Duration

	closeOnce sync.Once
	done      chan struct{}

	mu     sync.Mutex
	pkcs   map[string]*State
	locks  map[string]*keyLock
	flush  *time.Timer // pending write of the state file; nil when clean
	closed bool

	writeMu  sync.Mutex // orders writes of the state file
	writeErr error

	operations, rateLimited, failed, realized, removed atomic.Int64
}

type keyLock struct {
	ch   chan struct{}
	refs int
}

const stateFile = "sim-pkcs.json"

// New returns a driver, with what DataDir holds from a previous run.
func New(cfg Config) (*Driver, error) {
	cfg.TimeFactor = cmp.Or(cfg.TimeFactor, 1)
	cfg.CreateTime = cmp.Or(cfg.CreateTime, DefaultCreateTime)
	cfg.BrokerStep = cmp.Or(cfg.BrokerStep, DefaultBrokerStep)
	cfg.ConfigTime = cmp.Or(cfg.ConfigTime, DefaultConfigTime)
	cfg.DeleteTime = cmp.Or(cfg.DeleteTime, DefaultDeleteTime)
	cfg.RollTime = cmp.Or(cfg.RollTime, DefaultRollTime)
	cfg.RetryAfter = cmp.Or(cfg.RetryAfter, DefaultRetryAfter)
	cfg.FlushInterval = cmp.Or(cfg.FlushInterval, DefaultFlushInterval)
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	switch {
	case cfg.TimeFactor < 0:
		return nil, errors.New("simdriver: TimeFactor must not be negative")
	case cfg.FailShare < 0 || cfg.RateLimitShare < 0 || cfg.FailShare+cfg.RateLimitShare > 1:
		return nil, errors.New("simdriver: FailShare and RateLimitShare must be in 0..1, their sum at most 1")
	case cfg.UpgradeFailShare < 0 || cfg.UpgradeFailShare > 1:
		return nil, errors.New("simdriver: UpgradeFailShare must be in 0..1")
	}
	scale := func(d time.Duration) time.Duration { return time.Duration(float64(d) * cfg.TimeFactor) }
	d := &Driver{cfg: cfg, log: cfg.Logger, done: make(chan struct{}), pkcs: map[string]*State{}, locks: map[string]*keyLock{},
		create: scale(cfg.CreateTime), step: scale(cfg.BrokerStep), config: scale(cfg.ConfigTime),
		del: scale(cfg.DeleteTime), retry: scale(cfg.RetryAfter), roll: scale(cfg.RollTime)}
	if cfg.DataDir != "" {
		if err := d.load(); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// Endpoint is the fake bootstrap endpoint of a PKC: stable, and under the
// reserved .invalid domain, so that it never resolves.
func Endpoint(id string, spec resource.PKCSpec) string {
	return fmt.Sprintf("%s.%s.%s.sim.invalid:9092", id, spec.Region, strings.ToLower(spec.Cloud))
}

// Apply realizes a PKC: it creates it, adds or removes brokers one step at
// a time, or changes its configuration, each taking its scaled time. A
// generation already realized returns at once. Other kinds are realized at
// once.
func (d *Driver) Apply(ctx context.Context, id string, item resource.BundleItem, progress func(resource.Realized)) (resource.Realized, error) {
	if item.Kind != resource.KindPKC {
		return resource.Realized{Generation: item.Generation, Phase: resource.PhaseProvisioned}, nil
	}
	d.mu.Lock()
	if st := d.pkcs[id]; st != nil && st.held.Phase != "" && st.Generation == item.Generation && d.locks[id] == nil {
		r := st.held
		d.mu.Unlock()
		return r, nil
	}
	if st := d.pkcs[id]; st != nil && st.failedGen == item.Generation && d.locks[id] == nil {
		r := st.failed
		d.mu.Unlock()
		return r, nil
	}
	d.mu.Unlock()
	spec, err := resource.Decode[resource.PKCSpec](item.Spec)
	if err != nil {
		return resource.Realized{}, err
	}
	want, endpoint := max(spec.Brokers, 1), Endpoint(id, spec)
	version := cmp.Or(spec.Version, kafkaversion.Newest(kafkaversion.Simulated).Version)
	if !kafkaversion.Known(version) {
		return resource.Realized{Generation: item.Generation, Phase: resource.PhaseFailed, Reason: "UNSUPPORTED_VERSION",
			Message: fmt.Sprintf("Kafka %s is not a version Mothership knows", version)}, nil
	}
	release, err := d.acquire(ctx, id)
	if err != nil {
		return resource.Realized{}, err
	}
	defer release()

	d.mu.Lock()
	st := d.pkcs[id]
	if st != nil && st.Generation == item.Generation && st.Brokers == want && !st.Removing && !st.Stopped {
		st.held = realized(*st, endpoint, resource.PhaseProvisioned, "")
		r := st.held
		d.mu.Unlock()
		return r, nil
	}
	if st == nil {
		st = &State{}
		d.pkcs[id] = st
	}
	first := st.seen != item.Generation
	st.seen, st.Removing, st.Stopped = item.Generation, false, false
	st.Tenants = nil
	for _, lkc := range slices.Sorted(maps.Keys(spec.Tenants)) {
		if spec.Tenants[lkc].RetainedUntil == nil {
			st.Tenants = append(st.Tenants, lkc) // a deleted one has no usage
		}
	}
	d.markDirty()
	d.mu.Unlock()

	if first {
		d.operations.Add(1)
		if d.cfg.OnApplied != nil {
			d.cfg.OnApplied(id, item, time.Now())
		}
	}
	steps := d.plan(st, want, version)
	failAt := -1
	if first {
		var rl bool
		if rl, failAt = d.fault(fmt.Sprintf("apply/%s/%d", id, item.Generation), len(steps)); rl {
			d.log.DebugContext(ctx, "simulated rate limit", "pkc", id, "generation", item.Generation)
			return resource.Realized{}, fmt.Errorf("pkc %s: %w", id, &RateLimitedError{After: d.retry})
		}
	}
	for i, s := range steps {
		if i == failAt {
			d.log.DebugContext(ctx, "simulated failure", "pkc", id, "generation", item.Generation, "step", i)
			return resource.Realized{}, fmt.Errorf("pkc %s: step %d of %d: %w", id, i+1, len(steps), ErrSimulated)
		}
		d.mu.Lock()
		r := realized(*st, endpoint, resource.PhaseProvisioning, s.message)
		d.mu.Unlock()
		progress(r)
		if err := d.sleep(ctx, s.took); err != nil {
			return resource.Realized{}, err
		}
		if s.roll && d.upgradeFails(id, version) {
			d.mu.Lock()
			r := realized(*st, endpoint, resource.PhaseFailed, fmt.Sprintf("the first broker rolled to Kafka %s did not come back healthy", version))
			r.Generation, r.Reason = item.Generation, "UPGRADE_FAILED"
			st.failedGen, st.failed = item.Generation, r
			d.mu.Unlock()
			d.failed.Add(1)
			return r, nil
		}
		d.mu.Lock()
		st.Brokers, st.held = st.Brokers+s.brokers, resource.Realized{}
		d.markDirty()
		d.mu.Unlock()
	}
	d.mu.Lock()
	st.Generation, st.Version = item.Generation, version
	switch {
	case spec.MetadataVersion != "":
		st.MetadataVersion = spec.MetadataVersion
	case st.MetadataVersion == "":
		r, _ := kafkaversion.Lookup(version)
		st.MetadataVersion = r.Metadata
	}
	st.held = realized(*st, endpoint, resource.PhaseProvisioned, "")
	r := st.held
	d.markDirty()
	d.mu.Unlock()
	d.realized.Add(1)
	if d.cfg.OnRealized != nil {
		d.cfg.OnRealized(id, item, r, time.Now())
	}
	return r, nil
}

// upgradeFails decides, from the seed alone, whether moving id to version
// fails for good (see Config.UpgradeFailShare).
func (d *Driver) upgradeFails(id, version string) bool {
	if d.cfg.UpgradeFailShare == 0 {
		return false
	}
	h := fnv.New64a()
	fmt.Fprintf(h, "%d/upgrade/%s/%s", d.cfg.Seed, id, version)
	return float64(h.Sum64()%1_000_000)/1_000_000 < d.cfg.UpgradeFailShare
}

// step is one unit of simulated work.
type step struct {
	took    time.Duration
	brokers int // +1, -1 or 0
	roll    bool
	message string
}

// plan lists the steps from st to want brokers at version: the base of a
// new PKC, a roll of each broker to another version, one step a broker,
// or a configuration change when no broker moves.
func (d *Driver) plan(st *State, want int, version string) []step {
	d.mu.Lock()
	have, running := st.Brokers, st.Version
	d.mu.Unlock()
	var steps []step
	if have == 0 {
		steps = append(steps, step{took: d.create, message: "creating: namespace, certificates, load balancer"})
	}
	if have > 0 && running != "" && running != version {
		for i := range have {
			steps = append(steps, step{took: d.roll, roll: true, message: fmt.Sprintf("upgrading: rolling broker %d of %d to Kafka %s", i+1, have, version)})
		}
	}
	for n := have; n != want; {
		s := step{took: d.step, brokers: 1}
		if n > want {
			s.brokers = -1
		}
		s.message = fmt.Sprintf("resizing: %d of %d brokers", n, want)
		steps = append(steps, s)
		n += s.brokers
	}
	if len(steps) == 0 {
		steps = append(steps, step{took: d.config, message: "configuring users and ACLs"})
	}
	return steps
}

func realized(st State, endpoint, phase, msg string) resource.Realized {
	r := resource.Realized{Generation: st.Generation, Phase: phase, Message: msg}
	pr := resource.PKCRealized{Brokers: st.Brokers, Version: st.Version, MetadataVersion: st.MetadataVersion}
	if st.Brokers > 0 {
		pr.BootstrapEndpoint = endpoint
	}
	r.Detail = resource.Encode(pr)
	return r
}

// fault decides the fate of an operation's first attempt from the seed and
// key alone: a rate limit, a failure before step failAt of steps, or
// neither (failAt -1).
func (d *Driver) fault(key string, steps int) (rateLimited bool, failAt int) {
	if d.cfg.RateLimitShare == 0 && d.cfg.FailShare == 0 {
		return false, -1
	}
	h := fnv.New64a()
	fmt.Fprintf(h, "%d/%s", d.cfg.Seed, key)
	seed := h.Sum64()
	// splitmix64's finalizer: keys that differ in a digit land far apart.
	seed ^= seed >> 30
	seed *= 0xbf58476d1ce4e5b9
	seed ^= seed >> 27
	seed *= 0x94d049bb133111eb
	seed ^= seed >> 31
	rnd := rand.New(rand.NewPCG(seed, ^seed))
	u := rnd.Float64()
	switch {
	case u < d.cfg.RateLimitShare:
		d.rateLimited.Add(1)
		return true, -1
	case u < d.cfg.RateLimitShare+d.cfg.FailShare:
		d.failed.Add(1)
		return false, rnd.IntN(max(steps, 1))
	}
	return false, -1
}

// Stop stops a PKC at once and keeps it, for a restore.
func (d *Driver) Stop(_ context.Context, id string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if st := d.pkcs[id]; st != nil && !st.Stopped {
		st.Stopped, st.held = true, resource.Realized{}
		d.markDirty()
	}
	return nil
}

// Remove tears a PKC down in the scaled DeleteTime. A removal's first
// attempt may be refused or fail half way; one already gone returns at
// once.
func (d *Driver) Remove(ctx context.Context, id string) error {
	release, err := d.acquire(ctx, id)
	if err != nil {
		return err
	}
	defer release()
	d.mu.Lock()
	st := d.pkcs[id]
	if st == nil {
		d.mu.Unlock()
		return nil
	}
	first := !st.Removing
	st.Removing, st.seen, st.held = true, 0, resource.Realized{}
	d.markDirty()
	gen := st.Generation
	d.mu.Unlock()
	if first {
		d.operations.Add(1)
		rl, failAt := d.fault(fmt.Sprintf("remove/%s/%d", id, gen), 2)
		switch {
		case rl:
			return fmt.Errorf("pkc %s: %w", id, &RateLimitedError{After: d.retry})
		case failAt >= 0:
			if err := d.sleep(ctx, d.del/2); err != nil {
				return err
			}
			return fmt.Errorf("pkc %s: remove: %w", id, ErrSimulated)
		}
	}
	if err := d.sleep(ctx, d.del); err != nil {
		return err
	}
	d.mu.Lock()
	delete(d.pkcs, id)
	d.markDirty()
	d.mu.Unlock()
	d.removed.Add(1)
	d.log.DebugContext(ctx, "pkc removed", "pkc", id)
	if d.cfg.OnRemoved != nil {
		d.cfg.OnRemoved(id, time.Now())
	}
	return nil
}

// Present lists the PKCs the driver holds, those half created or half
// removed included.
func (d *Driver) Present() ([]string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	ids := make([]string, 0, len(d.pkcs))
	for id := range d.pkcs {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids, nil
}

// State returns what the driver holds of id.
func (d *Driver) State(id string) (State, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	st, ok := d.pkcs[id]
	if !ok {
		return State{}, false
	}
	return *st, true
}

// Stats returns the driver's counters.
func (d *Driver) Stats() Stats {
	return Stats{Operations: d.operations.Load(), RateLimited: d.rateLimited.Load(), Failed: d.failed.Load(),
		Realized: d.realized.Load(), Removed: d.removed.Load()}
}

// Close ends the operations in progress (they return ErrClosed) and writes
// the state file; the PKCs stay, to be resumed. Safe to call twice.
func (d *Driver) Close() error {
	d.closeOnce.Do(func() { close(d.done) })
	if d.cfg.DataDir == "" {
		return nil
	}
	d.mu.Lock()
	d.closed = true
	if d.flush != nil {
		d.flush.Stop()
		d.flush = nil
	}
	d.mu.Unlock()
	d.write()
	d.writeMu.Lock()
	defer d.writeMu.Unlock()
	return d.writeErr
}

// acquire waits until no other operation runs on id.
func (d *Driver) acquire(ctx context.Context, id string) (release func(), err error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	d.mu.Lock()
	l := d.locks[id]
	if l == nil {
		l = &keyLock{ch: make(chan struct{}, 1)}
		d.locks[id] = l
	}
	l.refs++
	d.mu.Unlock()
	unref := func() {
		d.mu.Lock()
		if l.refs--; l.refs == 0 {
			delete(d.locks, id)
		}
		d.mu.Unlock()
	}
	select {
	case l.ch <- struct{}{}:
		return func() { <-l.ch; unref() }, nil
	case <-ctx.Done():
		err = ctx.Err()
	case <-d.done:
		err = ErrClosed
	}
	unref()
	return nil, err
}

func (d *Driver) sleep(ctx context.Context, dur time.Duration) error {
	t := time.NewTimer(dur)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-d.done:
		return ErrClosed
	case <-t.C:
		return nil
	}
}

// markDirty schedules a write of the state file; d.mu is held.
func (d *Driver) markDirty() {
	if d.cfg.DataDir == "" || d.flush != nil || d.closed {
		return
	}
	d.flush = time.AfterFunc(d.cfg.FlushInterval, d.write)
}

// write saves what the driver holds, atomically.
func (d *Driver) write() {
	d.writeMu.Lock()
	defer d.writeMu.Unlock()
	d.mu.Lock()
	d.flush = nil
	data, err := json.Marshal(d.pkcs)
	d.mu.Unlock()
	if err == nil {
		err = atomicfile.Write(filepath.Join(d.cfg.DataDir, stateFile), data, 0o600)
	}
	if err != nil {
		d.log.Error("saving the simulated state failed", "err", err)
		err = fmt.Errorf("simdriver: save: %w", err)
	}
	d.writeErr = err
}

func (d *Driver) load() error {
	if err := os.MkdirAll(d.cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("simdriver: %w", err)
	}
	data, err := os.ReadFile(filepath.Join(d.cfg.DataDir, stateFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("simdriver: %w", err)
	}
	if err := json.Unmarshal(data, &d.pkcs); err != nil {
		return fmt.Errorf("simdriver: %s: %w", stateFile, err)
	}
	return nil
}
