// Package reactor runs a service's reactions to the events it consumes: a
// consumer group per service, a per-key queue that coalesces events, a pool
// of workers that reconcile keys in the service's own transactions, per-key
// backoff on failure, and a resync of everything, spread over time.
//
// A cold start does not reconcile every key at once: it consumes the
// events not applied yet and retries the keys that were failing when the
// service stopped (kept in the store, see retryIndex), and the periodic
// resync, which begins at the start, heals everything else in its turn.
//
// A reaction is level-triggered. The runtime records the newest event of
// each key in the service's store (store.Tx.ObservedPut) in the same
// transaction as the reconcile, and calls Reconcile with the key only: the
// reconciler reads the latest state and never trusts a particular event.
// An event not newer than the one recorded changes nothing (duplicates from
// at-least-once delivery are dropped by (id, version)), and offsets are
// committed only once the reaction's transaction committed.
package reactor

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mothership-dev/mothership/internal/runtime/backoff"
	"github.com/mothership-dev/mothership/internal/runtime/event"
	"github.com/mothership-dev/mothership/internal/runtime/startstop"
	"github.com/mothership-dev/mothership/internal/runtime/store"
	"github.com/mothership-dev/mothership/internal/runtime/trace"
)

// ReconcileFunc brings key to its desired state within tx, the service's
// own transaction. The events that triggered it are already recorded in tx
// (store.Tx.ObservedGet reads them). A returned error rolls tx back and
// retries the key after a backoff; wrap it with Terminal to stop retrying.
type ReconcileFunc func(ctx context.Context, tx store.Tx, key string) error

// FailureFunc records why key failed to reconcile, typically as the reason
// in a resource's status, in a transaction of its own (the reconcile's was
// rolled back).
type FailureFunc func(ctx context.Context, tx store.Tx, key string, err error) error

type terminalError struct{ err error }

func (e terminalError) Error() string { return e.err.Error() }
func (e terminalError) Unwrap() error { return e.err }

// Terminal marks err as one that retrying cannot fix: the key is not retried
// until a new event or the next resync. OnFailure records the reason.
func Terminal(err error) error { return terminalError{err} }

// Waiting marks err as a reconcile that is not done yet but is not failing
// either (an operation it started still runs): it is retried with the
// same backoff, its reason is still recorded by OnFailure, but it is logged
// at debug level, not as a failure.
func Waiting(err error) error { return waitingError{err} }

type waitingError struct{ err error }

func (e waitingError) Error() string { return e.err.Error() }
func (e waitingError) Unwrap() error { return e.err }

// IsWaiting reports whether err was marked with Waiting.
func IsWaiting(err error) bool {
	var w waitingError
	return errors.As(err, &w)
}

// retryAfter is implemented by errors that say when to come back, such as a
// cloud's 429 with Retry-After; the reactor waits at least that long.
type retryAfter interface{ RetryAfter() time.Duration }

// IsTerminal reports whether err was marked with Terminal.
func IsTerminal(err error) bool {
	var t terminalError
	return errors.As(err, &t)
}

// Config configures a Reactor.
type Config struct {
	// Service names the reacting service; it is the consumer group unless
	// Group is set.
	Service string
	Group   string
	// InstanceID, if set, makes the reactor a static member of its group
	// (KIP-345): a process restarted with the same id, after a crash as
	// well, takes its partitions back at once instead of waiting for the
	// old member's session to time out. Each process of a group needs its
	// own.
	InstanceID string
	// Topics the service reacts to.
	Topics []string
	// Store is the service's own database.
	Store store.Store
	// Reconcile is the service's reaction.
	Reconcile ReconcileFunc
	// OnEvent, set instead of Reconcile, makes the reactor a history
	// consumer: it is called for every event, none coalesced, none
	// skipped as not newer, with no resync (an audit log needs every
	// change; a reconciler needs only the latest state). Events of one
	// subject may be applied out of order: OnEvent must not depend on it.
	OnEvent func(ctx context.Context, tx store.Tx, topic string, ev event.Event) error
	// Prefetch, if set, is called in each reaction transaction, before
	// its keys are reconciled, with the keys that will be: it reads at
	// once (store.Tx.ResourcePrefetch) the rows their reconciles read one
	// by one, so a batch costs one read instead of one per key. Optional.
	Prefetch func(ctx context.Context, tx store.Tx, keys []string) error
	// PrefetchEvents is Prefetch for a history consumer (OnEvent): it is
	// called in each transaction, before OnEvent, with the events the
	// transaction applies, to read at once what OnEvent reads for each
	// (store.Tx.IndexGetMany, ResourcePrefetch). Optional.
	PrefetchEvents func(ctx context.Context, tx store.Tx, evs []store.TopicEvent) error
	// OnFailure, if set, records a failed reconcile's reason (in status),
	// so that users see why a resource waits. Optional.
	OnFailure FailureFunc
	// Keys lists, for a resync, keys to reconcile beyond those observed on
	// Topics (for instance the service's own resources). Optional.
	Keys func(ctx context.Context, tx store.Tx) ([]string, error)
	// Kafka are the client options that reach the cluster; the reactor adds
	// its consumer-group settings.
	Kafka []kgo.Opt
	// AfterCommit, if set, is called after each reaction transaction
	// committed, with the events it applied (for progress and latency
	// measurements). It must not block.
	AfterCommit func(applied []event.Event)

	// Workers reconcile keys in parallel (default 4).
	Workers int
	// MaxBatch bounds the keys applied in one transaction when the queue
	// is deep (default 256).
	MaxBatch int
	// MaxPending pauses consumption while this many keys wait (default
	// 100,000); memory is bounded by keys, not events, thanks to coalescing.
	MaxPending int
	// BackoffBase and BackoffMax bound a failing key's retry delay
	// (defaults 100ms and 2m).
	BackoffBase, BackoffMax time.Duration
	// ResyncInterval is the period over which every key is reconciled
	// again, spread evenly (default 10m; negative disables the periodic
	// resync). The first round begins at the start.
	ResyncInterval time.Duration
	// StartResyncWindow spreads the retries on start of the keys that were
	// failing when the service stopped (default 5s).
	StartResyncWindow time.Duration

	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Stats are cumulative counts, for tests and status pages.
type Stats struct {
	// Received counts records consumed.
	Received int64
	// Superseded counts events replaced by a newer one before being applied.
	Superseded int64
	// Duplicates counts keys whose events were all already recorded.
	Duplicates int64
	// Reconciled counts successful reconciles.
	Reconciled int64
	// Failures counts failed reconciles.
	Failures int64
	// Resyncs counts the reconciles a resync asked for.
	Resyncs int64
}

// Reactor consumes a service's topics and reconciles their keys.
type Reactor struct {
	cfg     Config
	runner  startstop.Runner
	queue   *queue
	offsets *tracker

	received, superseded, duplicates, reconciled, failures, resyncs atomic.Int64
	// startResynced is set once the keys failing at the last stop are
	// queued again.
	startResynced atomic.Bool
	// catchUp is, per partition, the end offset at the start: the events
	// below it were written before the start and must be applied before
	// the reactor is settled.
	catchUpMu sync.Mutex
	catchUp   map[topicPartition]int64
	// failingAtStart holds the keys kept as failing at the last stop,
	// until they succeed.
	failingAtStart sync.Map

	hop       prometheus.Histogram
	txSeconds prometheus.Histogram
}

// New validates cfg and returns a stopped reactor.
func New(cfg Config) (*Reactor, error) {
	if cfg.Service == "" || len(cfg.Topics) == 0 || cfg.Store == nil || (cfg.Reconcile == nil) == (cfg.OnEvent == nil) || len(cfg.Kafka) == 0 {
		return nil, errors.New("reactor: Service, Topics, Store, Kafka and one of Reconcile and OnEvent are required")
	}
	cfg.Group = cmp.Or(cfg.Group, cfg.Service)
	cfg.Workers = cmp.Or(cfg.Workers, 4)
	cfg.MaxBatch = cmp.Or(cfg.MaxBatch, 256)
	cfg.MaxPending = cmp.Or(cfg.MaxPending, 100_000)
	cfg.BackoffBase = cmp.Or(cfg.BackoffBase, 100*time.Millisecond)
	cfg.BackoffMax = cmp.Or(cfg.BackoffMax, 2*time.Minute)
	cfg.ResyncInterval = cmp.Or(cfg.ResyncInterval, 10*time.Minute)
	cfg.StartResyncWindow = cmp.Or(cfg.StartResyncWindow, 5*time.Second)
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	cfg.Logger = cfg.Logger.With("component", "reactor", "service", cfg.Service)

	r := &Reactor{cfg: cfg, queue: newQueue(), offsets: newTracker()}
	labels := prometheus.Labels{"service": cfg.Service}
	r.hop = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "mothership_reactor_hop_seconds", ConstLabels: labels,
		Help:    "Time from an event's write at its source to the commit of the reaction to it.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
	})
	r.txSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "mothership_reactor_transaction_seconds", ConstLabels: labels,
		Help:    "Duration of reaction transactions.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
	})
	counter := func(name, help string, v *atomic.Int64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: labels},
			func() float64 { return float64(v.Load()) })
	}
	collectors := []prometheus.Collector{
		r.hop, r.txSeconds,
		counter("mothership_reactor_received_total", "Event records consumed.", &r.received),
		counter("mothership_reactor_superseded_total", "Events replaced by a newer one before being applied.", &r.superseded),
		counter("mothership_reactor_duplicates_total", "Keys whose events were all already applied.", &r.duplicates),
		counter("mothership_reactor_reconciled_total", "Successful reconciles.", &r.reconciled),
		counter("mothership_reactor_failures_total", "Failed reconciles, retried with backoff.", &r.failures),
		counter("mothership_reactor_resyncs_total", "Reconciles a resync asked for.", &r.resyncs),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "mothership_reactor_queue_keys", Help: "Keys waiting or running.", ConstLabels: labels},
			func() float64 { return float64(r.queue.len()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "mothership_reactor_oldest_queued_seconds",
			Help: "How long the key waiting longest has waited for a worker (a failing key's backoff included).", ConstLabels: labels},
			func() float64 { return r.queue.oldest(time.Now()).Seconds() }),
	}
	for _, topic := range cfg.Topics {
		// One series per topic the service reacts to: a bounded set.
		collectors = append(collectors, prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "mothership_reactor_consumer_lag_records",
			Help:        "Records of the topic not yet applied: from the commit point to the high watermark, over the partitions assigned to this process.",
			ConstLabels: prometheus.Labels{"service": cfg.Service, "topic": topic}},
			func() float64 { return float64(r.offsets.lag(topic)) }))
	}
	if cfg.Registerer != nil {
		for _, c := range collectors {
			if err := cfg.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("reactor %s: register metrics: %w", cfg.Service, err)
			}
		}
	}
	return r, nil
}

// Stats returns the reactor's counts so far.
func (r *Reactor) Stats() Stats {
	return Stats{
		Received: r.received.Load(), Superseded: r.superseded.Load(), Duplicates: r.duplicates.Load(),
		Reconciled: r.reconciled.Load(), Failures: r.failures.Load(), Resyncs: r.resyncs.Load(),
	}
}

// Drained reports whether the reactor has applied every event its
// fetches have seen on the partitions it holds, and has nothing queued:
// no work is deferred. A benchmark waits for it before it counts the CPU
// its changes cost, so that a consumer that fell behind (audit's records)
// is not left out of the figure.
func (r *Reactor) Drained() bool {
	if r.queue.len() != 0 {
		return false
	}
	for _, topic := range r.cfg.Topics {
		if r.offsets.lag(topic) != 0 {
			return false
		}
	}
	return true
}

// Settled reports whether the reactor has caught up since its start: it
// applied every event its partitions held when it started, the keys that
// were failing when it stopped are queued again, and the queue has
// drained. A benchmark times a cold start with it.
func (r *Reactor) Settled() bool {
	if (r.cfg.OnEvent == nil && !r.startResynced.Load()) || r.queue.len() != 0 {
		return false
	}
	r.catchUpMu.Lock()
	defer r.catchUpMu.Unlock()
	return r.catchUp != nil && r.offsets.reached(r.catchUp)
}

// retryIndex is where the reactor keeps, in the service's own store, the
// keys that are failing (an index of the runtime's, not of the service:
// nothing but the reactor reads it, and losing it only leaves those keys
// to the periodic resync). A cold start retries them first.
const retryIndex = "reactor_retry"

// measureCatchUp records the end offsets of the topics' partitions, above
// what the group committed: what a start must apply to be settled.
func (r *Reactor) measureCatchUp(ctx context.Context, cl *kgo.Client) error {
	adm := kadm.NewClient(cl)
	ends, err := adm.ListEndOffsets(ctx, r.cfg.Topics...)
	if err != nil {
		return err
	}
	committed, err := adm.FetchOffsets(ctx, r.cfg.Group)
	if errors.Is(err, kerr.GroupIDNotFound) {
		committed, err = nil, nil // a group that never committed: everything is to apply
	}
	if err != nil {
		return err
	}
	need := map[topicPartition]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			return
		}
		from := int64(0)
		if c, ok := committed.Lookup(o.Topic, o.Partition); ok && c.Err == nil {
			from = c.At
		}
		if o.Offset > from {
			need[topicPartition{o.Topic, o.Partition}] = o.Offset
		}
	})
	r.catchUpMu.Lock()
	r.catchUp = need
	r.catchUpMu.Unlock()
	return nil
}

// Start joins the consumer group and starts the workers and the resync.
func (r *Reactor) Start(ctx context.Context) error {
	opts := append([]kgo.Opt{}, r.cfg.Kafka...)
	if r.cfg.InstanceID != "" {
		opts = append(opts, kgo.InstanceID(r.cfg.InstanceID))
	}
	opts = append(opts,
		kgo.ConsumerGroup(r.cfg.Group),
		kgo.ConsumeTopics(r.cfg.Topics...),
		// A member that died without leaving holds its partitions until
		// its session times out: 10s rather than kgo's 45s, so that a
		// crashed service's events are picked up soon by its restart.
		kgo.SessionTimeout(10*time.Second),
		kgo.HeartbeatInterval(time.Second),
		// A service that joins late learns the full state from the
		// beginning of the (compacted) topics.
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		// Commit only what the tracker marks: offsets whose reactions
		// have committed.
		kgo.AutoCommitMarks(),
		kgo.AutoCommitInterval(time.Second),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, assigned map[string][]int32) { r.offsets.assign(assigned) }),
		// On revoke, finished work since the last autocommit (at most
		// AutoCommitInterval) is not committed: committing from this
		// callback can block a leaving client, and the new owner's
		// replay of that second is dropped by version.
		kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, revoked map[string][]int32) { r.offsets.drop(revoked) }),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, lost map[string][]int32) { r.offsets.drop(lost) }),
	)
	if err := r.runner.Start(ctx, func(ctx context.Context) error { return r.run(ctx, opts) }); err != nil {
		return fmt.Errorf("reactor %s: %w", r.cfg.Service, err)
	}
	return nil
}

// Stop stops consuming, cancels running reactions (their transactions roll
// back and their events are redelivered), commits what finished and leaves
// the group.
func (r *Reactor) Stop() error { return r.runner.Stop() }

func (r *Reactor) run(ctx context.Context, opts []kgo.Opt) error {
	// A previous run may have left keys marked running: start afresh
	// (resync and redelivery bring everything back). Done here, not in
	// Start, so that a Start refused with ErrStarted touches nothing;
	// and before the client exists, since it joins the group at once
	// and its first assignment must not be reset away (a tracker
	// without partitions never settles, and commits nothing).
	r.queue.reset()
	r.offsets.reset()
	r.startResynced.Store(false)
	r.catchUpMu.Lock()
	r.catchUp = nil
	r.catchUpMu.Unlock()
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("kafka client: %w", err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		// Until it is known, the reactor is not settled; a failure is
		// retried, since the consumption does not wait for it.
		for ctx.Err() == nil {
			err := r.measureCatchUp(ctx, cl)
			if err == nil {
				return
			}
			r.cfg.Logger.WarnContext(ctx, "reading the topics' end offsets failed; retrying", "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	})
	for range r.cfg.Workers {
		wg.Go(func() { r.work(ctx, cl) })
	}
	if r.cfg.OnEvent == nil {
		wg.Go(func() { r.resyncLoop(ctx) })
	}
	r.cfg.Logger.InfoContext(ctx, "reactor started", "topics", r.cfg.Topics, "group", r.cfg.Group)
	r.poll(ctx, cl)
	wg.Wait()

	// Commit what finished before leaving, so a restart replays little.
	commitCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := cl.CommitMarkedOffsets(commitCtx); err != nil {
		r.cfg.Logger.Warn("final offset commit failed; the next start replays more", "err", err)
	}
	cl.Close()
	return nil
}

// poll consumes records into the queue until ctx ends.
func (r *Reactor) poll(ctx context.Context, cl *kgo.Client) {
	for ctx.Err() == nil {
		// Backpressure: coalescing bounds the queue by keys; past
		// MaxPending keys, wait for the workers before fetching more.
		for r.queue.len() >= r.cfg.MaxPending {
			select {
			case <-ctx.Done():
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
		fetches := cl.PollRecords(ctx, 10_000)
		if fetches.IsClientClosed() || ctx.Err() != nil {
			return
		}
		fetches.EachError(func(topic string, p int32, err error) {
			r.cfg.Logger.WarnContext(ctx, "fetch failed", "topic", topic, "partition", p, "err", err)
		})
		now := time.Now()
		var dropped []token
		fetches.EachRecord(func(rec *kgo.Record) {
			r.received.Add(1)
			tok := r.offsets.add(rec)
			ev, err := event.Decode(rec.Value)
			if err == nil && ev.Subject != string(rec.Key) {
				err = fmt.Errorf("event subject %q, record key %q", ev.Subject, rec.Key)
			}
			if err != nil {
				// A malformed record can never be applied; skipping it
				// (loudly) keeps it from blocking its partition.
				r.cfg.Logger.ErrorContext(ctx, "skipping malformed event", "topic", rec.Topic, "partition", rec.Partition, "offset", rec.Offset, "err", err)
				dropped = append(dropped, tok)
				return
			}
			key := ev.Subject
			if r.cfg.OnEvent != nil {
				// One queue entry per record: nothing coalesces.
				key = fmt.Sprintf("%s/%d/%d", rec.Topic, rec.Partition, rec.Offset)
			}
			if old, ok := r.queue.add(key, rec.Topic, pendingEvent{ev: ev, tok: tok}, now); ok {
				r.superseded.Add(1)
				dropped = append(dropped, old)
			}
		})
		fetches.EachPartition(func(p kgo.FetchTopicPartition) {
			r.offsets.watermark(p.Topic, p.Partition, p.HighWatermark)
		})
		r.finish(cl, dropped)
	}
}

func (r *Reactor) finish(cl *kgo.Client, toks []token) {
	if len(toks) == 0 {
		return
	}
	if marks := r.offsets.finish(toks...); marks != nil {
		cl.MarkCommitOffsets(marks)
	}
}

// work takes batches of ready keys and applies them until ctx ends.
func (r *Reactor) work(ctx context.Context, cl *kgo.Client) {
	for {
		batch, err := r.queue.take(ctx, r.cfg.MaxBatch)
		if err != nil {
			return
		}
		r.apply(ctx, cl, batch)
	}
}

// apply applies a batch in one transaction. If the transaction fails, each
// key is applied alone, so that only the failing key backs off.
func (r *Reactor) apply(ctx context.Context, cl *kgo.Client, batch []work) {
	var reconciled, duplicates, resyncs int64
	start := time.Now()
	err := r.cfg.Store.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		reconciled, duplicates, resyncs = 0, 0, 0
		newer, err := r.record(ctx, tx, batch)
		if err != nil {
			return err
		}
		if err := r.prefetch(ctx, tx, batch, newer); err != nil {
			return err
		}
		for i, w := range batch {
			ran, err := r.applyOne(ctx, tx, w, newer[i])
			if err != nil {
				return err
			}
			if ran {
				reconciled++
				if w.resync {
					resyncs++
				}
			} else {
				duplicates++
			}
		}
		return nil
	})
	if err != nil && ctx.Err() != nil {
		return // shutting down: the events stay unfinished and are replayed
	}
	if err != nil && len(batch) > 1 {
		for _, w := range batch {
			r.apply(ctx, cl, []work{w})
		}
		return
	}
	now := time.Now()
	if err != nil {
		r.failed(ctx, cl, batch[0], err, now)
		return
	}
	r.txSeconds.Observe(now.Sub(start).Seconds())
	r.reconciled.Add(reconciled)
	r.duplicates.Add(duplicates)
	r.resyncs.Add(resyncs)
	var toks []token
	var applied []event.Event
	for _, w := range batch {
		for _, pe := range w.events {
			toks = append(toks, pe.tok)
			applied = append(applied, pe.ev)
			r.hop.Observe(now.Sub(pe.ev.Time).Seconds())
		}
		r.queue.done(w, now)
	}
	r.finish(cl, toks)
	if r.cfg.AfterCommit != nil && len(applied) > 0 {
		r.cfg.AfterCommit(applied)
	}
}

// record records the batch's events, all in one round trip where the
// store can, and reports for each work whether any of its events was new.
// A history consumer (OnEvent) records nothing here.
func (r *Reactor) record(ctx context.Context, tx store.Tx, batch []work) ([]bool, error) {
	newer := make([]bool, len(batch))
	if r.cfg.OnEvent != nil {
		return newer, nil
	}
	var evs []store.TopicEvent
	var owner []int // evs[i] belongs to batch[owner[i]]
	for i, w := range batch {
		for topic, pe := range w.events {
			evs = append(evs, store.TopicEvent{Topic: topic, Event: pe.ev})
			owner = append(owner, i)
		}
	}
	ok, err := tx.ObservedPutAll(ctx, evs)
	if err != nil {
		return nil, err
	}
	for i, written := range ok {
		newer[owner[i]] = newer[owner[i]] || written
	}
	return newer, nil
}

// prefetch gives Prefetch the keys of the batch that will be reconciled,
// or PrefetchEvents a history consumer's events.
func (r *Reactor) prefetch(ctx context.Context, tx store.Tx, batch []work, newer []bool) error {
	if r.cfg.OnEvent != nil {
		if r.cfg.PrefetchEvents == nil {
			return nil
		}
		var evs []store.TopicEvent
		for _, w := range batch {
			for topic, pe := range w.events {
				evs = append(evs, store.TopicEvent{Topic: topic, Event: pe.ev})
			}
		}
		if err := r.cfg.PrefetchEvents(ctx, tx, evs); err != nil {
			return fmt.Errorf("prefetch %d events: %w", len(evs), err)
		}
		return nil
	}
	if r.cfg.Prefetch == nil {
		return nil
	}
	keys := make([]string, 0, len(batch))
	for i, w := range batch {
		if newer[i] || w.resync {
			keys = append(keys, w.it.key)
		}
	}
	if len(keys) == 0 {
		return nil
	}
	if err := r.cfg.Prefetch(ctx, tx, keys); err != nil {
		return fmt.Errorf("prefetch %d keys: %w", len(keys), err)
	}
	return nil
}

// applyOne reconciles w's key if any of its events was new (or a resync
// asked for it); a history consumer's OnEvent gets each event. It reports
// whether it reconciled.
func (r *Reactor) applyOne(ctx context.Context, tx store.Tx, w work, newer bool) (bool, error) {
	if r.cfg.OnEvent != nil {
		for topic, pe := range w.events {
			if err := r.cfg.OnEvent(trace.Continue(ctx, pe.ev.TraceParent), tx, topic, pe.ev); err != nil {
				return false, fmt.Errorf("event %s: %w", pe.ev.ID, err)
			}
		}
		return len(w.events) > 0, nil
	}
	if !newer && !w.resync {
		return false, nil
	}
	if err := r.cfg.Reconcile(trace.Continue(ctx, w.traceParent()), tx, w.it.key); err != nil {
		return false, fmt.Errorf("reconcile %s: %w", w.it.key, err)
	}
	// A key that was failing (a retry now, or kept as failing at the last
	// stop) succeeded: it is failing no longer. Other keys have no entry:
	// the periodic resync's reconciles write nothing more.
	if _, atStart := r.failingAtStart.LoadAndDelete(w.it.key); atStart || w.it.attempts > 0 {
		if err := tx.IndexDelete(ctx, retryIndex, w.it.key); err != nil {
			return false, err
		}
	}
	return true, nil
}

// failed handles a key whose reaction failed alone. In a transaction of
// their own, its events are recorded and OnFailure notes the reason; its
// offsets can then be committed, and the key is retried (unless the error
// is terminal) as a resync, from the recorded state. If even that
// transaction fails, the events stay pending and are retried as they are.
func (r *Reactor) failed(ctx context.Context, cl *kgo.Client, w work, err error, now time.Time) {
	r.failures.Add(1)
	if r.cfg.OnEvent != nil {
		// A history consumer keeps the event itself until it is applied:
		// there is no latest state to fall back on.
		_, attempts := r.queue.retry(w, now, func(attempt int) time.Duration {
			return backoff.Delay(attempt, r.cfg.BackoffBase, r.cfg.BackoffMax)
		})
		r.cfg.Logger.WarnContext(ctx, "applying an event failed; backing off", "key", w.it.key, "attempt", attempts, "err", err)
		return
	}
	terminal := IsTerminal(err)
	recErr := r.cfg.Store.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		for topic, pe := range w.events {
			if _, err := tx.ObservedPut(ctx, topic, pe.ev); err != nil {
				return err
			}
		}
		if !terminal && len(w.it.key) <= store.MaxIndexKeyBytes {
			// Retried after a restart too, first.
			if err := tx.IndexPut(ctx, retryIndex, w.it.key, ""); err != nil {
				return err
			}
		}
		if r.cfg.OnFailure != nil {
			return r.cfg.OnFailure(ctx, tx, w.it.key, err)
		}
		return nil
	})
	delay := func(attempt int) time.Duration { return backoff.Delay(attempt, r.cfg.BackoffBase, r.cfg.BackoffMax) }
	var ra retryAfter
	if errors.As(err, &ra) {
		delay = func(attempt int) time.Duration {
			return max(backoff.Delay(attempt, r.cfg.BackoffBase, r.cfg.BackoffMax), ra.RetryAfter())
		}
	}
	level := slog.LevelWarn
	if IsWaiting(err) {
		level = slog.LevelDebug
	}
	if recErr != nil {
		r.cfg.Logger.ErrorContext(ctx, "recording a failed reconcile failed; retrying with its events", "key", w.it.key, "err", recErr)
		dropped, attempts := r.queue.retry(w, now, delay)
		r.superseded.Add(int64(len(dropped)))
		r.finish(cl, dropped)
		r.cfg.Logger.Log(ctx, level, "reconcile failed; backing off", "key", w.it.key, "attempt", attempts, "err", err)
		return
	}
	toks := make([]token, 0, len(w.events))
	for _, pe := range w.events {
		toks = append(toks, pe.tok)
	}
	if terminal {
		r.queue.done(w, now)
		r.finish(cl, toks)
		r.cfg.Logger.ErrorContext(ctx, "reconcile failed terminally; waiting for a new event or resync", "key", w.it.key, "err", err)
		return
	}
	dropped, attempts := r.queue.retry(work{it: w.it, events: nil, resync: true}, now, delay)
	r.finish(cl, append(toks, dropped...))
	r.cfg.Logger.Log(ctx, level, "reconcile not done; backing off", "key", w.it.key, "attempt", attempts, "err", err)
}

// resyncLoop retries, on start, the keys that were failing when the
// service stopped (spread over StartResyncWindow), then reconciles every
// key continuously, each once per ResyncInterval, spread evenly.
func (r *Reactor) resyncLoop(ctx context.Context) {
	for ctx.Err() == nil {
		err := r.resync(ctx, r.cfg.StartResyncWindow, true)
		if err == nil {
			r.startResynced.Store(true)
			break
		}
		if ctx.Err() == nil {
			r.cfg.Logger.WarnContext(ctx, "retrying the keys failing at the last stop failed", "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
	for ctx.Err() == nil && r.cfg.ResyncInterval >= 0 {
		if err := r.resync(ctx, r.cfg.ResyncInterval, false); err != nil && ctx.Err() == nil {
			r.cfg.Logger.WarnContext(ctx, "resync failed; retrying", "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
}

// resync enqueues every known key (only the failing ones), spread evenly
// over window.
func (r *Reactor) resync(ctx context.Context, window time.Duration, failing bool) error {
	var keys []string
	err := r.cfg.Store.View(ctx, func(ctx context.Context, tx store.Tx) error {
		if failing {
			entries, err := store.IndexEntries(ctx, tx, retryIndex, "")
			for _, e := range entries {
				keys = append(keys, e.Key)
				r.failingAtStart.Store(e.Key, true)
			}
			return err
		}
		seen := map[string]bool{}
		add := func(ks []string) {
			for _, k := range ks {
				if !seen[k] {
					seen[k] = true
					keys = append(keys, k)
				}
			}
		}
		for _, topic := range r.cfg.Topics {
			ks, err := tx.ObservedSubjects(ctx, topic)
			if err != nil {
				return err
			}
			add(ks)
		}
		if r.cfg.Keys != nil {
			ks, err := r.cfg.Keys(ctx, tx)
			if err != nil {
				return fmt.Errorf("list keys: %w", err)
			}
			add(ks)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("reactor %s: resync: %w", r.cfg.Service, err)
	}
	if failing {
		if len(keys) == 0 {
			return nil // nothing was failing: no window to wait out
		}
		// A few keys need no spreading; many are spread, a millisecond
		// each, up to the window.
		window = min(window, time.Duration(len(keys))*time.Millisecond)
	}
	return spread(ctx, keys, window, func(k string) { r.queue.addResync(k, time.Now()) })
}

// spreadStep is the shortest pause between two releases of a resync.
const spreadStep = 10 * time.Millisecond

// spread calls fn for every key, in equal slices at equal pauses, so that
// the whole set takes window: one key per pause when there are few, more
// per spreadStep when there are many. An empty set still takes window, so an
// idle service stays idle.
func spread(ctx context.Context, keys []string, window time.Duration, fn func(string)) error {
	per, pause := 1, window
	if len(keys) > 0 {
		steps := max(int(window/spreadStep), 1)
		per = (len(keys) + steps - 1) / steps
		pause = window / time.Duration((len(keys)+per-1)/per)
	}
	tick := time.NewTicker(max(pause, time.Millisecond))
	defer tick.Stop()
	for i := 0; ; i += per {
		for _, k := range keys[min(i, len(keys)):min(i+per, len(keys))] {
			fn(k)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		if i+per >= len(keys) {
			return nil
		}
	}
}
