package store

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/mothership-dev/mothership/internal/runtime/event"
)

// readCounter is a backend's Rows that counts the reads that reach it.
// Only the methods the test calls are given; the others are nil.
type readCounter struct {
	Rows
	reads    int
	observed map[string][]byte
	index    map[string]string
}

func (r *readCounter) GetObserved(_ context.Context, _, subject string) ([]byte, error) {
	r.reads++
	if v, ok := r.observed[subject]; ok {
		return v, nil
	}
	return nil, ErrNotFound
}

func (r *readCounter) GetObservedMany(_ context.Context, _ string, subjects []string) (map[string][]byte, error) {
	r.reads++
	out := map[string][]byte{}
	for _, s := range subjects {
		if v, ok := r.observed[s]; ok {
			out[s] = v
		}
	}
	return out, nil
}

func (r *readCounter) ObservedSubjects(context.Context, string) ([]string, error) {
	r.reads++
	return []string{"lkc-1"}, nil
}

func (r *readCounter) GetIndex(_ context.Context, _, key string) (string, error) {
	r.reads++
	if v, ok := r.index[key]; ok {
		return v, nil
	}
	return "", ErrNotFound
}

func (r *readCounter) GetIndexes(_ context.Context, _ string, keys []string) (map[string]string, error) {
	r.reads++
	out := map[string]string{}
	for _, k := range keys {
		if v, ok := r.index[k]; ok {
			out[k] = v
		}
	}
	return out, nil
}

// TestReadsAtOnceNeedNoStatementAfter: after a prefetch (of events, of
// index entries) the reads of the same rows, found or not, and a second
// read of an event or of a topic's subjects, reach the backend no more.
func TestReadsAtOnceNeedNoStatementAfter(t *testing.T) {
	ev := event.New("kafka", "lkc", event.Desired, "lkc-1", 1, 1, time.Now(), json.RawMessage(`{}`))
	value, err := ev.Encode()
	if err != nil {
		t.Fatal(err)
	}
	rows := &readCounter{observed: map[string][]byte{"lkc-1": value}, index: map[string]string{"lkc-1": "pkc-1"}}
	tx := NewTx(rows, TxConfig{Service: "pkc", ReadOnly: true})
	ctx := t.Context()
	const topic = "mothership.lkc.desired"
	if err := tx.ObservedPrefetch(ctx, topic, []string{"lkc-1", "lkc-2"}); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.IndexGetMany(ctx, "tenant", []string{"lkc-1", "lkc-2"}); err != nil {
		t.Fatal(err)
	}
	if rows.reads != 2 {
		t.Fatalf("two reads at once reached the backend %d times", rows.reads)
	}
	for range 2 {
		if _, err := tx.ObservedGet(ctx, topic, "lkc-1"); err != nil {
			t.Fatal(err)
		}
		if _, err := tx.ObservedGet(ctx, topic, "lkc-2"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("observed lkc-2: %v, want ErrNotFound", err)
		}
		if v, err := tx.IndexGet(ctx, "tenant", "lkc-1"); err != nil || v != "pkc-1" {
			t.Fatalf("index lkc-1: %q, %v", v, err)
		}
		if _, err := tx.IndexGet(ctx, "tenant", "lkc-2"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("index lkc-2: %v, want ErrNotFound", err)
		}
	}
	if rows.reads != 2 {
		t.Fatalf("reads of prefetched rows reached the backend: %d reads in all, want 2", rows.reads)
	}
	// Read one by one, each row once.
	for range 2 {
		if _, err := tx.ObservedGet(ctx, "mothership.pkc.status", "lkc-1"); err != nil {
			t.Fatal(err)
		}
		if _, err := tx.ObservedSubjects(ctx, topic); err != nil {
			t.Fatal(err)
		}
	}
	if rows.reads != 4 {
		t.Fatalf("an event and a topic's subjects read twice reached the backend %d times, want 2", rows.reads-2)
	}
}
