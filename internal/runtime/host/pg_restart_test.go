package host_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mothership-dev/mothership/internal/runtime/host"
	"github.com/mothership-dev/mothership/internal/runtime/store"
	"github.com/mothership-dev/mothership/internal/runtime/store/postgres/pgtest"
)

// TestPostgresRestartMidStreamLosesNothing restarts the PostgreSQL server
// (immediate stop, as a crash of the server would be, then start) while
// writes stream through the pipeline: the source's pool, the relay's
// replication connection and the sink's pool all break at once. Every
// committed version still reaches Kafka, in order per key, and the sink
// acts on each key's generations in order.
//
// (The relay's own kill -9 on PostgreSQL is TestCrashAnywhereLosesNothing,
// which runs on both backends.)
func TestPostgresRestartMidStreamLosesNothing(t *testing.T) {
	dir := t.TempDir()
	ctx := t.Context()
	kafka := startBroker(t, dir)
	p := startPipeline(t, ctx, kafka, pipelineOpts{backend: "postgres", dir: dir, historyTopic: true})
	srv := pgtest.Shared(t)

	var (
		acked, failed atomic.Int64
		stop          = make(chan struct{})
		wg            sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for n := 0; ; n++ {
			select {
			case <-stop:
				return
			default:
			}
			key := fmt.Sprintf("k%02d", rand.IntN(crashKeys))
			if _, err := set(ctx, p.source.Store, key, n); err != nil {
				// The server is away: an API would answer 503 and the
				// client retry. Whether the commit happened or not, the
				// source's rows say what was committed.
				failed.Add(1)
				time.Sleep(10 * time.Millisecond)
				continue
			}
			acked.Add(1)
		}
	}()
	stopWriting := sync.OnceFunc(func() {
		close(stop)
		wg.Wait()
	})
	defer stopWriting()
	waitAcked := func(n int64) {
		waitFor(t, fmt.Sprintf("%d writes acknowledged", n), time.Minute, func() (bool, string) {
			return acked.Load() >= n, fmt.Sprintf("%d acknowledged, %d failed", acked.Load(), failed.Load())
		})
	}

	waitAcked(300)
	before := acked.Load()
	if err := srv.Restart(); err != nil {
		t.Fatalf("restart PostgreSQL: %v", err)
	}
	t.Logf("PostgreSQL restarted after %d acknowledged writes", before)
	waitAcked(before + 300)
	stopWriting()
	t.Logf("%d writes acknowledged, %d refused while the server was away", acked.Load(), failed.Load())

	waitConverged(t, p, 2*time.Minute)
	total := checkTopicComplete(t, kafka, p.source.Store)

	// The sink acted on each key's source generations in order. A
	// generation may repeat (a reaction whose commit the restart broke is
	// applied again), never go back.
	for key, acts := range p.actions.keys() {
		for i := 1; i < len(acts); i++ {
			if acts[i].SourceGeneration < acts[i-1].SourceGeneration {
				t.Fatalf("%s: the sink acted on source generation %d after %d", key, acts[i].SourceGeneration, acts[i-1].SourceGeneration)
			}
		}
	}
	t.Logf("%d committed versions, all in Kafka in order per key; the sink converged", total)
}

// TestPostgresDroppedSlotLosesNothing: the source commits changes while its
// relay is stopped, and its replication slot is dropped before it starts
// again (anyone with REPLICATION on the server can). Every committed
// version still reaches Kafka in order per key, as on SQLite.
func TestPostgresDroppedSlotLosesNothing(t *testing.T) {
	dir := t.TempDir()
	ctx := t.Context()
	kafka := startBroker(t, dir)
	p := startPipeline(t, ctx, kafka, pipelineOpts{backend: "postgres", dir: dir, historyTopic: true})
	for n := range 50 {
		if _, err := set(ctx, p.source.Store, fmt.Sprintf("k%02d", n%crashKeys), n); err != nil {
			t.Fatal(err)
		}
	}
	waitConverged(t, p, 2*time.Minute)
	if err := p.source.Stop(); err != nil {
		t.Fatal(err)
	}

	// The relay is stopped: these wait in the outbox.
	offline := openStore(t, "postgres", dir, "source")
	for n := 50; n < 250; n++ {
		if _, err := set(ctx, offline, fmt.Sprintf("k%02d", rand.IntN(crashKeys)), n); err != nil {
			t.Fatal(err)
		}
	}
	offline.Close()
	url := pgURL(t, dir, "source")
	su, err := pgx.Connect(ctx, pgtest.Shared(t).URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer su.Close(context.WithoutCancel(ctx))
	slot := "mothership_" + url[strings.LastIndex(url, "/")+1:strings.Index(url, "?")]
	waitFor(t, "slot "+slot+" dropped", 30*time.Second, func() (bool, string) {
		_, err := su.Exec(ctx, `SELECT pg_drop_replication_slot($1)`, slot)
		return err == nil, fmt.Sprint(err)
	})

	p.source, err = host.Start(ctx, p.cfg, host.Service{Name: "source", Layer: 1, Owns: []string{itemKind}})
	if err != nil {
		t.Fatalf("restart the source on a dropped slot: %v", err)
	}
	t.Cleanup(func() { p.source.Stop() })
	// (That the store says it is not ready meanwhile is shown, without a
	// relay racing the check, by TestDroppedSlotLosesNothing in postgres.)
	ready := p.source.Store.(store.ReadyChecker)
	waitConverged(t, p, 2*time.Minute)
	waitFor(t, "ready after the catch-up", time.Minute, func() (bool, string) {
		err := ready.Ready()
		return err == nil, fmt.Sprint(err)
	})
	total := checkTopicComplete(t, kafka, p.source.Store)
	t.Logf("%d committed versions, all in Kafka in order per key after the slot was dropped", total)
}
