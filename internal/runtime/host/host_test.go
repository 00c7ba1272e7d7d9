package host_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mothership-dev/mothership/internal/runtime/broker"
	"github.com/mothership-dev/mothership/internal/runtime/host"
	"github.com/mothership-dev/mothership/internal/runtime/reactor"
	"github.com/mothership-dev/mothership/internal/runtime/store"
)

func TestHopDeliversFullState(t *testing.T) {
	eachBackend(t, func(t *testing.T, backend string) {
		dir := t.TempDir()
		// The sink's reactions read their copies in one statement per
		// batch, before reconciling: every key reconciled was prefetched.
		var mu sync.Mutex
		prefetched := map[string]bool{}
		prefetch := func(ctx context.Context, tx store.Tx, keys []string) error {
			mu.Lock()
			for _, k := range keys {
				prefetched[k] = true
			}
			mu.Unlock()
			return host.PrefetchByKey(copyKind)(ctx, tx, keys)
		}
		p := startPipeline(t, t.Context(), startBroker(t, dir), pipelineOpts{backend: backend, dir: dir, prefetch: prefetch})
		for i := range 20 {
			mustSet(t, p.source.Store, fmt.Sprintf("item-%02d", i), i)
		}
		mustSet(t, p.source.Store, "item-00", 100)
		waitConverged(t, p, time.Minute)
		if got := p.actions.of("item-00"); got[len(got)-1].N != 100 {
			t.Fatalf("item-00 copies %+v: want the last one to carry n=100", got)
		}
		mu.Lock()
		defer mu.Unlock()
		for key := range p.actions.keys() {
			if !prefetched[key] {
				t.Errorf("%s was reconciled but never prefetched", key)
			}
		}
	})
}

func TestReplayedEventChangesNothing(t *testing.T) {
	eachBackend(t, func(t *testing.T, backend string) {
		dir := t.TempDir()
		kafka := startBroker(t, dir)
		p := startPipeline(t, t.Context(), kafka, pipelineOpts{backend: backend, dir: dir, reactor: reactor.Config{ResyncInterval: -1}})
		mustSet(t, p.source.Store, "k", 1)
		mustSet(t, p.source.Store, "k", 2)
		waitConverged(t, p, time.Minute)
		// The sink has the newest state; on a loaded machine its
		// reactor may still be finishing the reconcile of an event it
		// received before. Wait until it is still.
		stats := p.sink.Reactor.Stats()
		waitFor(t, "the sink's reactor still", time.Minute, func() (bool, string) {
			time.Sleep(300 * time.Millisecond)
			now := p.sink.Reactor.Stats()
			still := now == stats
			stats = now
			return still, fmt.Sprintf("stats %+v", now)
		})
		before := p.actions.of("k")

		// Replay both events exactly as the relay produced them.
		for _, rec := range readTopic(t, kafka, itemTopic) {
			produceRaw(t, kafka, itemTopic, string(rec.Key), rec.Value)
		}
		waitFor(t, "replays consumed", time.Minute, func() (bool, string) {
			s := p.sink.Reactor.Stats()
			done := s.Received >= stats.Received+2 && s.Duplicates+s.Superseded >= stats.Duplicates+stats.Superseded+2
			return done, fmt.Sprintf("stats %+v, before %+v", s, stats)
		})
		if after := p.actions.of("k"); fmt.Sprint(after) != fmt.Sprint(before) {
			t.Fatalf("replayed events were acted on: actions %v, before %v", after, before)
		}
		if s := p.sink.Reactor.Stats(); s.Reconciled != stats.Reconciled {
			t.Fatalf("replayed events reconciled %d more times, want 0", s.Reconciled-stats.Reconciled)
		}
	})
}

func TestFailingKeyBacksOffWhileOthersFlow(t *testing.T) {
	eachBackend(t, func(t *testing.T, backend string) {
		dir := t.TempDir()
		var failing atomic.Bool
		failing.Store(true)
		var badAttempts atomic.Int64
		hook := func(_ context.Context, key string) error {
			if key == "bad" && failing.Load() {
				badAttempts.Add(1)
				return errors.New("cloud answered 429")
			}
			return nil
		}
		// The sink shows why a key waits: a status with the reason, written
		// in a transaction of its own while the reconcile's rolls back.
		onFailure := func(ctx context.Context, tx store.Tx, key string, err error) error {
			if _, err := tx.ResourceGet(ctx, copyKind, key); errors.Is(err, store.ErrNotFound) {
				if _, err := tx.ResourceCreate(ctx, store.CreateParams{Kind: copyKind, ID: key, Spec: json.RawMessage(`{}`)}); err != nil {
					return err
				}
			}
			_, serr := tx.ResourceSetStatus(ctx, copyKind, key, store.Status{Phase: "PROVISIONING", Reason: "CloudRateLimited", Message: err.Error()})
			return serr
		}
		p := startPipeline(t, t.Context(), startBroker(t, dir), pipelineOpts{backend: backend, dir: dir, hook: hook, onFailure: onFailure, reactor: reactor.Config{
			BackoffBase: 50 * time.Millisecond, BackoffMax: 400 * time.Millisecond, ResyncInterval: -1,
		}})
		mustSet(t, p.source.Store, "bad", 1)
		waitFor(t, "bad key failing", time.Minute, func() (bool, string) { return badAttempts.Load() > 0, "no attempt yet" })
		waitFor(t, "failure reason in status", time.Minute, func() (bool, string) {
			var st store.Status
			p.sink.Store.View(t.Context(), func(ctx context.Context, tx store.Tx) error {
				r, err := tx.ResourceGet(ctx, copyKind, "bad")
				st = r.Status
				return err
			})
			return st.Reason == "CloudRateLimited" && strings.Contains(st.Message, "429"), fmt.Sprintf("status %+v", st)
		})

		start := time.Now()
		for i := range 50 {
			mustSet(t, p.source.Store, fmt.Sprintf("good-%02d", i), i)
		}
		waitFor(t, "good keys converged while bad fails", time.Minute, func() (bool, string) {
			for i := range 50 {
				if len(p.actions.of(fmt.Sprintf("good-%02d", i))) == 0 {
					return false, fmt.Sprintf("good-%02d not copied", i)
				}
			}
			return true, ""
		})
		if n := len(p.actions.of("bad")); n != 0 {
			t.Fatalf("bad key acted on %d times while failing", n)
		}

		// Backoff, not a hot loop: attempts grow about logarithmically.
		time.Sleep(time.Until(start.Add(1500 * time.Millisecond)))
		if n := badAttempts.Load(); n < 3 || n > 15 {
			t.Fatalf("bad key attempted %d times in about 1.5s with 50ms..400ms backoff, want 3..15", n)
		}
		failing.Store(false)
		waitConverged(t, p, time.Minute)
	})
}

func TestCoalescingActsOnNewestOnly(t *testing.T) {
	eachBackend(t, func(t *testing.T, backend string) {
		dir := t.TempDir()
		entered := make(chan struct{})
		release := make(chan struct{})
		var once sync.Once
		hook := func(ctx context.Context, key string) error {
			if key != "blocker" {
				return nil
			}
			once.Do(func() { close(entered) })
			select {
			case <-release:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		// One worker, one key per transaction: while it is held by the
		// blocker, everything else can only wait in the queue.
		p := startPipeline(t, t.Context(), startBroker(t, dir), pipelineOpts{backend: backend, dir: dir, hook: hook, reactor: reactor.Config{
			Workers: 1, MaxBatch: 1, ResyncInterval: -1,
		}})
		mustSet(t, p.source.Store, "blocker", 1)
		<-entered
		for _, cku := range []int{2, 4, 2, 6} {
			mustSet(t, p.source.Store, "lkc", cku)
		}
		waitFor(t, "all four changes consumed while the worker is held", time.Minute, func() (bool, string) {
			s := p.sink.Reactor.Stats()
			return s.Received >= 5, fmt.Sprintf("received %d", s.Received)
		})
		close(release)
		waitConverged(t, p, time.Minute)
		got := p.actions.of("lkc")
		if len(got) != 1 || got[0].N != 6 || got[0].SourceGeneration != 4 {
			t.Fatalf("reactor acted on %+v, want only {generation 4, n 6}: superseded values must never be acted on", got)
		}
		if s := p.sink.Reactor.Stats(); s.Superseded < 3 {
			t.Fatalf("superseded %d events, want 3 (2, 4 and 2 replaced by 6)", s.Superseded)
		}
	})
}

func TestRelayRestartLosesNothingAndActsOnceInOrder(t *testing.T) {
	eachBackend(t, func(t *testing.T, backend string) {
		dir := t.TempDir()
		kafka := startBroker(t, dir)
		p := startPipeline(t, t.Context(), kafka, pipelineOpts{backend: backend, dir: dir, historyTopic: true})
		const keys, rounds = 20, 40
		ctx := t.Context()
		var wg sync.WaitGroup
		wg.Go(func() {
			for n := range rounds {
				for k := range keys {
					if _, err := set(ctx, p.source.Store, fmt.Sprintf("k%02d", k), n); err != nil {
						t.Errorf("set: %v", err)
						return
					}
				}
			}
		})
		// Restart the relay repeatedly while the writes stream in.
		for range 5 {
			time.Sleep(30 * time.Millisecond)
			if err := p.source.Relay.Stop(); err != nil {
				t.Fatalf("stop relay: %v", err)
			}
			if err := p.source.Relay.Start(ctx); err != nil {
				t.Fatalf("restart relay: %v", err)
			}
		}
		wg.Wait()
		waitConverged(t, p, time.Minute)
		for key, acts := range p.actions.keys() {
			for i := 1; i < len(acts); i++ {
				if acts[i].SourceGeneration <= acts[i-1].SourceGeneration {
					t.Fatalf("%s acted on generation %d after %d: a duplicate or out-of-order event was acted on (all: %+v)",
						key, acts[i].SourceGeneration, acts[i-1].SourceGeneration, acts)
				}
			}
			if last := acts[len(acts)-1]; last.SourceGeneration != rounds || last.N != rounds-1 {
				t.Fatalf("%s last acted on %+v, want generation %d", key, last, rounds)
			}
		}
		checkTopicComplete(t, kafka, p.source.Store)
	})
}

// readTopic reads every record of topic from the start.
func readTopic(t testing.TB, kafka []kgo.Opt, topic string) []*kgo.Record {
	t.Helper()
	adm, err := kgo.NewClient(kafka...)
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	ends := endOffsets(t, adm, topic)
	cl, err := kgo.NewClient(append(kafka, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var out []*kgo.Record
	pos := map[int32]int64{}
	reached := func() bool {
		for p, end := range ends {
			if pos[p] < end {
				return false
			}
		}
		return true
	}
	for !reached() {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %s: %v (at %v of %v)", topic, ctx.Err(), pos, ends)
		}
		fs.EachRecord(func(r *kgo.Record) {
			out = append(out, r)
			pos[r.Partition] = r.Offset + 1
		})
	}
	return out
}

// TestResyncHealsDriftPeriodicallyAndOnStart: a reaction lost while
// running, and one lost while the service was stopped, are healed by the
// periodic resync, which begins at the start; a cold start itself
// reconciles only what is pending (see TestAColdStartRetriesTheFailingKeys).
func TestResyncHealsDriftPeriodicallyAndOnStart(t *testing.T) {
	eachBackend(t, func(t *testing.T, backend string) {
		dir := t.TempDir()
		kafka := startBroker(t, dir)
		p := startPipeline(t, t.Context(), kafka, pipelineOpts{backend: backend, dir: dir, reactor: reactor.Config{
			ResyncInterval: 300 * time.Millisecond, StartResyncWindow: 100 * time.Millisecond,
		}})
		for _, k := range []string{"a", "b", "c"} {
			mustSet(t, p.source.Store, k, 1)
		}
		waitConverged(t, p, time.Minute)

		// Drift while running: the sink's copy of b loses its last write, as
		// if a reaction had been lost. No new event comes; the periodic
		// resync must find and repair it.
		corruptCopy(t, p.sink.Store, "b")
		waitConverged(t, p, time.Minute)

		// Drift while stopped: no event is pending for c, so the start
		// does not reconcile it; the periodic resync that begins with the
		// start does.
		if err := p.sink.Stop(); err != nil {
			t.Fatal(err)
		}
		st := openStore(t, backend, dir, "sink")
		corruptCopy(t, st, "c")
		st.Close()
		restarted, err := host.Start(t.Context(), p.cfg, host.Service{
			Name: "sink", Owns: []string{copyKind}, ReactsTo: []string{itemTopic},
			Reconcile: copyReconciler(p.actions, nil),
			Reactor:   reactor.Config{ResyncInterval: 300 * time.Millisecond, StartResyncWindow: 100 * time.Millisecond},
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { restarted.Stop() })
		p.sink = restarted
		// Settled says when the start has caught up (nothing was pending):
		// a cold start is timed with it.
		waitFor(t, "the restarted sink to settle", time.Minute, func() (bool, string) {
			return restarted.Reactor.Settled(), "not settled"
		})
		waitConverged(t, p, time.Minute)
	})
}

// TestAColdStartRetriesTheFailingKeys: a key failing when the service
// stops is retried as soon as it starts again, with the periodic resync
// off and no new event for it; the keys that were fine are not
// reconciled again.
func TestAColdStartRetriesTheFailingKeys(t *testing.T) {
	eachBackend(t, func(t *testing.T, backend string) {
		dir := t.TempDir()
		var failing atomic.Bool
		failing.Store(true)
		hook := func(_ context.Context, key string) error {
			if key == "bad" && failing.Load() {
				return reactor.Waiting(errors.New("the cloud operation still runs"))
			}
			return nil
		}
		p := startPipeline(t, t.Context(), startBroker(t, dir), pipelineOpts{backend: backend, dir: dir, hook: hook, reactor: reactor.Config{
			BackoffBase: 50 * time.Millisecond, BackoffMax: 100 * time.Millisecond, ResyncInterval: -1, StartResyncWindow: 100 * time.Millisecond,
		}})
		mustSet(t, p.source.Store, "good", 1)
		mustSet(t, p.source.Store, "bad", 1)
		// Two failures: the first one's record (its event applied, the key
		// kept as failing) has committed.
		waitFor(t, "good copied while bad waits", time.Minute, func() (bool, string) {
			return len(p.actions.of("good")) >= 1 && p.sink.Reactor.Stats().Failures >= 2, fmt.Sprintf("%d failures, good acted on %d times", p.sink.Reactor.Stats().Failures, len(p.actions.of("good")))
		})
		if err := p.sink.Stop(); err != nil {
			t.Fatal(err)
		}
		failing.Store(false)
		restarted, err := host.Start(t.Context(), p.cfg, host.Service{
			Name: "sink", Owns: []string{copyKind}, ReactsTo: []string{itemTopic},
			Reconcile: copyReconciler(p.actions, hook),
			Reactor:   reactor.Config{ResyncInterval: -1, StartResyncWindow: 100 * time.Millisecond},
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { restarted.Stop() })
		p.sink = restarted
		waitConverged(t, p, time.Minute)
		waitFor(t, "the restarted sink to settle", time.Minute, func() (bool, string) {
			return restarted.Reactor.Settled(), "not settled"
		})
		if st := restarted.Reactor.Stats(); st.Resyncs != 1 {
			t.Fatalf("the start reconciled %d keys, want the one that was failing", st.Resyncs)
		}
	})
}

// corruptCopy overwrites the sink's copy of key with a stale one.
func corruptCopy(t *testing.T, sink store.Store, key string) {
	t.Helper()
	err := sink.Update(t.Context(), func(ctx context.Context, tx store.Tx) error {
		_, err := tx.ResourceUpdateSpec(ctx, store.UpdateSpecParams{Kind: copyKind, ID: key, Spec: json.RawMessage(`{"source_generation":0,"n":-1}`)})
		return err
	})
	if err != nil {
		t.Fatalf("corrupt copy of %s: %v", key, err)
	}
}

func TestBrokerRestartLosesNothing(t *testing.T) {
	eachBackend(t, func(t *testing.T, backend string) {
		dir := t.TempDir()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		startAt := func() *broker.Embedded {
			b, err := broker.Start(broker.Config{DataDir: filepath.Join(dir, "broker"), Listen: addr})
			if err != nil {
				t.Fatalf("start broker on %s: %v", addr, err)
			}
			return b
		}
		b := startAt()
		kafka := []kgo.Opt{kgo.SeedBrokers(addr)}
		p := startPipeline(t, t.Context(), kafka, pipelineOpts{backend: backend, dir: dir, historyTopic: true})

		ctx, stop := context.WithCancel(t.Context())
		var wg sync.WaitGroup
		wg.Go(func() {
			for n := 0; ctx.Err() == nil; n++ {
				if _, err := set(ctx, p.source.Store, fmt.Sprintf("k%d", n%10), n); err != nil && ctx.Err() == nil {
					t.Errorf("set: %v", err)
					return
				}
				time.Sleep(time.Millisecond)
			}
		})
		time.Sleep(300 * time.Millisecond)
		b.Close() // the broker goes away mid-stream; writes go on
		time.Sleep(700 * time.Millisecond)
		b = startAt()
		defer b.Close()
		time.Sleep(300 * time.Millisecond)
		stop()
		wg.Wait()

		waitConverged(t, p, time.Minute)
		n := checkTopicComplete(t, kafka, p.source.Store)
		t.Logf("%d committed versions reached Kafka in order across a broker restart", n)
	})
}

func TestReactorRestartLeavesNoKeyBehind(t *testing.T) {
	eachBackend(t, func(t *testing.T, backend string) {
		dir := t.TempDir()
		p := startPipeline(t, t.Context(), startBroker(t, dir), pipelineOpts{backend: backend, dir: dir, reactor: reactor.Config{ResyncInterval: -1}})
		ctx := t.Context()
		var wg sync.WaitGroup
		wg.Go(func() {
			for n := range 30 {
				for k := range 20 {
					if _, err := set(ctx, p.source.Store, fmt.Sprintf("k%02d", k), n); err != nil {
						t.Errorf("set: %v", err)
						return
					}
				}
			}
		})
		// Stop and start the sink's reactor while events stream in: keys
		// caught running by a stop must run again after the start.
		for range 5 {
			time.Sleep(20 * time.Millisecond)
			if err := p.sink.Reactor.Stop(); err != nil {
				t.Fatalf("stop reactor: %v", err)
			}
			if err := p.sink.Reactor.Start(ctx); err != nil {
				t.Fatalf("restart reactor: %v", err)
			}
		}
		wg.Wait()
		waitConverged(t, p, time.Minute)
	})
}

// A service writes only the kinds it declares: the source cannot write the
// sink's copies, and nothing of the attempt reaches its outbox.
func TestServiceWritesOnlyItsOwnKinds(t *testing.T) {
	eachBackend(t, func(t *testing.T, backend string) {
		dir := t.TempDir()
		p := startPipeline(t, t.Context(), startBroker(t, dir), pipelineOpts{backend: backend, dir: dir})
		err := p.source.Store.Update(t.Context(), func(ctx context.Context, tx store.Tx) error {
			_, err := tx.ResourceCreate(ctx, store.CreateParams{Kind: copyKind, ID: "forged", Spec: json.RawMessage(`{}`)})
			return err
		})
		if !errors.Is(err, store.ErrNotOwned) {
			t.Fatalf("source wrote a copy: %v, want ErrNotOwned", err)
		}
		mustSet(t, p.source.Store, "real", 1)
		waitConverged(t, p, time.Minute)
		if got := listAll(t, p.sink.Store, copyKind); len(got) != 1 || got[0].ID != "real" {
			t.Fatalf("sink copies %v, want only the copy of real", got)
		}
	})
}

// retryLater is an error that says when to come back, like a cloud's 429.
type retryLater struct{ after time.Duration }

func (e retryLater) Error() string             { return "rate limited" }
func (e retryLater) RetryAfter() time.Duration { return e.after }

// TestRetryAfterIsHonoured: an error that carries Retry-After delays the
// next attempt at least that long, however short the backoff would be.
func TestRetryAfterIsHonoured(t *testing.T) {
	dir := t.TempDir()
	var mu sync.Mutex
	var attempts []time.Time
	hook := func(_ context.Context, key string) error {
		mu.Lock()
		defer mu.Unlock()
		attempts = append(attempts, time.Now())
		if len(attempts) < 3 {
			return retryLater{after: 300 * time.Millisecond}
		}
		return nil
	}
	p := startPipeline(t, t.Context(), startBroker(t, dir), pipelineOpts{backend: "sqlite", dir: dir, hook: hook, reactor: reactor.Config{
		BackoffBase: time.Millisecond, BackoffMax: 5 * time.Millisecond, ResyncInterval: -1,
	}})
	mustSet(t, p.source.Store, "k", 1)
	waitConverged(t, p, time.Minute)
	mu.Lock()
	defer mu.Unlock()
	for i := 1; i < len(attempts); i++ {
		if gap := attempts[i].Sub(attempts[i-1]); gap < 300*time.Millisecond {
			t.Fatalf("attempt %d came %s after the one that asked for 300ms", i+1, gap)
		}
	}
}
