package host

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mothership-dev/mothership/internal/runtime/store"
)

// DefaultStuckAfter is how long an accepted generation may stay
// unobserved before its resource is marked STUCK.
const DefaultStuckAfter = 15 * time.Minute

// StuckWatch marks the resources of an owner's kinds that wait for a
// generation to be observed, without progress, longer than After
// (store.Status.PendingSince) with a STUCK condition in their own status
// (store.Status.Stuck), naming the lowest layer that has not caught up;
// the store drops the condition once the observed generation moves. A
// dead layer below (a stopped service, a silent satellite) leaves the
// generation unobserved, so it is caught the same way.
type StuckWatch struct {
	// Kinds are the owner's kinds watched.
	Kinds []string
	// After is the limit (default DefaultStuckAfter); Interval how often
	// the watch looks (default a tenth of After, at least a second and
	// at most a minute).
	After, Interval time.Duration
	// Layer names the lowest layer that has not caught up with r, and
	// says what it waits for; skip leaves r unmarked (a paused resource
	// is left as it is on purpose).
	Layer func(ctx context.Context, tx store.Tx, r store.Resource) (layer, message string, skip bool, err error)
}

// stuckPage bounds the resources one transaction of the watch reads.
const stuckPage = 500

// registerStuckGauges registers, per watched kind, the gauge of how many
// resources the watch's last pass found stuck.
func (r *Running) registerStuckGauges(reg prometheus.Registerer, log *slog.Logger) {
	r.stuckCounts = map[string]*atomic.Int64{}
	for _, kind := range r.Service.Stuck.Kinds {
		n := &atomic.Int64{}
		r.stuckCounts[kind] = n
		if reg == nil {
			continue
		}
		g := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "mothership_stuck_resources",
			Help:        "Resources whose accepted generation stayed unobserved past their limit, as their owner's last pass found them.",
			ConstLabels: prometheus.Labels{"service": r.Service.Name, "kind": kind}},
			func() float64 { return float64(n.Load()) })
		if err := reg.Register(g); err != nil {
			log.Warn("host: stuck gauge not registered", "service", r.Service.Name, "kind", kind, "err", err)
		}
	}
}

// runStuckWatch passes over the watched kinds every interval until ctx
// ends.
func (r *Running) runStuckWatch(ctx context.Context, log *slog.Logger) error {
	w := r.Service.Stuck
	after := cmp.Or(w.After, DefaultStuckAfter)
	interval := cmp.Or(w.Interval, min(max(after/10, time.Second), time.Minute))
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(interval):
		}
		for _, kind := range w.Kinds {
			n, err := r.stuckPass(ctx, kind, after)
			if err != nil {
				if ctx.Err() == nil {
					log.WarnContext(ctx, "stuck watch failed; retrying at the next round", "service", r.Service.Name, "kind", kind, "err", err)
				}
				continue
			}
			r.stuckCounts[kind].Store(int64(n))
		}
	}
}

// stuckPass marks the resources of kind stuck past after and returns how
// many are stuck. It reads a page per read-only transaction, and writes
// only for the resources whose condition changes, so that a pass over
// many resources holds no writer while nothing is stuck.
func (r *Running) stuckPass(ctx context.Context, kind string, after time.Duration) (int, error) {
	stuck := 0
	for cursor := ""; ; {
		var page []store.Resource
		var due []string
		err := r.Store.View(ctx, func(ctx context.Context, tx store.Tx) error {
			var err error
			if page, err = tx.ResourceList(ctx, store.ListParams{Kind: kind, AfterID: cursor, Limit: stuckPage}); err != nil {
				return err
			}
			for _, res := range page {
				since, waiting := waitingSince(res)
				switch {
				case !waiting:
				case time.Since(since) > after:
					due = append(due, res.ID) // marked, or its layer named anew
				case res.Status.Stuck != nil:
					stuck++
				}
			}
			return nil
		})
		if err != nil {
			return 0, err
		}
		if len(due) > 0 {
			err = r.Store.Update(ctx, func(ctx context.Context, tx store.Tx) error {
				for _, id := range due {
					marked, err := r.markStuck(ctx, tx, kind, id, after)
					if err != nil {
						return fmt.Errorf("%s %s: %w", kind, id, err)
					}
					if marked {
						stuck++
					}
				}
				return nil
			})
			if err != nil {
				return 0, err
			}
		}
		if len(page) < stuckPage {
			return stuck, nil
		}
		cursor = page[len(page)-1].ID
	}
}

// waitingSince says whether res waits for a generation to be observed,
// and since when without progress.
func waitingSince(res store.Resource) (time.Time, bool) {
	if res.Status.ObservedGeneration >= res.Generation {
		return time.Time{}, false
	}
	if res.Status.PendingSince != nil {
		return *res.Status.PendingSince, true
	}
	return res.UpdatedAt, true // written before the store timed waits
}

// markStuck reads the resource anew and marks it STUCK when it has waited
// past after, or names anew the layer it waits on; it reports whether it
// is stuck.
func (r *Running) markStuck(ctx context.Context, tx store.Tx, kind, id string, after time.Duration) (bool, error) {
	res, err := tx.ResourceGet(ctx, kind, id)
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrDeleted) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	since, waiting := waitingSince(res)
	if !waiting || time.Since(since) <= after {
		return false, nil
	}
	layer, message, skip, err := r.Service.Stuck.Layer(ctx, tx, res)
	if err != nil || skip {
		return false, err
	}
	next := &store.Stuck{Since: since, Layer: layer, Message: message}
	if old := res.Status.Stuck; old != nil && *old == *next {
		return true, nil
	}
	st := res.Status
	st.Stuck = next
	_, err = tx.ResourceSetStatus(ctx, res.Kind, res.ID, st)
	return true, err
}
