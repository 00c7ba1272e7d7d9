package reactor

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mothership-dev/mothership/internal/runtime/event"
)

func pe(key string, version int64, offset int64) pendingEvent {
	return pendingEvent{
		ev:  event.Event{Subject: key, Version: version},
		tok: token{topic: "t", offset: offset},
	}
}

func takeNow(t *testing.T, q *queue, max int) []work {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	w, err := q.take(ctx, max)
	if err != nil {
		t.Fatalf("take: %v", err)
	}
	return w
}

func TestQueueCoalescesPerKeyAndTopic(t *testing.T) {
	q := newQueue()
	now := time.Now()
	var dropped []int64
	for i, v := range []int64{2, 4, 1, 6} { // 1 is a late replay
		if tok, ok := q.add("lkc-1", "t", pe("lkc-1", v, int64(i)), now); ok {
			dropped = append(dropped, tok.offset)
		}
	}
	q.add("lkc-1", "other", pe("lkc-1", 1, 9), now)
	if !slices.Equal(dropped, []int64{0, 2, 1}) {
		t.Fatalf("dropped offsets %v, want [0 2 1]: 2 replaced by 4, the replay of 1 dropped, 4 replaced by 6", dropped)
	}
	ws := takeNow(t, q, 10)
	if len(ws) != 1 || ws[0].events["t"].ev.Version != 6 || ws[0].events["other"].ev.Version != 1 {
		t.Fatalf("took %+v, want one item with version 6 on t and 1 on other", ws)
	}
}

func TestQueueNeverRunsAKeyTwiceAtOnce(t *testing.T) {
	q := newQueue()
	now := time.Now()
	q.add("k", "t", pe("k", 1, 0), now)
	first := takeNow(t, q, 10)
	q.add("k", "t", pe("k", 2, 1), now) // arrives while k runs

	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if w, err := q.take(ctx, 10); err == nil {
		t.Fatalf("took %+v while k was still running", w)
	}
	q.done(first[0], now)
	second := takeNow(t, q, 10)
	if second[0].events["t"].ev.Version != 2 {
		t.Fatalf("after done, took version %d, want 2", second[0].events["t"].ev.Version)
	}
	q.done(second[0], now)
	if q.len() != 0 {
		t.Fatalf("queue holds %d keys after everything is done", q.len())
	}
}

func TestQueueRetryDelaysOnlyTheFailingKey(t *testing.T) {
	q := newQueue()
	now := time.Now()
	q.add("bad", "t", pe("bad", 1, 0), now)
	q.add("good", "t", pe("good", 1, 1), now)
	ws := takeNow(t, q, 1)
	if ws[0].it.key != "bad" {
		t.Fatalf("took %s first, want bad (FIFO)", ws[0].it.key)
	}
	// bad fails; a newer event for it arrives during the run and wins.
	q.add("bad", "t", pe("bad", 2, 2), now)
	dropped, attempts := q.retry(ws[0], now, func(int) time.Duration { return time.Hour })
	if attempts != 1 || len(dropped) != 1 || dropped[0].offset != 0 {
		t.Fatalf("retry: attempts %d dropped %+v, want 1 and the offset of version 1", attempts, dropped)
	}
	ws = takeNow(t, q, 10)
	if len(ws) != 1 || ws[0].it.key != "good" {
		t.Fatalf("took %+v, want only good while bad backs off", ws)
	}
	q.mu.Lock()
	bad := q.items["bad"]
	q.mu.Unlock()
	if bad.events["t"].ev.Version != 2 || !bad.readyAt.After(now.Add(59*time.Minute)) {
		t.Fatalf("bad waits with version %d until %v, want version 2 in an hour", bad.events["t"].ev.Version, bad.readyAt)
	}
}

func TestQueueBatchTakesReadyKeysInArrivalOrder(t *testing.T) {
	q := newQueue()
	now := time.Now()
	for i := range 10 {
		q.add(fmt.Sprintf("k%d", i), "t", pe(fmt.Sprintf("k%d", i), 1, int64(i)), now)
	}
	ws := takeNow(t, q, 4)
	var keys []string
	for _, w := range ws {
		keys = append(keys, w.it.key)
	}
	if fmt.Sprint(keys) != "[k0 k1 k2 k3]" {
		t.Fatalf("first batch %v, want [k0 k1 k2 k3]", keys)
	}
}

func rec(partition int32, offset int64) *kgo.Record {
	return &kgo.Record{Topic: "t", Partition: partition, Offset: offset, LeaderEpoch: 1}
}

func TestTrackerCommitsOnlyBelowTheOldestUnfinished(t *testing.T) {
	tr := newTracker()
	tr.assign(map[string][]int32{"t": {0, 1}})
	var toks []token
	for off := range int64(5) {
		toks = append(toks, tr.add(rec(0, 10+off)))
	}
	other := tr.add(rec(1, 0))
	cases := []struct {
		finish []token
		want   string // commit points that moved
		reason string
	}{
		{[]token{toks[1], toks[2]}, "map[]", "offset 10 unfinished: nothing may be committed"},
		{[]token{toks[0]}, "map[t:map[0:{1 13}]]", "10..12 finished: commit up to 13"},
		{[]token{toks[4]}, "map[]", "13 still unfinished"},
		{[]token{toks[3], other}, "map[t:map[0:{1 15} 1:{1 1}]]", "all finished: commit after the newest"},
	}
	for _, c := range cases {
		if got := fmt.Sprint(tr.finish(c.finish...)); got != c.want {
			t.Fatalf("%s: marks %s, want %s", c.reason, got, c.want)
		}
	}
}

func TestTrackerIgnoresRevokedPartitions(t *testing.T) {
	tr := newTracker()
	tr.assign(map[string][]int32{"t": {0}})
	old := tr.add(rec(0, 5))
	tr.drop(map[string][]int32{"t": {0}})
	late := tr.add(rec(0, 6)) // fetched before the revoke, iterated after
	tr.assign(map[string][]int32{"t": {0}})
	fresh := tr.add(rec(0, 7)) // reassigned, resumes at 7
	if got := fmt.Sprint(tr.finish(old, late)); got != "map[]" {
		t.Fatalf("a token from before the revoke moved the commit point: %s", got)
	}
	if got := fmt.Sprint(tr.finish(fresh)); got != "map[t:map[0:{1 8}]]" {
		t.Fatalf("marks %s, want commit at 8", got)
	}
}

// A replay of the same version after a revoke and reassignment must keep
// the live token: finishing the replay must not let the commit point pass
// the unapplied event.
func TestQueueKeepsTheLiveTokenOfARedeliveredVersion(t *testing.T) {
	tr := newTracker()
	q := newQueue()
	now := time.Now()
	tr.assign(map[string][]int32{"t": {0}})
	stale := tr.add(rec(0, 36))
	q.add("k", "t", pendingEvent{ev: event.Event{Subject: "k", Version: 5}, tok: stale}, now)
	tr.drop(map[string][]int32{"t": {0}})
	tr.assign(map[string][]int32{"t": {0}})
	live := tr.add(rec(0, 36)) // redelivered from the committed offset
	dropped, ok := q.add("k", "t", pendingEvent{ev: event.Event{Subject: "k", Version: 5}, tok: live}, now)
	if !ok || dropped != stale {
		t.Fatalf("dropped %+v, want the stale token", dropped)
	}
	if got := fmt.Sprint(tr.finish(dropped)); got != "map[]" {
		t.Fatalf("finishing the dropped token moved the commit point to %s while version 5 is unapplied", got)
	}
	w := takeNow(t, q, 1)
	if got := fmt.Sprint(tr.finish(w[0].events["t"].tok)); got != "map[t:map[0:{1 37}]]" {
		t.Fatalf("after applying, marks %s, want 37", got)
	}
}

func TestSpreadIsEven(t *testing.T) {
	cases := map[string]struct {
		keys   int
		window time.Duration
	}{
		"fewer keys than steps": {keys: 20, window: 400 * time.Millisecond},
		"many keys per step":    {keys: 5000, window: 400 * time.Millisecond},
	}
	for reason, c := range cases {
		keys := make([]string, c.keys)
		for i := range keys {
			keys[i] = fmt.Sprint(i)
		}
		var mu sync.Mutex
		var at []time.Duration
		start := time.Now()
		if err := spread(t.Context(), keys, c.window, func(string) {
			mu.Lock()
			at = append(at, time.Since(start))
			mu.Unlock()
		}); err != nil {
			t.Fatal(err)
		}
		elapsed := time.Since(start)
		if len(at) != c.keys {
			t.Fatalf("%s: released %d keys, want %d", reason, len(at), c.keys)
		}
		if elapsed < c.window*9/10 || elapsed > c.window*2 {
			t.Fatalf("%s: took %v, want about %v", reason, elapsed, c.window)
		}
		// No quarter of the window carries more than twice its share.
		quarters := make([]int, 4)
		for _, d := range at {
			quarters[min(int(d*4/c.window), 3)]++
		}
		for i, n := range quarters {
			if n > 2*c.keys/4 {
				t.Fatalf("%s: quarter %d released %d of %d keys: %v", reason, i, n, c.keys, quarters)
			}
		}
	}
}

// TestQueueOldestWaitingKey: the age the queue reports is that of the
// work waiting longest for a worker: a key taken stops counting, one that
// failed counts again from when it first waited, and one that succeeded
// leaves it.
func TestQueueOldestWaitingKey(t *testing.T) {
	q := newQueue()
	t0 := time.Now().Add(-10 * time.Minute) // every key ready at once
	if got := q.oldest(t0); got != 0 {
		t.Fatalf("an empty queue's oldest: %v", got)
	}
	q.add("a", "t", pe("a", 1, 0), t0)
	q.add("b", "t", pe("b", 1, 1), t0.Add(time.Minute))
	if got := q.oldest(t0.Add(2 * time.Minute)); got != 2*time.Minute {
		t.Fatalf("oldest of a and b: %v, want a's 2m", got)
	}
	ws := takeNow(t, q, 1) // a runs: b waits longest now
	if ws[0].it.key != "a" {
		t.Fatalf("took %s, want a", ws[0].it.key)
	}
	if got := q.oldest(t0.Add(2 * time.Minute)); got != time.Minute {
		t.Fatalf("oldest while a runs: %v, want b's 1m", got)
	}
	q.retry(ws[0], t0.Add(2*time.Minute), func(int) time.Duration { return time.Hour })
	if got := q.oldest(t0.Add(3 * time.Minute)); got != 3*time.Minute {
		t.Fatalf("oldest after a failed: %v, want a's 3m since it first waited", got)
	}
	ws = takeNow(t, q, 1)
	q.done(ws[0], t0.Add(3*time.Minute)) // b done; a backs off
	q.mu.Lock()
	_, bLeft := q.items["b"]
	q.mu.Unlock()
	if bLeft || q.oldest(t0.Add(4*time.Minute)) != 4*time.Minute {
		t.Fatalf("after b succeeded: b queued %v, oldest %v; want b gone and a's 4m", bLeft, q.oldest(t0.Add(4*time.Minute)))
	}
}
