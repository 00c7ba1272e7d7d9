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

// ErrSlotLost is returned, by every write and by the change feed, once the
// service's replication slot was invalidated or dropped: the events it
// held are gone from the write-ahead log, and every event written from then
// on would be lost too.
var ErrSlotLost = errors.New("replication slot lost")

// Metric names; both are labelled service and slot.
const (
	// MetricRetainedWAL is the WAL the slot keeps on the server's disk:
	// pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn). It grows while
	// the relay does not confirm (Kafka away, relay stopped).
	MetricRetainedWAL = "mothership_cdc_slot_retained_wal_bytes"
	// MetricWALStatus is 1 for the slot's wal_status (label status:
	// reserved, extended, unreserved, lost) and 0 for the others.
	MetricWALStatus = "mothership_cdc_slot_wal_status"
)

var walStatuses = []string{"reserved", "extended", "unreserved", "lost"}

// slotWatch samples the slot's retained WAL while the store is open.
//
// A slot retains WAL without bound unless the server sets
// max_slot_wal_keep_size (default -1: unbounded). Set it: past it the
// server invalidates the slot (wal_status "lost") rather than fill its
// disk, and the store then refuses writes with ErrSlotLost until an
// operator re-creates the slot and the consumers resync. Between the
// warning threshold (Config.SlotWarnBytes) and that bound is the time an
// operator has to bring Kafka back.
type slotWatch struct {
	s        *Store
	retained *prometheus.GaugeVec
	status   *prometheus.GaugeVec

	mu     sync.Mutex
	lost   error // non-nil once the slot is found lost
	warned bool

	cancel context.CancelFunc
	done   chan struct{}
}

// gaugeVec registers a gauge vector, or finds the one a store of the same
// service registered first.
func gaugeVec(reg prometheus.Registerer, opts prometheus.GaugeOpts, labels ...string) (*prometheus.GaugeVec, error) {
	gv := prometheus.NewGaugeVec(opts, labels)
	if reg == nil {
		return gv, nil
	}
	if err := reg.Register(gv); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(*prometheus.GaugeVec); ok {
				return existing, nil
			}
		}
		return nil, err
	}
	return gv, nil
}

func newSlotWatch(s *Store) (*slotWatch, error) {
	retained, err := gaugeVec(s.cfg.Registerer, prometheus.GaugeOpts{
		Name: MetricRetainedWAL,
		Help: "WAL retained by the service's logical replication slot (current WAL position minus the slot's restart_lsn). Bounded by the server's max_slot_wal_keep_size.",
	}, "service", "slot")
	if err != nil {
		return nil, fmt.Errorf("postgres %s: register %s: %w", s.cfg.Service, MetricRetainedWAL, err)
	}
	status, err := gaugeVec(s.cfg.Registerer, prometheus.GaugeOpts{
		Name: MetricWALStatus,
		Help: "1 for the wal_status of the service's replication slot (reserved, extended, unreserved, lost), 0 for the others.",
	}, "service", "slot", "status")
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
			if err := w.sample(ctx); err != nil && ctx.Err() == nil && !errors.Is(err, ErrSlotLost) {
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
		return w.markLost(ctx, status)
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

// markLost records that the slot is gone and says what to do, once.
func (w *slotWatch) markLost(ctx context.Context, status string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.lost == nil {
		w.lost = slotLostError(w.s.cfg.Service, w.s.cfg.Slot, status)
		w.s.cfg.Logger.ErrorContext(ctx, "replication slot lost; writes are refused until it is re-created and consumers resync", "slot", w.s.cfg.Slot, "err", w.lost)
	}
	return w.lost
}

// err is the reason the store refuses writes, if any.
func (w *slotWatch) err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.lost
}

func slotLostError(service, slot, status string) error {
	why := "was invalidated (wal_status lost): the server removed WAL it held beyond max_slot_wal_keep_size, so the events committed since the relay's last confirmation are no longer readable"
	if status == "dropped" {
		why = "no longer exists: the events committed since the relay's last confirmation can no longer be read"
	}
	return fmt.Errorf("postgres %s: %w: slot %s %s. To recover: stop the service; drop the slot if it is still listed (SELECT pg_drop_replication_slot('%s')); start the service again, which re-creates it; then resync the consumers from the current state, as events may be missing", service, ErrSlotLost, slot, why, slot)
}
