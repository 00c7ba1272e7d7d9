package reactor

import (
	"container/heap"
	"context"
	"sync"
	"time"

	"github.com/mothership-dev/mothership/internal/runtime/event"
)

// pendingEvent is an event waiting to be applied, with the offset token to
// finish once it is applied or superseded.
type pendingEvent struct {
	ev  event.Event
	tok token
}

// item is the queue's entry for one key. While a worker runs it, new events
// wait in events and the item is queued again when the worker finishes, so
// one key never runs twice at once.
type item struct {
	key      string
	events   map[string]pendingEvent // newest waiting event per topic
	resync   bool                    // reconcile even if no event is new
	running  bool
	attempts int // consecutive failures
	readyAt  time.Time
	// waitingSince is when the work waiting for the key (not yet taken
	// by a worker) first arrived; zero when none waits.
	waitingSince time.Time
	seq          uint64 // FIFO among items ready at the same time
	index        int    // position in the heap; -1 when not queued
}

// work is what a worker takes from an item: the events to apply now.
type work struct {
	it     *item
	events map[string]pendingEvent
	resync bool
	since  time.Time // the item's waitingSince when taken
}

// traceParent is the trace the reaction continues: the newest event's
// (a reaction to several, coalesced, is the newest one's; a resync with
// none starts its own).
func (w work) traceParent() string {
	var newest event.Event
	for _, pe := range w.events {
		if newest.TraceParent == "" || pe.ev.Time.After(newest.Time) {
			newest = pe.ev
		}
	}
	return newest.TraceParent
}

// queue holds at most one entry per key: a newer event replaces a pending
// older one of the same topic (coalescing), and a failing key waits out its
// backoff without holding up the others.
type queue struct {
	mu    sync.Mutex
	items map[string]*item
	ready readyHeap
	seq   uint64
	wake  chan struct{}
}

func newQueue() *queue {
	return &queue{items: make(map[string]*item), wake: make(chan struct{}, 1)}
}

func (q *queue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// reset empties the queue, for a new run of the reactor.
func (q *queue) reset() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.items, q.ready = make(map[string]*item), nil
}

// len is the number of keys pending or running.
func (q *queue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items)
}

func (q *queue) get(key string) *item {
	it := q.items[key]
	if it == nil {
		it = &item{key: key, events: make(map[string]pendingEvent), index: -1}
		q.items[key] = it
	}
	return it
}

// schedule puts an idle item with work on the heap.
func (q *queue) schedule(it *item, now time.Time) {
	if it.running || it.index >= 0 || (len(it.events) == 0 && !it.resync) {
		return
	}
	if it.readyAt.Before(now) {
		it.readyAt = now
	}
	q.seq++
	it.seq = q.seq
	heap.Push(&q.ready, it)
}

// merge keeps the newer of pe and the event already waiting for topic and
// returns the token of the one dropped, if any. Of two deliveries of the
// same version the later one is kept: its token is the live one when the
// partition was revoked and assigned again in between.
func merge(it *item, topic string, pe pendingEvent) (dropped token, ok bool) {
	old, had := it.events[topic]
	if !had {
		it.events[topic] = pe
		return token{}, false
	}
	if pe.ev.Version >= old.ev.Version {
		it.events[topic] = pe
		return old.tok, true
	}
	return pe.tok, true
}

// add queues ev for key. It returns the token of an event made redundant
// by this one (the older of the two), which needs no further work.
func (q *queue) add(key, topic string, pe pendingEvent, now time.Time) (dropped token, ok bool) {
	q.mu.Lock()
	it := q.get(key)
	dropped, ok = merge(it, topic, pe)
	it.waiting(now)
	q.schedule(it, now)
	q.mu.Unlock()
	q.signal()
	return dropped, ok
}

// addResync asks for key to be reconciled even though nothing new arrived.
func (q *queue) addResync(key string, now time.Time) {
	q.mu.Lock()
	it := q.get(key)
	it.resync = true
	it.waiting(now)
	q.schedule(it, now)
	q.mu.Unlock()
	q.signal()
}

// take waits for ready items and returns up to max of them, marked running.
func (q *queue) take(ctx context.Context, max int) ([]work, error) {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		now := time.Now()
		q.mu.Lock()
		var out []work
		for len(out) < max && q.ready.Len() > 0 && !q.ready[0].readyAt.After(now) {
			it := heap.Pop(&q.ready).(*item)
			it.running = true
			out = append(out, work{it: it, events: it.events, resync: it.resync, since: it.waitingSince})
			it.events = make(map[string]pendingEvent)
			it.resync, it.waitingSince = false, time.Time{}
		}
		queued := q.ready.Len() > 0
		var wait time.Duration
		if queued {
			wait = q.ready[0].readyAt.Sub(now)
		}
		q.mu.Unlock()
		if len(out) > 0 {
			if queued && wait <= 0 {
				q.signal() // more is ready: wake another worker
			}
			return out, nil
		}
		var timeout <-chan time.Time
		if queued {
			if timer == nil {
				timer = time.NewTimer(wait)
			} else {
				timer.Reset(wait)
			}
			timeout = timer.C
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-q.wake:
		case <-timeout:
		}
	}
}

// done ends a successful run of w: the item leaves the queue unless new
// work arrived meanwhile.
func (q *queue) done(w work, now time.Time) {
	q.mu.Lock()
	it := w.it
	it.running = false
	it.attempts = 0
	it.readyAt = time.Time{}
	if len(it.events) == 0 && !it.resync {
		delete(q.items, it.key)
	} else {
		q.schedule(it, now)
	}
	q.mu.Unlock()
	q.signal()
}

// retry puts w's events back after a failure and delays the key by the
// backoff that delay returns for its attempt count. It returns the tokens of
// events that newer arrivals made redundant meanwhile.
func (q *queue) retry(w work, now time.Time, delay func(attempt int) time.Duration) (dropped []token, attempts int) {
	q.mu.Lock()
	it := w.it
	it.running = false
	it.attempts++
	for topic, pe := range w.events {
		if tok, ok := merge(it, topic, pe); ok {
			dropped = append(dropped, tok)
		}
	}
	it.resync = it.resync || w.resync
	it.waiting(w.since) // it has waited since it was first taken
	it.readyAt = now.Add(delay(it.attempts))
	q.schedule(it, now)
	attempts = it.attempts
	q.mu.Unlock()
	q.signal()
	return dropped, attempts
}

// waiting records that work for it waits since at, unless some waited
// already from earlier.
func (it *item) waiting(at time.Time) {
	if !at.IsZero() && (it.waitingSince.IsZero() || at.Before(it.waitingSince)) {
		it.waitingSince = at
	}
}

// oldest is how long the work waiting longest (not yet taken by a
// worker, a failing key's backoff included) has waited at now; 0 when
// none waits.
func (q *queue) oldest(now time.Time) time.Duration {
	q.mu.Lock()
	defer q.mu.Unlock()
	var most time.Duration
	for _, it := range q.items {
		if !it.waitingSince.IsZero() {
			most = max(most, now.Sub(it.waitingSince))
		}
	}
	return most
}

// readyHeap orders idle items by readiness, then arrival.
type readyHeap []*item

func (h readyHeap) Len() int { return len(h) }
func (h readyHeap) Less(i, j int) bool {
	if h[i].readyAt.Equal(h[j].readyAt) {
		return h[i].seq < h[j].seq
	}
	return h[i].readyAt.Before(h[j].readyAt)
}
func (h readyHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *readyHeap) Push(x any) {
	it := x.(*item)
	it.index = len(*h)
	*h = append(*h, it)
}
func (h *readyHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	old[len(old)-1] = nil
	it.index = -1
	*h = old[:len(old)-1]
	return it
}
