package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
)

// Metric names; both are labelled service and slot.
const (
	// MetricRetainedWAL is the WAL the slot keeps on the server's disk:
	// pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn). It grows while
	// the relay does not confirm (Kafka away, relay stopped).
	MetricRetainedWAL = "mothership_cdc_slot_retained_wal_bytes"
	// MetricWALStatus is 1 for the slot's wal_status (label status:
	// reserved, extended, unreserved, lost) and 0 for the others.
	MetricWALStatus = "mothership_cdc_slot_wal_status"
	// MetricSlotLost counts the times the slot was found missing or
	// invalidated and was made again; every such time the relay caught up
	// from the outbox table.
	MetricSlotLost = "mothership_cdc_slot_lost_total"
	// MetricCatchingUp is 1 while the relay reads the outbox table
	// instead of its slot's stream (the slot was lost, or the server has
	// no WAL sender to spare), 0 otherwise.
	MetricCatchingUp = "mothership_cdc_catching_up"
)

var walStatuses = []string{"reserved", "extended", "unreserved", "lost"}

// slotWatch samples the slot's retained WAL while the store is open.
//
// A slot retains WAL without bound unless the server sets
// max_slot_wal_keep_size (default -1: unbounded). Set it: past it the
// server invalidates the slot (wal_status "lost") rather than fill its
// disk. Nothing is lost then: the outbox rows stay in their table until
// Kafka acknowledged them, and the feed makes the slot again and catches
// up from the table (see feed.recover); the watch makes the loss seen at
// once, in the log and in the store's readiness, even while the relay is
// not reading.
type slotWatch struct {
	s        *Store
	retained *prometheus.GaugeVec
	status   *prometheus.GaugeVec

	mu     sync.Mutex
	warned bool

	cancel context.CancelFunc
	done   chan struct{}
}

// registerVec registers a metric vector, or finds the one a store of the
// same service registered first.
func registerVec[V prometheus.Collector](reg prometheus.Registerer, v V) (V, error) {
	if reg == nil {
		return v, nil
	}
	if err := reg.Register(v); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(V); ok {
				return existing, nil
			}
		}
		return v, err
	}
	return v, nil
}

func newSlotWatch(s *Store) (*slotWatch, error) {
	retained, err := registerVec(s.cfg.Registerer, prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: MetricRetainedWAL,
		Help: "WAL retained by the service's logical replication slot (current WAL position minus the slot's restart_lsn). Bounded by the server's max_slot_wal_keep_size.",
	}, []string{"service", "slot"}))
	if err != nil {
		return nil, fmt.Errorf("postgres %s: register %s: %w", s.cfg.Service, MetricRetainedWAL, err)
	}
	status, err := registerVec(s.cfg.Registerer, prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: MetricWALStatus,
		Help: "1 for the wal_status of the service's replication slot (reserved, extended, unreserved, lost), 0 for the others.",
	}, []string{"service", "slot", "status"}))
	if err != nil {
		return nil, fmt.Errorf("postgres %s: register %s: %w", s.cfg.Service, MetricWALStatus, err)
	}
	return &slotWatch{s: s, retained: retained, status: status}, nil
}

// start samples now, then every SlotCheckEvery until stop.
func (w *slotWatch) start(ctx context.Context) error {
	if err := w.sample(ctx); err != nil {
		return err
	}
	ctx, w.cancel = context.WithCancel(context.WithoutCancel(ctx))
	w.done = make(chan struct{})
	go func() {
		defer close(w.done)
		t := time.NewTicker(w.s.cfg.SlotCheckEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if err := w.sample(ctx); err != nil && ctx.Err() == nil {
				w.s.cfg.Logger.WarnContext(ctx, "replication slot not sampled", "slot", w.s.cfg.Slot, "err", err)
			}
		}
	}()
	return nil
}

func (w *slotWatch) stop() {
	if w.cancel != nil {
		w.cancel()
		<-w.done
	}
	// Another open store of the slot puts them back at its next sample.
	w.retained.DeleteLabelValues(w.s.cfg.Service, w.s.cfg.Slot)
	for _, st := range walStatuses {
		w.status.DeleteLabelValues(w.s.cfg.Service, w.s.cfg.Slot, st)
	}
}

// sample reads the slot's state once and reports it.
func (w *slotWatch) sample(ctx context.Context) error {
	var (
		status   string
		retained int64
	)
	err := w.s.pool.QueryRow(ctx, `SELECT coalesce(wal_status, ''), coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn), 0)::bigint
		FROM pg_replication_slots WHERE slot_name = $1`, w.s.cfg.Slot).Scan(&status, &retained)
	if errors.Is(err, pgx.ErrNoRows) {
		status = "dropped"
	} else if err != nil {
		return fmt.Errorf("postgres %s: replication slot %s: %w", w.s.cfg.Service, w.s.cfg.Slot, err)
	}
	w.retained.WithLabelValues(w.s.cfg.Service, w.s.cfg.Slot).Set(float64(retained))
	for _, st := range walStatuses {
		w.status.WithLabelValues(w.s.cfg.Service, w.s.cfg.Slot, st).Set(map[bool]float64{true: 1}[st == status])
	}
	if status == "lost" || status == "dropped" {
		w.s.health.lost(ctx, status)
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	switch above := w.s.cfg.SlotWarnBytes > 0 && retained > w.s.cfg.SlotWarnBytes; {
	case above && !w.warned:
		w.warned = true
		w.s.cfg.Logger.WarnContext(ctx, "replication slot retains more WAL than the threshold: the relay is not confirming (is Kafka reachable?); past the server's max_slot_wal_keep_size the slot is invalidated",
			"slot", w.s.cfg.Slot, "retained_bytes", retained, "threshold_bytes", w.s.cfg.SlotWarnBytes, "wal_status", status)
	case !above && w.warned:
		w.warned = false
		w.s.cfg.Logger.InfoContext(ctx, "replication slot back under the WAL threshold", "slot", w.s.cfg.Slot, "retained_bytes", retained)
	}
	return nil
}
