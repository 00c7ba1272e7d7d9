package host_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mothership-dev/mothership/internal/runtime/event"
	"github.com/mothership-dev/mothership/internal/runtime/reactor"
	"github.com/mothership-dev/mothership/internal/runtime/store"
	"github.com/mothership-dev/mothership/internal/runtime/store/postgres/pgtest"
	"github.com/mothership-dev/mothership/internal/runtime/store/storetest"
)

// hopClock measures one hop: from the commit of the source's transaction
// (the outbox row is committed) to the commit of the sink's reaction.
type hopClock struct {
	mu        sync.Mutex
	committed map[string]time.Time // "key/version" → source commit
	latencies []time.Duration
	reacted   int // changes whose reaction (or a newer one) committed
	done      chan struct{}
	want      int
	newest    map[string]int64 // newest version reacted per key
}

func newHopClock(want int) *hopClock {
	return &hopClock{committed: map[string]time.Time{}, newest: map[string]int64{}, done: make(chan struct{}), want: want}
}

// reset starts a new measurement of want changes, keeping what was reacted.
func (h *hopClock) reset(want int) *hopClock {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.latencies, h.reacted, h.want, h.done = nil, 0, want, make(chan struct{})
	return h
}

func (h *hopClock) sourceCommitted(key string, version int64, at time.Time) {
	h.mu.Lock()
	h.committed[fmt.Sprintf("%s/%d", key, version)] = at
	h.mu.Unlock()
}

func (h *hopClock) afterCommit(applied []event.Event) {
	now := time.Now()
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, ev := range applied {
		prev := h.newest[ev.Subject]
		if ev.Version <= prev {
			continue
		}
		// A coalesced reaction also completes the versions it superseded.
		for v := prev + 1; v <= ev.Version; v++ {
			id := fmt.Sprintf("%s/%d", ev.Subject, v)
			if at, ok := h.committed[id]; ok {
				h.latencies = append(h.latencies, now.Sub(at))
				delete(h.committed, id)
			}
			h.reacted++
		}
		h.newest[ev.Subject] = ev.Version
	}
	if h.reacted >= h.want && h.want > 0 {
		close(h.done)
		h.want = 0
	}
}

func (h *hopClock) percentile(p float64) time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.latencies) == 0 {
		return 0
	}
	s := slices.Clone(h.latencies)
	slices.Sort(s)
	return s[min(int(float64(len(s))*p), len(s)-1)]
}

func startBenchPipeline(b *testing.B, backend string, clock *hopClock) *pipeline {
	dir := b.TempDir()
	return startPipeline(b, b.Context(), startBroker(b, dir), pipelineOpts{backend: backend, dir: dir, reactor: reactor.Config{
		AfterCommit: clock.afterCommit, ResyncInterval: -1,
	}})
}

// write applies change i (key i mod keys) and records its commit time.
func write(b *testing.B, ctx context.Context, p *pipeline, clock *hopClock, i, keys int) {
	key := fmt.Sprintf("k%06d", i%keys)
	r, err := set(ctx, p.source.Store, key, i)
	if err != nil {
		b.Fatalf("write %s: %v", key, err)
	}
	clock.sourceCommitted(key, r.Version, time.Now())
}

// writeBatch applies changes first..first+n-1 in one source transaction.
func writeBatch(b *testing.B, ctx context.Context, p *pipeline, clock *hopClock, first, n, keys int) {
	if err := tryWriteBatch(ctx, p, clock, first, n, keys); err != nil {
		b.Fatal(err)
	}
}

// tryWriteBatch is writeBatch for goroutines other than the benchmark's.
func tryWriteBatch(ctx context.Context, p *pipeline, clock *hopClock, first, n, keys int) error {
	var written []store.Resource
	err := p.source.Store.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		written = written[:0]
		for i := first; i < first+n; i++ {
			r, err := setTx(ctx, tx, fmt.Sprintf("k%06d", i%keys), i)
			if err != nil {
				return err
			}
			written = append(written, r)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("write batch at %d: %w", first, err)
	}
	now := time.Now()
	for _, r := range written {
		clock.sourceCommitted(r.ID, r.Version, now)
	}
	return nil
}

func waitReacted(b *testing.B, clock *hopClock) {
	select {
	case <-clock.done:
	case <-time.After(2 * time.Minute):
		b.Fatalf("reactions incomplete after 2 minutes: %d", clock.reacted)
	}
}

// BenchmarkHop measures one hop of the runtime: an outbox row committed in
// the source service, relayed to Kafka, consumed, and the sink's reaction
// transaction committed (the sink writes its own resource, so its outbox and
// relay run too).
//
//	go test -run '^$' -bench 'BenchmarkHop/sqlite/rate' -benchtime 10000x ./internal/runtime/host/
func BenchmarkHop(b *testing.B) {
	for _, backend := range storetest.Backends {
		b.Run(backend, func(b *testing.B) { benchHop(b, backend) })
	}
}

func benchHop(b *testing.B, backend string) {
	// At 1,000 changes/s, paced (open loop), over 1,000 keys: latency.
	b.Run("rate=1000/s", func(b *testing.B) {
		clock := newHopClock(b.N)
		p := startBenchPipeline(b, backend, clock)
		ctx := b.Context()
		b.ResetTimer()
		start := time.Now()
		for i := range b.N {
			time.Sleep(time.Until(start.Add(time.Duration(i) * time.Millisecond)))
			write(b, ctx, p, clock, i, 1000)
		}
		waitReacted(b, clock)
		b.StopTimer()
		b.ReportMetric(float64(clock.percentile(0.50).Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(clock.percentile(0.99).Microseconds())/1000, "p99-ms")
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "changes/s")
		b.ReportMetric(0, "ns/op")
	})
	// As fast as the source can commit: throughput. The keys exist
	// beforehand (created untimed), so every timed change is an update,
	// as most changes of a running fleet are. One change per source
	// transaction is an API under load; 64 is an upstream reactor applying
	// a deep queue in batches.
	for _, perTx := range []int{1, 64} {
		b.Run(fmt.Sprintf("max/source-tx=%d", perTx), func(b *testing.B) { benchMax(b, backend, perTx, 1) })
	}
	// Eight API requests at a time, one change each: what a loaded API
	// asks of the hop.
	b.Run("max/source-tx=1/writers=8", func(b *testing.B) { benchMax(b, backend, 1, 8) })
}

// benchMax commits b.N changes, perTx per source transaction, from writers
// goroutines at once, as fast as the source commits them.
func benchMax(b *testing.B, backend string, perTx, writers int) {
	const keys = 100_000
	clock := newHopClock(keys)
	p := startBenchPipeline(b, backend, clock)
	ctx := b.Context()
	for i := 0; i < keys; i += 100 {
		writeBatch(b, ctx, p, clock, i, 100, keys)
	}
	waitReacted(b, clock)

	clock = clock.reset(b.N)
	before := p.sink.Reactor.Stats()
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, writers)
	for w := range writers {
		wg.Go(func() {
			// Writer w takes every writers-th batch, so no two writers
			// write the same change.
			for i := w * perTx; i < b.N && errs[w] == nil; i += writers * perTx {
				errs[w] = tryWriteBatch(ctx, p, clock, keys+i, min(perTx, b.N-i), keys)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		b.Fatal(err)
	}
	waitReacted(b, clock)
	elapsed := time.Since(start)
	b.StopTimer()
	s := p.sink.Reactor.Stats()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "changes/s")
	b.ReportMetric(float64(clock.percentile(0.50).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(clock.percentile(0.99).Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(s.Superseded-before.Superseded), "coalesced")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkPgbenchInsert measures what the PostgreSQL server of the hop
// benchmark commits at best: pgbench's single-row INSERT, one per
// transaction, for 10 s, on the same private server, with 2 clients and
// with 8 (run it in the same invocation as BenchmarkHop/postgres to compare
// the two).
//
//	go test -run '^$' -bench 'BenchmarkHop/postgres|BenchmarkPgbenchInsert' -benchtime 1x ./internal/runtime/host/
func BenchmarkPgbenchInsert(b *testing.B) {
	for _, clients := range []int{2, 8} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) { benchPgbench(b, clients) })
	}
}

func benchPgbench(b *testing.B, clients int) {
	srv := pgtest.Shared(b)
	url := srv.NewDatabase(b)
	conn, err := pgx.Connect(b.Context(), url)
	if err != nil {
		b.Fatal(err)
	}
	_, err = conn.Exec(b.Context(), `CREATE TABLE t (k integer NOT NULL, v text NOT NULL)`)
	conn.Close(b.Context())
	if err != nil {
		b.Fatal(err)
	}
	script := filepath.Join(b.TempDir(), "insert.sql")
	if err := os.WriteFile(script, []byte("\\set k random(1, 1000000)\nINSERT INTO t(k, v) VALUES (:k, 'value of a change');\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	args := []string{"-n", "-c", strconv.Itoa(clients), "-j", "2", "-T", "10", "-M", "prepared", "-f", script, url}
	// One 10-second run whatever b.N is: the figure is pgbench's.
	b.Logf("%s %s", srv.Bin("pgbench"), strings.Join(args[:len(args)-1], " "))
	out, err := exec.CommandContext(b.Context(), srv.Bin("pgbench"), args...).CombinedOutput()
	if err != nil {
		b.Fatalf("pgbench: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`tps = ([0-9.]+) \(without initial connection time\)`).FindSubmatch(out)
	if m == nil {
		b.Fatalf("pgbench printed no tps:\n%s", out)
	}
	b.Logf("%s", out)
	tps, _ := strconv.ParseFloat(string(m[1]), 64)
	b.ReportMetric(tps, "inserts/s")
	b.ReportMetric(0, "ns/op")
}
