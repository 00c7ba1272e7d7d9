package host_test

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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
