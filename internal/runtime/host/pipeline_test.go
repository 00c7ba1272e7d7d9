package host_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mothership-dev/mothership/internal/runtime/broker"
	"github.com/mothership-dev/mothership/internal/runtime/host"
	"github.com/mothership-dev/mothership/internal/runtime/reactor"
	"github.com/mothership-dev/mothership/internal/runtime/store"
)

// The test pipeline is two services: "source" owns items, "sink" reacts to
// their desired events by keeping a copy of each (kind "copy"). One hop of
// the runtime is the path between them.
const (
	itemKind  = "item"
	copyKind  = "copy"
	itemTopic = "mothership.item.desired"
)

// itemSpec is the spec of an item; copySpec is what the sink writes for it.
type itemSpec struct {
	N int `json:"n"`
}

type copySpec struct {
	SourceGeneration int64 `json:"source_generation"`
	N                int   `json:"n"`
}

// actions logs what the sink's reconcile acted on, per key: the source
// generations for which it changed its copy.
type actions struct {
	mu   sync.Mutex
	byID map[string][]copySpec
}

func (a *actions) record(key string, c copySpec) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.byID == nil {
		a.byID = map[string][]copySpec{}
	}
	a.byID[key] = append(a.byID[key], c)
}

func (a *actions) of(key string) []copySpec {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]copySpec(nil), a.byID[key]...)
}

func (a *actions) keys() map[string][]copySpec {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := map[string][]copySpec{}
	for k, v := range a.byID {
		out[k] = append([]copySpec(nil), v...)
	}
	return out
}

// copyReconciler makes the sink's copy of key match the newest observed
// item: level-triggered, it reads the latest state and writes only a
// difference. hook, if set, runs first and may fail or block.
func copyReconciler(log *actions, hook func(ctx context.Context, key string) error) reactor.ReconcileFunc {
	return func(ctx context.Context, tx store.Tx, key string) error {
		if hook != nil {
			if err := hook(ctx, key); err != nil {
				return err
			}
		}
		ev, err := tx.ObservedGet(ctx, itemTopic, key)
		if err != nil {
			return err
		}
		var item store.Resource
		if err := json.Unmarshal(ev.Data, &item); err != nil {
			return err
		}
		if item.Deleted() {
			if _, err := tx.ResourceDelete(ctx, copyKind, key); err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
			return nil
		}
		var spec itemSpec
		if err := json.Unmarshal(item.Spec, &spec); err != nil {
			return err
		}
		want := copySpec{SourceGeneration: item.Generation, N: spec.N}
		body, _ := json.Marshal(want)
		cur, err := tx.ResourceGet(ctx, copyKind, key)
		switch {
		case errors.Is(err, store.ErrNotFound):
			if _, err := tx.ResourceCreate(ctx, store.CreateParams{Kind: copyKind, ID: key, Spec: body}); err != nil {
				return err
			}
		case err != nil:
			return err
		default:
			next, err := tx.ResourceUpdateSpec(ctx, store.UpdateSpecParams{Kind: copyKind, ID: key, Spec: body})
			if err != nil {
				return err
			}
			if next.Generation == cur.Generation {
				return nil // already there: nothing acted on
			}
		}
		log.record(key, want)
		return nil
	}
}

// pipeline is a running source → sink hop on one broker.
type pipeline struct {
	kafka   []kgo.Opt
	source  *host.Running
	sink    *host.Running
	actions *actions
	cfg     host.Config
}

type pipelineOpts struct {
	dir       string
	hook      func(ctx context.Context, key string) error
	onFailure reactor.FailureFunc
	reactor   reactor.Config
	// prefetch replaces the sink's Prefetch (host.PrefetchByKey).
	prefetch func(ctx context.Context, tx store.Tx, keys []string) error
	// historyTopic creates the item and copy topics without compaction,
	// so a test can read every record ever produced.
	historyTopic bool
	// backend is the store backend: "sqlite" (the default) or "postgres".
	backend string
}

// startBroker starts an embedded broker on dir and returns client options.
func startBroker(tb testing.TB, dir string) []kgo.Opt {
	tb.Helper()
	b, err := broker.Start(broker.Config{DataDir: filepath.Join(dir, "broker")})
	if err != nil {
		tb.Fatalf("start broker: %v", err)
	}
	tb.Cleanup(b.Close)
	return []kgo.Opt{kgo.SeedBrokers(b.Addrs()...)}
}

func startPipeline(tb testing.TB, ctx context.Context, kafka []kgo.Opt, o pipelineOpts) *pipeline {
	tb.Helper()
	p := &pipeline{kafka: kafka, actions: &actions{}}
	p.cfg = host.Config{OpenStore: opener(tb, o.backend, o.dir), Kafka: kafka}
	if o.historyTopic {
		cl, err := kgo.NewClient(kafka...)
		if err != nil {
			tb.Fatal(err)
		}
		err = broker.EnsureTopics(ctx, cl,
			broker.Topic{Name: itemTopic, Partitions: broker.DefaultPartitions},
			broker.Topic{Name: "mothership.copy.desired", Partitions: broker.DefaultPartitions})
		cl.Close()
		if err != nil {
			tb.Fatal(err)
		}
	}
	prefetch := o.prefetch
	if prefetch == nil {
		prefetch = host.PrefetchByKey(copyKind) // each key's reconcile reads its copy
	}
	var err error
	p.source, err = host.Start(ctx, p.cfg, host.Service{Name: "source", Layer: 1, Owns: []string{itemKind}})
	if err != nil {
		tb.Fatalf("start source: %v", err)
	}
	tb.Cleanup(func() { p.source.Stop() })
	p.sink, err = host.Start(ctx, p.cfg, host.Service{
		Name: "sink", Layer: 0, Owns: []string{copyKind}, ReactsTo: []string{itemTopic},
		Reconcile: copyReconciler(p.actions, o.hook), OnFailure: o.onFailure, Reactor: o.reactor,
		// Each key's reconcile reads its copy: a batch reads them at once.
		Prefetch: prefetch,
	})
	if err != nil {
		tb.Fatalf("start sink: %v", err)
	}
	tb.Cleanup(func() { p.sink.Stop() })
	return p
}

// set writes item key's spec to n: a create the first time, then an update.
func set(ctx context.Context, s store.Store, key string, n int) (store.Resource, error) {
	var r store.Resource
	err := s.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		var err error
		r, err = setTx(ctx, tx, key, n)
		return err
	})
	return r, err
}

func setTx(ctx context.Context, tx store.Tx, key string, n int) (store.Resource, error) {
	body, _ := json.Marshal(itemSpec{N: n})
	r, err := tx.ResourceUpdateSpec(ctx, store.UpdateSpecParams{Kind: itemKind, ID: key, Spec: body})
	if errors.Is(err, store.ErrNotFound) {
		r, err = tx.ResourceCreate(ctx, store.CreateParams{Kind: itemKind, ID: key, Spec: body})
	}
	return r, err
}

func mustSet(t testing.TB, s store.Store, key string, n int) store.Resource {
	t.Helper()
	r, err := set(t.Context(), s, key, n)
	if err != nil {
		t.Fatalf("set %s to %d: %v", key, n, err)
	}
	return r
}

// converged reports whether every live item has a copy at its generation.
func converged(ctx context.Context, source, sink store.Store) (bool, string, error) {
	var items []store.Resource
	err := source.View(ctx, func(ctx context.Context, tx store.Tx) error {
		var err error
		items, err = tx.ResourceList(ctx, store.ListParams{Kind: itemKind})
		return err
	})
	if err != nil {
		return false, "", err
	}
	var lagging string
	err = sink.View(ctx, func(ctx context.Context, tx store.Tx) error {
		for _, it := range items {
			c, err := tx.ResourceGet(ctx, copyKind, it.ID)
			if errors.Is(err, store.ErrNotFound) {
				lagging = fmt.Sprintf("%s has no copy (source generation %d)", it.ID, it.Generation)
				return nil
			}
			if err != nil {
				return err
			}
			var cs copySpec
			if err := json.Unmarshal(c.Spec, &cs); err != nil {
				return err
			}
			if cs.SourceGeneration != it.Generation {
				lagging = fmt.Sprintf("%s copy at source generation %d, source at %d", it.ID, cs.SourceGeneration, it.Generation)
				return nil
			}
		}
		return nil
	})
	return lagging == "" && err == nil, lagging, err
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, within time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(within)
	var why string
	for time.Now().Before(deadline) {
		var ok bool
		if ok, why = cond(); ok {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s: not reached within %v: %s", what, within, why)
}

func waitConverged(t testing.TB, p *pipeline, within time.Duration) {
	t.Helper()
	waitFor(t, "sink converged on source", within, func() (bool, string) {
		ok, why, err := converged(t.Context(), p.source.Store, p.sink.Store)
		if err != nil {
			t.Fatalf("check convergence: %v", err)
		}
		return ok, why
	})
}

// produceRaw writes a record to topic as if a relay had, for replay tests.
func produceRaw(t testing.TB, kafka []kgo.Opt, topic, key string, value []byte) {
	t.Helper()
	cl, err := kgo.NewClient(kafka...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(t.Context(), &kgo.Record{Topic: topic, Key: []byte(key), Value: value}).FirstErr(); err != nil {
		t.Fatalf("produce to %s: %v", topic, err)
	}
}

// endOffsets returns the end offset of every partition of topic.
func endOffsets(t testing.TB, cl *kgo.Client, topic string) map[int32]int64 {
	t.Helper()
	ends, err := kadm.NewClient(cl).ListEndOffsets(t.Context(), topic)
	if err != nil {
		t.Fatalf("end offsets of %s: %v", topic, err)
	}
	out := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			t.Fatalf("end offset of %s/%d: %v", topic, o.Partition, o.Err)
		}
		out[o.Partition] = o.Offset
	})
	return out
}
