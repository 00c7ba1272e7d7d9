// Package relay is the change-data-capture relay of the runtime: it reads a
// store's committed outbox changes in commit order and produces them to
// Kafka with an idempotent producer, confirming a position only after Kafka
// acknowledged every change up to it.
//
// The guarantee: every committed change reaches Kafka, in order per key,
// at least once, across a crash of the relay or of the broker. A change may
// be produced twice after a crash; consumers drop it by its version.
package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mothership-dev/mothership/internal/runtime/backoff"
	"github.com/mothership-dev/mothership/internal/runtime/event"
	"github.com/mothership-dev/mothership/internal/runtime/startstop"
	"github.com/mothership-dev/mothership/internal/runtime/store"
)

// Config configures a Relay.
type Config struct {
	// Service names the store's owner, for logs and metrics.
	Service string
	// Feed is the store's change feed.
	Feed store.ChangeFeed
	// Kafka are the client options that reach the cluster (seed brokers,
	// SASL, TLS). The relay adds its producer settings.
	Kafka []kgo.Opt
	// BatchSize bounds the changes produced per round (default 1000).
	BatchSize int
	// RetryBackoff bounds the wait after a failed round (default 5s).
	RetryBackoff time.Duration
	// DeliveryTimeout fails a round whose records Kafka has not
	// acknowledged in time (default 30s); the round is then retried.
	DeliveryTimeout time.Duration
	// ConfirmEvery bounds how long a produced change may stay unconfirmed
	// (default 20ms). Confirming is a write to the service's database;
	// under load it is done once per interval instead of once per round,
	// at the price of that many changes produced again after a crash.
	ConfirmEvery time.Duration
	// Logger receives the relay's logs.
	Logger *slog.Logger
	// Registerer receives the relay's metrics; nil registers nothing.
	Registerer prometheus.Registerer
}

// Relay moves committed outbox changes to Kafka.
type Relay struct {
	cfg    Config
	runner startstop.Runner

	produced  prometheus.Counter
	failures  prometheus.Counter
	position  prometheus.Gauge
	roundTime prometheus.Histogram
	lag       prometheus.Gauge
}

// New validates cfg and returns a stopped relay.
func New(cfg Config) (*Relay, error) {
	if cfg.Service == "" || cfg.Feed == nil || len(cfg.Kafka) == 0 {
		return nil, errors.New("relay: Service, Feed and Kafka are required")
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 1000
	}
	if cfg.RetryBackoff <= 0 {
		cfg.RetryBackoff = 5 * time.Second
	}
	if cfg.DeliveryTimeout <= 0 {
		cfg.DeliveryTimeout = 30 * time.Second
	}
	if cfg.ConfirmEvery <= 0 {
		cfg.ConfirmEvery = 20 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	cfg.Logger = cfg.Logger.With("component", "relay", "service", cfg.Service)
	labels := prometheus.Labels{"service": cfg.Service}
	r := &Relay{
		cfg: cfg,
		produced: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mothership_relay_produced_total", Help: "Outbox changes acknowledged by Kafka.", ConstLabels: labels,
		}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mothership_relay_failures_total", Help: "Relay rounds that failed and were retried.", ConstLabels: labels,
		}),
		position: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mothership_relay_confirmed_position", Help: "Last outbox position confirmed after Kafka acknowledged it.", ConstLabels: labels,
		}),
		roundTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "mothership_relay_round_seconds", Help: "Time from reading a batch of changes to confirming it.", ConstLabels: labels,
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		lag: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mothership_relay_lag_seconds", ConstLabels: labels,
			Help: "Age, when Kafka acknowledged it, of the oldest change of the last batch relayed (commit → Kafka); 0 once the outbox is drained.",
		}),
	}
	collectors := []prometheus.Collector{r.produced, r.failures, r.position, r.roundTime, r.lag}
	if bf, ok := cfg.Feed.(store.BacklogFeed); ok {
		collectors = append(collectors, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "mothership_outbox_backlog_changes", ConstLabels: labels,
			Help: "Changes committed to the outbox and not yet confirmed in Kafka (counted at each scrape).",
		}, func() float64 {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			n, err := bf.Backlog(ctx)
			if err != nil {
				cfg.Logger.Warn("counting the outbox failed", "err", err)
				return math.NaN()
			}
			return float64(n)
		}))
	}
	if cfg.Registerer != nil {
		for _, c := range collectors {
			if err := cfg.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("relay %s: register metrics: %w", cfg.Service, err)
			}
		}
	}
	return r, nil
}

// Start begins relaying in the background.
func (r *Relay) Start(ctx context.Context) error {
	cl, err := kgo.NewClient(append(append([]kgo.Opt{}, r.cfg.Kafka...),
		// Latency matters more than batching here: a change is produced
		// the moment it is committed.
		kgo.ProducerLinger(0),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		// A record that cannot be delivered in time fails its round,
		// and the round is retried from the confirmed position: the
		// relay waits out a broker outage without trusting one client's
		// state forever (a broker restart once left a produce pending
		// for minutes).
		kgo.RecordDeliveryTimeout(r.cfg.DeliveryTimeout),
	)...)
	if err != nil {
		return fmt.Errorf("relay %s: kafka client: %w", r.cfg.Service, err)
	}
	if err := r.runner.Start(ctx, func(ctx context.Context) error {
		// A produce already buffered ignores its context: closing the
		// client is what fails it, so Stop never waits on a broker.
		closeClient := sync.OnceFunc(cl.Close)
		stop := context.AfterFunc(ctx, closeClient)
		defer stop()
		defer closeClient()
		return r.run(ctx, cl)
	}); err != nil {
		cl.Close()
		return fmt.Errorf("relay %s: %w", r.cfg.Service, err)
	}
	return nil
}

// Stop stops the relay and waits for it; unconfirmed changes are produced
// again by the next start.
func (r *Relay) Stop() error { return r.runner.Stop() }

func (r *Relay) run(ctx context.Context, cl *kgo.Client) error {
	r.cfg.Logger.InfoContext(ctx, "relay started")
	// A previous run may have read changes it never produced: every run
	// starts after the last confirmed position.
	rewind := true
	var p progress
	failures := 0
	for {
		var err error
		if rewind {
			if err = r.cfg.Feed.Rewind(ctx); err == nil {
				rewind, p = false, progress{}
			} else {
				err = fmt.Errorf("rewind: %w", err)
			}
		}
		if err == nil {
			err = r.round(ctx, cl, &p)
		}
		if err == nil {
			failures = 0
			continue
		}
		if ctx.Err() != nil {
			return nil
		}
		failures++
		r.failures.Inc()
		wait := backoff.Delay(failures, 50*time.Millisecond, r.cfg.RetryBackoff)
		r.cfg.Logger.WarnContext(ctx, "relay round failed; retrying", "err", err, "retry_in", wait)
		// The failed round may have produced part of its batch: start
		// again after the last confirmed position so nothing is skipped.
		rewind = true
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

// progress is what the relay produced but has not confirmed yet.
type progress struct {
	produced    int64 // last position Kafka acknowledged
	unconfirmed bool
	since       time.Time // first acknowledgement not yet confirmed
}

// round produces the next batch of changes, and confirms what Kafka
// acknowledged once ConfirmEvery has passed since the oldest unconfirmed
// acknowledgement or once no new change arrives within it.
func (r *Relay) round(ctx context.Context, cl *kgo.Client, p *progress) error {
	waitCtx := ctx
	if p.unconfirmed {
		var cancel context.CancelFunc
		waitCtx, cancel = context.WithDeadline(ctx, p.since.Add(r.cfg.ConfirmEvery))
		defer cancel()
	}
	changes, err := r.cfg.Feed.Next(waitCtx, r.cfg.BatchSize)
	if err != nil && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
		r.lag.Set(0)             // drained
		return r.confirm(ctx, p) // idle: confirm what is pending
	}
	if err != nil {
		return fmt.Errorf("read changes: %w", err)
	}
	start := time.Now()
	records := make([]*kgo.Record, len(changes))
	for i, c := range changes {
		records[i] = &kgo.Record{Topic: c.Topic, Key: []byte(c.Key), Value: c.Value}
	}
	if err := cl.ProduceSync(ctx, records...).FirstErr(); err != nil {
		return fmt.Errorf("produce %d changes: %w", len(records), err)
	}
	r.produced.Add(float64(len(changes)))
	r.roundTime.Observe(time.Since(start).Seconds())
	if at, ok := event.TimeOf(changes[0].Value); ok {
		r.lag.Set(time.Since(at).Seconds())
	}
	p.produced = changes[len(changes)-1].Position
	if !p.unconfirmed {
		p.unconfirmed, p.since = true, time.Now()
	}
	if time.Since(p.since) >= r.cfg.ConfirmEvery {
		return r.confirm(ctx, p)
	}
	return nil
}

func (r *Relay) confirm(ctx context.Context, p *progress) error {
	if !p.unconfirmed {
		return nil
	}
	if err := r.cfg.Feed.Confirm(ctx, p.produced); err != nil {
		return fmt.Errorf("confirm position %d: %w", p.produced, err)
	}
	r.position.Set(float64(p.produced))
	p.unconfirmed = false
	return nil
}
