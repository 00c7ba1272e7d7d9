package postgres

import (
	"context"
	"fmt"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// health is what the store says of its change feed: whether every
// committed change is on its way to Kafka through the slot, or the slot was
// lost and the feed is catching up from the outbox table. The store is not
// ready (Store.Ready) from the moment a loss is seen until the catch-up
// was confirmed.
type health struct {
	service, slot string
	log           interface {
		ErrorContext(ctx context.Context, msg string, args ...any)
		InfoContext(ctx context.Context, msg string, args ...any)
	}
	lostTotal *prometheus.CounterVec
	catching  *prometheus.GaugeVec

	mu      sync.Mutex
	problem string // non-empty while not ready
	kind    string // of the problem: "lost" or "sender"
}

func newHealth(s *Store) (*health, error) {
	h := &health{service: s.cfg.Service, slot: s.cfg.Slot, log: s.cfg.Logger}
	var err error
	h.lostTotal, err = registerVec(s.cfg.Registerer, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: MetricSlotLost,
		Help: "Times the service's replication slot was found dropped or invalidated and made again; each time the relay caught up from the outbox table, losing nothing.",
	}, []string{"service", "slot"}))
	if err != nil {
		return nil, fmt.Errorf("postgres %s: register %s: %w", s.cfg.Service, MetricSlotLost, err)
	}
	h.catching, err = registerVec(s.cfg.Registerer, prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: MetricCatchingUp,
		Help: "1 while the relay reads the outbox table instead of its replication slot's stream (the slot was lost, or the server has no WAL sender to spare), else 0.",
	}, []string{"service", "slot"}))
	if err != nil {
		return nil, fmt.Errorf("postgres %s: register %s: %w", s.cfg.Service, MetricCatchingUp, err)
	}
	h.lostTotal.WithLabelValues(h.service, h.slot).Add(0)
	h.catching.WithLabelValues(h.service, h.slot).Set(0)
	return h, nil
}

// lost records that the slot is gone (status "dropped" or "lost", as
// pg_replication_slots' wal_status says of an invalidated slot), and
// says so once.
func (h *health) lost(ctx context.Context, status string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.kind == "lost" {
		return
	}
	why := "no longer exists (dropped)"
	switch status {
	case "lost":
		why = "was invalidated by the server (wal_status lost: it held more WAL than max_slot_wal_keep_size)"
	case "resumed":
		why = "was lost before the last stop, and the catch-up had not ended"
	}
	h.problem = fmt.Sprintf("replication slot %s %s; the relay makes it again and catches up from the outbox table", h.slot, why)
	h.kind = "lost"
	h.catching.WithLabelValues(h.service, h.slot).Set(1)
	h.log.ErrorContext(ctx, "replication slot lost: no change is lost (the outbox table keeps every change until Kafka acknowledged it), but until the catch-up is done the service is not ready; find who dropped the slot or raise max_slot_wal_keep_size",
		"slot", h.slot, "status", status)
}

// noSender records that the server refuses the feed a WAL sender (all
// max_wal_senders are taken), so that the relay reads the outbox table
// instead, and says so once.
func (h *health) noSender(ctx context.Context, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.problem != "" {
		return
	}
	h.problem = fmt.Sprintf("the server refuses the relay a WAL sender for slot %s (%v); changes are relayed from the outbox table meanwhile", h.slot, err)
	h.kind = "sender"
	h.catching.WithLabelValues(h.service, h.slot).Set(1)
	h.log.ErrorContext(ctx, "no WAL sender for the relay: every max_wal_senders is taken (by whom: SELECT usename, count(*) FROM pg_stat_replication GROUP BY 1); relaying from the outbox table until one is free",
		"slot", h.slot, "err", err)
}

// streaming records that the feed has its WAL sender again.
func (h *health) streaming(ctx context.Context) {
	h.clear(ctx, "sender", "the relay streams from its replication slot again")
}

// remade counts a slot made again after a loss.
func (h *health) remade() { h.lostTotal.WithLabelValues(h.service, h.slot).Inc() }

// caughtUp records that every change of the catch-up reached Kafka.
func (h *health) caughtUp(ctx context.Context, rows int) {
	h.clear(ctx, "lost", "caught up after the replication slot was lost: every change of the outbox table reached Kafka", "rows", rows)
}

// clear ends a problem of kind, if that is the one the store has, saying
// msg.
func (h *health) clear(ctx context.Context, kind, msg string, args ...any) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.kind != kind {
		return
	}
	h.problem, h.kind = "", ""
	h.catching.WithLabelValues(h.service, h.slot).Set(0)
	h.log.InfoContext(ctx, msg, append([]any{"slot", h.slot}, args...)...)
}

// err is why the store is not ready, if it is not.
func (h *health) err() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.problem == "" {
		return nil
	}
	return fmt.Errorf("postgres %s: %s", h.service, h.problem)
}

// stop removes the gauge; the counter keeps counting for the next store of
// the service in this process.
func (h *health) stop() {
	h.catching.DeleteLabelValues(h.service, h.slot)
}
