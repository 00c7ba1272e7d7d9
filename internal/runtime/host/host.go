// Package host runs services on the runtime: for each service it opens the
// service's own store, creates the topics of the kinds it owns, and starts
// its relay (outbox → Kafka) and its reactor (Kafka → reconcile). Every
// service is run the same way; a service only declares what it is.
package host

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mothership-dev/mothership/internal/runtime/broker"
	"github.com/mothership-dev/mothership/internal/runtime/event"
	"github.com/mothership-dev/mothership/internal/runtime/reactor"
	"github.com/mothership-dev/mothership/internal/runtime/relay"
	"github.com/mothership-dev/mothership/internal/runtime/startstop"
	"github.com/mothership-dev/mothership/internal/runtime/store"
)

// Service declares a service to the runtime.
type Service struct {
	// Name is the service's name: its database, consumer group and event
	// source.
	Name string
	// Layer is its place in the layer cake; lower layers start first.
	Layer int
	// Owns are the resource kinds it alone writes; their desired and
	// status topics are its own.
	Owns []string
	// ReactsTo are the topics it consumes; empty for a service that only
	// serves an API.
	ReactsTo []string
	// Reconcile is its reaction to a key of ReactsTo.
	Reconcile reactor.ReconcileFunc
	// OnEvent, instead of Reconcile, receives every event of ReactsTo
	// (see reactor.Config.OnEvent).
	OnEvent func(ctx context.Context, tx store.Tx, topic string, ev event.Event) error
	// OnFailure optionally records a failed reconcile's reason in status.
	OnFailure reactor.FailureFunc
	// Prefetch optionally reads, once per reaction batch, the rows its
	// keys' reconciles read (reactor.Config.Prefetch; PrefetchByKey).
	Prefetch func(ctx context.Context, tx store.Tx, keys []string) error
	// PrefetchEvents is Prefetch for OnEvent (reactor.Config.PrefetchEvents).
	PrefetchEvents func(ctx context.Context, tx store.Tx, evs []store.TopicEvent) error
	// Keys optionally adds keys to every resync.
	Keys func(ctx context.Context, tx store.Tx) ([]string, error)
	// Attach, if set, receives the service's own store once it is open and
	// before anything reacts, so that the service's API can use it.
	Attach func(store.Store)
	// Init, if set, runs once at every start, in a transaction of its own
	// after the store opens and before the relay and the reactor start:
	// for state the service's configuration declares (the sites a
	// deployment was set up with), written as any other change, so that
	// its events flow like every other's.
	Init func(ctx context.Context, tx store.Tx) error
	// Reactor tunes the reactor (workers, batch, backoff, resync); the
	// fields the host fills are ignored.
	Reactor reactor.Config
	// Upkeep, if set, runs every UpkeepInterval (default an hour), and
	// soon after the start, in transactions of the service's own: care of
	// its own state that no event asks for, such as purging records past
	// their retention. A round is a transaction; while Upkeep reports
	// more to do, the next runs at once, so that a long round never holds
	// the writer long. A failure is logged and waits for the next round.
	Upkeep         func(ctx context.Context, tx store.Tx) (more bool, err error)
	UpkeepInterval time.Duration
	// Stuck, if set, marks the service's resources whose accepted
	// generation stays unobserved too long (see StuckWatch).
	Stuck *StuckWatch
}

// Topics returns the topics of the kinds the service owns.
func (s Service) Topics() []broker.Topic {
	var out []broker.Topic
	for _, kind := range s.Owns {
		out = append(out,
			broker.StateTopic(event.Topic(kind, event.Desired)),
			broker.StateTopic(event.Topic(kind, event.Status)))
	}
	return out
}

// Grants returns the least the service's Kafka principal needs: produce to
// (and create) the topics of the kinds it owns, consume the topics it
// reacts to in its own consumer group. Provision them with broker.Provision.
func (s Service) Grants() broker.Grants {
	var g broker.Grants
	for _, t := range s.Topics() {
		g.Produce = append(g.Produce, t.Name)
	}
	if len(s.ReactsTo) > 0 {
		g.Consume = slices.Clone(s.ReactsTo)
		// The reactor's group, as reactor.New defaults it.
		g.Groups = []string{cmp.Or(s.Reactor.Group, s.Name)}
	}
	return g
}

// Config configures where services run.
type Config struct {
	// OpenStore opens a service's own database, in which the service may
	// write only the kinds it owns.
	OpenStore func(ctx context.Context, service string, owns []string) (store.Store, error)
	// Kafka are the client options that reach the event cluster.
	Kafka []kgo.Opt
	// Logger and Registerer receive every component's logs and metrics.
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Running is a started service.
type Running struct {
	Service Service
	Store   store.Store
	Relay   *relay.Relay
	Reactor *reactor.Reactor // nil when the service reacts to nothing

	upkeep startstop.Runner
	stuck  startstop.Runner
	// stuckCounts is, per watched kind, how many the last pass found
	// stuck.
	stuckCounts map[string]*atomic.Int64
	stopOnce    sync.Once
	stopErr     error
}

// Start opens svc's store, creates its topics and starts its relay and
// reactor. On error nothing is left running.
func Start(ctx context.Context, cfg Config, svc Service) (*Running, error) {
	if svc.Name == "" || cfg.OpenStore == nil || len(cfg.Kafka) == 0 {
		return nil, errors.New("host: service name, OpenStore and Kafka are required")
	}
	if len(svc.ReactsTo) > 0 && svc.Reconcile == nil && svc.OnEvent == nil {
		return nil, fmt.Errorf("host: %s reacts to %v but has no Reconcile or OnEvent", svc.Name, svc.ReactsTo)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if err := ensureTopics(ctx, cfg.Kafka, svc.Topics()); err != nil {
		return nil, fmt.Errorf("host: %s: %w", svc.Name, err)
	}
	st, err := cfg.OpenStore(ctx, svc.Name, append([]string{}, svc.Owns...))
	if err != nil {
		return nil, fmt.Errorf("host: %s: open store: %w", svc.Name, err)
	}
	r := &Running{Service: svc, Store: st}
	if svc.Attach != nil {
		svc.Attach(st)
	}
	if svc.Init != nil {
		if err := st.Update(ctx, svc.Init); err != nil {
			return nil, errors.Join(fmt.Errorf("host: %s: init: %w", svc.Name, err), st.Close())
		}
	}
	r.Relay, err = relay.New(relay.Config{
		Service: svc.Name, Feed: st.Feed(), Kafka: cfg.Kafka, Logger: cfg.Logger, Registerer: cfg.Registerer,
	})
	if err == nil && len(svc.ReactsTo) > 0 {
		rc := svc.Reactor
		rc.Service, rc.Topics, rc.Store, rc.Reconcile, rc.OnFailure, rc.Keys, rc.Prefetch = svc.Name, svc.ReactsTo, st, svc.Reconcile, svc.OnFailure, svc.Keys, svc.Prefetch
		rc.OnEvent, rc.PrefetchEvents = svc.OnEvent, svc.PrefetchEvents
		rc.Kafka, rc.Logger, rc.Registerer = cfg.Kafka, cfg.Logger, cfg.Registerer
		r.Reactor, err = reactor.New(rc)
	}
	if err == nil {
		err = r.Relay.Start(ctx)
	}
	if err == nil && r.Reactor != nil {
		err = r.Reactor.Start(ctx)
	}
	if err == nil && svc.Upkeep != nil {
		err = r.upkeep.Start(ctx, func(ctx context.Context) error { return r.runUpkeep(ctx, cfg.Logger) })
	}
	if err == nil && svc.Stuck != nil {
		r.registerStuckGauges(cfg.Registerer, cfg.Logger)
		err = r.stuck.Start(ctx, func(ctx context.Context) error { return r.runStuckWatch(ctx, cfg.Logger) })
	}
	if err != nil {
		return nil, errors.Join(fmt.Errorf("host: start %s: %w", svc.Name, err), r.Stop())
	}
	cfg.Logger.InfoContext(ctx, "service started", "service", svc.Name, "layer", svc.Layer)
	return r, nil
}

// upkeepDelay is how long after the start the first upkeep runs: once the
// service's start has settled.
const upkeepDelay = 10 * time.Second

// runUpkeep runs the service's upkeep until ctx ends.
func (r *Running) runUpkeep(ctx context.Context, log *slog.Logger) error {
	interval := cmp.Or(r.Service.UpkeepInterval, time.Hour)
	wait := min(upkeepDelay, interval)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		wait = interval
		for more := true; more && ctx.Err() == nil; {
			err := r.Store.Update(ctx, func(ctx context.Context, tx store.Tx) (err error) {
				more, err = r.Service.Upkeep(ctx, tx)
				return err
			})
			if err != nil {
				if ctx.Err() == nil {
					log.WarnContext(ctx, "upkeep failed; retrying at the next round", "service", r.Service.Name, "err", err)
				}
				break
			}
		}
	}
}

// Stop stops the upkeep and the reactor, then the relay, then closes the
// store; it is safe to call twice.
func (r *Running) Stop() error {
	r.stopOnce.Do(func() {
		var errs []error
		if r.Service.Upkeep != nil {
			errs = append(errs, r.upkeep.Stop())
		}
		if r.Service.Stuck != nil {
			errs = append(errs, r.stuck.Stop())
		}
		if r.Reactor != nil {
			errs = append(errs, r.Reactor.Stop())
		}
		if r.Relay != nil {
			errs = append(errs, r.Relay.Stop())
		}
		errs = append(errs, r.Store.Close())
		r.stopErr = errors.Join(errs...)
	})
	return r.stopErr
}

func ensureTopics(ctx context.Context, kafka []kgo.Opt, topics []broker.Topic) error {
	if len(topics) == 0 {
		return nil
	}
	cl, err := kgo.NewClient(kafka...)
	if err != nil {
		return fmt.Errorf("kafka client: %w", err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return broker.EnsureTopics(ctx, cl, topics...)
}

// Fleet is a set of started services.
type Fleet struct {
	running []*Running
}

// StartAll starts services bottom layer first, so that a service starts
// only once the layers below it run. On error the started ones are stopped.
func StartAll(ctx context.Context, cfg Config, services []Service) (*Fleet, error) {
	ordered := slices.Clone(services)
	slices.SortStableFunc(ordered, func(a, b Service) int { return cmp.Compare(a.Layer, b.Layer) })
	f := &Fleet{}
	for _, svc := range ordered {
		r, err := Start(ctx, cfg, svc)
		if err != nil {
			return nil, errors.Join(err, f.Stop())
		}
		f.running = append(f.running, r)
	}
	return f, nil
}

// Settled reports whether every service's reactor has reconciled every
// key once since it started and has nothing queued: the fleet caught up.
func (f *Fleet) Settled() bool { return f.everyReactor((*reactor.Reactor).Settled) }

// Drained reports whether every service's reactor has applied every
// event it has seen and has nothing queued (see reactor.Reactor.Drained).
func (f *Fleet) Drained() bool { return f.everyReactor((*reactor.Reactor).Drained) }

// everyReactor reports whether ok holds for the reactor of every service
// that has one.
func (f *Fleet) everyReactor(ok func(*reactor.Reactor) bool) bool {
	for _, r := range f.running {
		if r.Reactor != nil && !ok(r.Reactor) {
			return false
		}
	}
	return true
}

// Services returns the running services in start order.
func (f *Fleet) Services() []*Running { return slices.Clone(f.running) }

// Stop stops the services top layer first.
func (f *Fleet) Stop() error {
	var errs []error
	for i := len(f.running) - 1; i >= 0; i-- {
		errs = append(errs, f.running[i].Stop())
	}
	return errors.Join(errs...)
}

// PrefetchByKey is the Prefetch of a service whose reconcile of a key
// reads its own resource of kind under the key's id.
func PrefetchByKey(kind string) func(ctx context.Context, tx store.Tx, keys []string) error {
	return func(ctx context.Context, tx store.Tx, keys []string) error {
		return tx.ResourcePrefetch(ctx, kind, keys)
	}
}
