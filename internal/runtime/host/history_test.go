package host_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/mothership-dev/mothership/internal/runtime/event"
	"github.com/mothership-dev/mothership/internal/runtime/host"
	"github.com/mothership-dev/mothership/internal/runtime/store"
)

// TestAHistoryConsumerPrefetchesEachBatch: a history consumer (OnEvent)
// is given, in each transaction and before OnEvent, the events that
// transaction applies, so it can read at once what it reads per event;
// every event is applied, and each was prefetched in its own transaction.
func TestAHistoryConsumerPrefetchesEachBatch(t *testing.T) {
	eachBackend(t, func(t *testing.T, backend string) {
		dir := t.TempDir()
		cfg := host.Config{OpenStore: opener(t, backend, dir), Kafka: startBroker(t, dir)}
		var mu sync.Mutex
		prefetchedIn := map[string]store.Tx{} // event id → the transaction that prefetched it
		applied := map[string]bool{}          // subject@version
		var wrong []string
		source, err := host.Start(t.Context(), cfg, host.Service{Name: "source", Layer: 1, Owns: []string{itemKind}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { source.Stop() })
		sink, err := host.Start(t.Context(), cfg, host.Service{Name: "history", Layer: 0, ReactsTo: []string{itemTopic},
			PrefetchEvents: func(_ context.Context, tx store.Tx, evs []store.TopicEvent) error {
				mu.Lock()
				defer mu.Unlock()
				for _, e := range evs {
					prefetchedIn[e.Event.ID] = tx
				}
				return nil
			},
			OnEvent: func(_ context.Context, tx store.Tx, topic string, ev event.Event) error {
				mu.Lock()
				defer mu.Unlock()
				if prefetchedIn[ev.ID] != tx {
					wrong = append(wrong, fmt.Sprintf("%s@%d", ev.Subject, ev.Version))
				}
				applied[fmt.Sprintf("%s@%d", ev.Subject, ev.Version)] = true
				return nil
			}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { sink.Stop() })
		// Written in one transaction each round, so that batches hold many.
		for round := 1; round <= 3; round++ {
			err := source.Store.Update(t.Context(), func(ctx context.Context, tx store.Tx) error {
				for i := range 30 {
					if _, err := setTx(ctx, tx, fmt.Sprintf("item-%02d", i), round); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		waitFor(t, "every event applied", time.Minute, func() (bool, string) {
			mu.Lock()
			defer mu.Unlock()
			return len(applied) == 90, fmt.Sprintf("%d of 90 applied", len(applied))
		})
		mu.Lock()
		defer mu.Unlock()
		if len(wrong) > 0 {
			t.Fatalf("applied without being prefetched in the same transaction: %v", wrong)
		}
	})
}
