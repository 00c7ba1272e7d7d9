// Package storetest is the conformance suite of store.Store: every backend
// runs it, so a service behaves the same on SQLite and on PostgreSQL.
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mothership-dev/mothership/internal/runtime/event"
	"github.com/mothership-dev/mothership/internal/runtime/store"
)

// Opener opens the store under test. Called twice with the same dir, it
// must reopen the same database (for restart cases).
type Opener func(t *testing.T, dir string) store.Store

// Run runs the whole suite against the backend that open returns.
func Run(t *testing.T, open Opener) {
	cases := map[string]func(t *testing.T, open Opener){
		"CreateEmitsFullState":         testCreate,
		"CreateTwiceConflicts":         testCreateTwice,
		"UpdateSpecBumpsGeneration":    testUpdateSpec,
		"UpdateIfGeneration":           testIfGeneration,
		"SetStatus":                    testSetStatus,
		"DeleteKeepsRowAndAnnounces":   testDelete,
		"PurgeRemovesRowSilently":      testPurge,
		"RollbackWritesNothing":        testRollback,
		"InvalidInputNeverStored":      testInvalid,
		"ViewIsReadOnly":               testReadOnly,
		"ListFiltersAndPages":          testList,
		"ObservedKeepsNewest":          testObserved,
		"GetOrCreateSerializes":        testGetOrCreate,
		"PrefetchServesAndLocks":       testPrefetch,
		"PrefetchedReadsStayCurrent":   testPrefetchedReads,
		"FeedResumesAfterConfirm":      testFeedResume,
		"FeedRewindReturnsUnconfirmed": testFeedRewind,
		"FeedKeepsWriteOrderInTx":      testFeedOrderInTx,
		"PendingAndStuck":              testPendingAndStuck,
		"RetainRestorePurge":           testRetention,
	}
	maps.Copy(cases, indexCases)
	for name, fn := range cases {
		t.Run(name, func(t *testing.T) { fn(t, open) })
	}
}

var testTime = time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)

func spec(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// drain returns every change the feed has now, without waiting long.
func drain(t *testing.T, f store.ChangeFeed) []store.Change {
	t.Helper()
	var out []store.Change
	for {
		ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
		cs, err := f.Next(ctx, 100)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			return out
		}
		if err != nil {
			t.Fatalf("feed next: %v", err)
		}
		out = append(out, cs...)
	}
}

func decode(t *testing.T, c store.Change) (event.Event, store.Resource) {
	t.Helper()
	ev, err := event.Decode(c.Value)
	if err != nil {
		t.Fatalf("decode change %d: %v", c.Position, err)
	}
	var r store.Resource
	if err := json.Unmarshal(ev.Data, &r); err != nil {
		t.Fatalf("decode state of %s: %v", ev.ID, err)
	}
	if c.Key != r.ID || ev.Subject != r.ID {
		t.Fatalf("change key %q, subject %q, state id %q: want all equal", c.Key, ev.Subject, r.ID)
	}
	if ev.Generation != r.Generation || ev.Version != r.Version {
		t.Fatalf("event generation/version %d/%d, state %d/%d", ev.Generation, ev.Version, r.Generation, r.Version)
	}
	return ev, r
}

func update(t *testing.T, s store.Store, fn func(ctx context.Context, tx store.Tx) error) {
	t.Helper()
	if err := s.Update(t.Context(), fn); err != nil {
		t.Fatalf("update: %v", err)
	}
}

func create(t *testing.T, s store.Store, kind, id string, v any) store.Resource {
	t.Helper()
	var r store.Resource
	update(t, s, func(ctx context.Context, tx store.Tx) error {
		var err error
		r, err = tx.ResourceCreate(ctx, store.CreateParams{Kind: kind, ID: id, Organization: "org-1", Environment: "env-1", Spec: spec(v)})
		return err
	})
	return r
}

func testCreate(t *testing.T, open Opener) {
	s := open(t, t.TempDir())
	r := create(t, s, "lkc", "lkc-1", map[string]any{"cku": 2})
	if r.Generation != 1 || r.Version != 1 {
		t.Fatalf("created at generation %d version %d, want 1/1", r.Generation, r.Version)
	}
	cs := drain(t, s.Feed())
	if len(cs) != 1 {
		t.Fatalf("feed has %d changes after one create, want 1", len(cs))
	}
	ev, state := decode(t, cs[0])
	if cs[0].Topic != "mothership.lkc.desired" || ev.Type != "io.mothership.lkc.desired" || ev.Source == "" {
		t.Fatalf("event topic %q type %q source %q", cs[0].Topic, ev.Type, ev.Source)
	}
	if string(state.Spec) != `{"cku":2}` || state.Organization != "org-1" || state.Environment != "env-1" {
		t.Fatalf("event state %+v: want the full resource", state)
	}
}

func testCreateTwice(t *testing.T, open Opener) {
	s := open(t, t.TempDir())
	create(t, s, "lkc", "lkc-1", map[string]any{"cku": 2})
	err := s.Update(t.Context(), func(ctx context.Context, tx store.Tx) error {
		_, err := tx.ResourceCreate(ctx, store.CreateParams{Kind: "lkc", ID: "lkc-1", Spec: spec(map[string]any{"cku": 4})})
		return err
	})
	if !errors.Is(err, store.ErrAlreadyExists) {
		t.Fatalf("second create: %v, want ErrAlreadyExists", err)
	}
	// A caller may go on after ErrAlreadyExists, in the same transaction.
	update(t, s, func(ctx context.Context, tx store.Tx) error {
		if _, err := tx.ResourceCreate(ctx, store.CreateParams{Kind: "lkc", ID: "lkc-1", Spec: spec(map[string]any{})}); !errors.Is(err, store.ErrAlreadyExists) {
			return fmt.Errorf("create of a taken id: %v, want ErrAlreadyExists", err)
		}
		_, err := tx.ResourceCreate(ctx, store.CreateParams{Kind: "lkc", ID: "lkc-2", Spec: spec(map[string]any{})})
		return err
	})
	if n := len(drain(t, s.Feed())); n != 2 {
		t.Fatalf("feed has %d changes, want the two successful creates", n)
	}
}

func testUpdateSpec(t *testing.T, open Opener) {
	s := open(t, t.TempDir())
	create(t, s, "lkc", "lkc-1", map[string]any{"cku": 2})
	var same, changed store.Resource
	update(t, s, func(ctx context.Context, tx store.Tx) error {
		var err error
		// Same value, other spacing: no change, no event.
		same, err = tx.ResourceUpdateSpec(ctx, store.UpdateSpecParams{Kind: "lkc", ID: "lkc-1", Spec: json.RawMessage(`{ "cku" : 2 }`)})
		if err != nil {
			return err
		}
		changed, err = tx.ResourceUpdateSpec(ctx, store.UpdateSpecParams{Kind: "lkc", ID: "lkc-1", Spec: spec(map[string]any{"cku": 4})})
		return err
	})
	if same.Generation != 1 || changed.Generation != 2 || changed.Version != 2 {
		t.Fatalf("generations %d then %d (version %d), want 1 then 2 (2)", same.Generation, changed.Generation, changed.Version)
	}
	cs := drain(t, s.Feed())
	if len(cs) != 2 {
		t.Fatalf("feed has %d changes, want create and one update", len(cs))
	}
	if _, st := decode(t, cs[1]); string(st.Spec) != `{"cku":4}` {
		t.Fatalf("update event spec %s, want full new spec", st.Spec)
	}
}

func testIfGeneration(t *testing.T, open Opener) {
	s := open(t, t.TempDir())
	create(t, s, "lkc", "lkc-1", map[string]any{"cku": 2})
	err := s.Update(t.Context(), func(ctx context.Context, tx store.Tx) error {
		_, err := tx.ResourceUpdateSpec(ctx, store.UpdateSpecParams{Kind: "lkc", ID: "lkc-1", IfGeneration: 7, Spec: spec(map[string]any{"cku": 4})})
		return err
	})
	if !errors.Is(err, store.ErrGenerationChanged) {
		t.Fatalf("update at a stale generation: %v, want ErrGenerationChanged", err)
	}
	err = s.Update(t.Context(), func(ctx context.Context, tx store.Tx) error {
		_, err := tx.ResourceUpdateSpec(ctx, store.UpdateSpecParams{Kind: "lkc", ID: "lkc-9", Spec: spec(map[string]any{"cku": 4})})
		return err
	})
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("update of a missing resource: %v, want ErrNotFound", err)
	}
}

func testSetStatus(t *testing.T, open Opener) {
	s := open(t, t.TempDir())
	create(t, s, "pkc", "pkc-1", map[string]any{"brokers": 6})
	st := store.Status{ObservedGeneration: 1, Phase: "PROVISIONING", Reason: "BrokersStarting", Detail: json.RawMessage(`{"brokers": 3}`)}
	var r store.Resource
	update(t, s, func(ctx context.Context, tx store.Tx) error {
		var err error
		if r, err = tx.ResourceSetStatus(ctx, "pkc", "pkc-1", st); err != nil {
			return err
		}
		_, err = tx.ResourceSetStatus(ctx, "pkc", "pkc-1", st) // unchanged: no event
		return err
	})
	if r.Generation != 1 || r.Version != 2 || r.Status.Phase != "PROVISIONING" {
		t.Fatalf("after status: generation %d version %d phase %q", r.Generation, r.Version, r.Status.Phase)
	}
	cs := drain(t, s.Feed())
	if len(cs) != 2 || cs[1].Topic != "mothership.pkc.status" {
		t.Fatalf("feed %d changes (last topic %q), want create + one status on mothership.pkc.status", len(cs), cs[len(cs)-1].Topic)
	}
	if _, got := decode(t, cs[1]); got.Status.Reason != "BrokersStarting" || string(got.Status.Detail) != `{"brokers":3}` {
		t.Fatalf("status event carries %+v", got.Status)
	}
	err := s.Update(t.Context(), func(ctx context.Context, tx store.Tx) error {
		_, err := tx.ResourceSetStatus(ctx, "pkc", "pkc-1", store.Status{ObservedGeneration: 5})
		return err
	})
	if !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("status observing a future generation: %v, want ErrInvalid", err)
	}
}

func testDelete(t *testing.T, open Opener) {
	s := open(t, t.TempDir())
	create(t, s, "lkc", "lkc-1", map[string]any{"cku": 2})
	update(t, s, func(ctx context.Context, tx store.Tx) error {
		_, err := tx.ResourceDelete(ctx, "lkc", "lkc-1")
		return err
	})
	err := s.View(t.Context(), func(ctx context.Context, tx store.Tx) error {
		if _, err := tx.ResourceGet(ctx, "lkc", "lkc-1"); !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("get after delete: %v, want ErrNotFound", err)
		}
		r, err := tx.ResourceGetAny(ctx, "lkc", "lkc-1")
		if err != nil {
			return err
		}
		if !r.Deleted() || r.Generation != 2 {
			return fmt.Errorf("deleted row: deleted %v generation %d, want true/2", r.Deleted(), r.Generation)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	cs := drain(t, s.Feed())
	if len(cs) != 2 {
		t.Fatalf("feed has %d changes, want create and delete", len(cs))
	}
	if _, st := decode(t, cs[1]); st.DeletedAt == nil || string(st.Spec) != `{"cku":2}` {
		t.Fatalf("delete event state %+v: want deleted_at and the full last spec", st)
	}
	err = s.Update(t.Context(), func(ctx context.Context, tx store.Tx) error {
		_, err := tx.ResourceDelete(ctx, "lkc", "lkc-1")
		return err
	})
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second delete: %v, want ErrNotFound", err)
	}
}

// testPurge: a purged row is gone for good (a get in the same
// transaction too), nothing is announced, and purging it again is no
// error.
func testPurge(t *testing.T, open Opener) {
	s := open(t, t.TempDir())
	create(t, s, "lkc", "lkc-1", map[string]any{"cku": 2})
	create(t, s, "lkc", "lkc-2", map[string]any{"cku": 2})
	drain(t, s.Feed())
	for range 2 {
		update(t, s, func(ctx context.Context, tx store.Tx) error {
			if err := tx.ResourcePurge(ctx, "lkc", "lkc-1"); err != nil {
				return err
			}
			if _, err := tx.ResourceGetAny(ctx, "lkc", "lkc-1"); !errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("get in the purging transaction: %v, want ErrNotFound", err)
			}
			return nil
		})
	}
	err := s.View(t.Context(), func(ctx context.Context, tx store.Tx) error {
		rs, err := tx.ResourceList(ctx, store.ListParams{Kind: "lkc", IncludeDeleted: true})
		if err != nil {
			return err
		}
		if len(rs) != 1 || rs[0].ID != "lkc-2" {
			return fmt.Errorf("after the purge the rows are %v, want lkc-2 alone", rs)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if cs := drain(t, s.Feed()); len(cs) != 0 {
		t.Fatalf("a purge announced %d changes, want none", len(cs))
	}
}

func testRollback(t *testing.T, open Opener) {
	s := open(t, t.TempDir())
	boom := errors.New("boom")
	err := s.Update(t.Context(), func(ctx context.Context, tx store.Tx) error {
		if _, err := tx.ResourceCreate(ctx, store.CreateParams{Kind: "lkc", ID: "lkc-1", Spec: spec(map[string]any{})}); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("update: %v, want the callback's error", err)
	}
	if n := len(drain(t, s.Feed())); n != 0 {
		t.Fatalf("rolled back create left %d events", n)
	}
	err = s.View(t.Context(), func(ctx context.Context, tx store.Tx) error {
		_, err := tx.ResourceGetAny(ctx, "lkc", "lkc-1")
		return err
	})
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("rolled back create: get %v, want ErrNotFound", err)
	}
}

func testInvalid(t *testing.T, open Opener) {
	s := open(t, t.TempDir())
	cases := map[string]store.CreateParams{
		"kind with a dot would escape its topic": {Kind: "lkc.desired", ID: "x", Spec: spec(map[string]any{})},
		"upper-case kind":                        {Kind: "LKC", ID: "x"},
		"empty id":                               {Kind: "lkc", ID: ""},
		"id with a newline":                      {Kind: "lkc", ID: "a\nb"},
		"spec not JSON":                          {Kind: "lkc", ID: "x", Spec: json.RawMessage(`{cku:`)},
		"spec an array":                          {Kind: "lkc", ID: "x", Spec: json.RawMessage(`[1]`)},
		"spec larger than a Kafka record allows": {Kind: "lkc", ID: "x", Spec: json.RawMessage(`{"a":"` + strings.Repeat("x", store.MaxSpecBytes) + `"}`)},
	}
	for reason, p := range cases {
		err := s.Update(t.Context(), func(ctx context.Context, tx store.Tx) error {
			_, err := tx.ResourceCreate(ctx, p)
			return err
		})
		if !errors.Is(err, store.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", reason, err)
		}
	}
	if n := len(drain(t, s.Feed())); n != 0 {
		t.Fatalf("invalid creates left %d events", n)
	}
}

func testReadOnly(t *testing.T, open Opener) {
	s := open(t, t.TempDir())
	err := s.View(t.Context(), func(ctx context.Context, tx store.Tx) error {
		_, err := tx.ResourceCreate(ctx, store.CreateParams{Kind: "lkc", ID: "lkc-1"})
		return err
	})
	if !errors.Is(err, store.ErrReadOnly) {
		t.Fatalf("create in View: %v, want ErrReadOnly", err)
	}
}

func testList(t *testing.T, open Opener) {
	s := open(t, t.TempDir())
	update(t, s, func(ctx context.Context, tx store.Tx) error {
		for i, tenant := range []string{"org-a", "org-b", "org-a", "org-a", "org-b"} {
			if _, err := tx.ResourceCreate(ctx, store.CreateParams{Kind: "lkc", ID: fmt.Sprintf("lkc-%d", i), Organization: tenant, Spec: spec(map[string]any{})}); err != nil {
				return err
			}
		}
		_, err := tx.ResourceDelete(ctx, "lkc", "lkc-3")
		return err
	})
	var pages [][]string
	err := s.View(t.Context(), func(ctx context.Context, tx store.Tx) error {
		after := ""
		for {
			rs, err := tx.ResourceList(ctx, store.ListParams{Kind: "lkc", Organization: "org-a", AfterID: after, Limit: 1})
			if err != nil || len(rs) == 0 {
				return err
			}
			var page []string
			for _, r := range rs {
				page = append(page, r.ID)
			}
			pages = append(pages, page)
			after = rs[len(rs)-1].ID
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(pages); got != "[[lkc-0] [lkc-2]]" {
		t.Fatalf("org-a pages %s, want [[lkc-0] [lkc-2]] (lkc-3 is deleted, others are org-b)", got)
	}
}

func testObserved(t *testing.T, open Opener) {
	s := open(t, t.TempDir())
	ev := func(v int64) event.Event {
		return event.New("kafka", "lkc", event.Desired, "lkc-1", v, v, testTime, json.RawMessage(fmt.Sprintf(`{"v":%d}`, v)))
	}
	var results []bool
	update(t, s, func(ctx context.Context, tx store.Tx) error {
		for _, v := range []int64{2, 1, 2, 3} {
			ok, err := tx.ObservedPut(ctx, "mothership.lkc.desired", ev(v))
			if err != nil {
				return err
			}
			results = append(results, ok)
		}
		return nil
	})
	if got := fmt.Sprint(results); got != "[true false false true]" {
		t.Fatalf("ObservedPut of versions 2,1,2,3 applied %s, want [true false false true]", got)
	}
	err := s.View(t.Context(), func(ctx context.Context, tx store.Tx) error {
		got, err := tx.ObservedGet(ctx, "mothership.lkc.desired", "lkc-1")
		if err != nil {
			return err
		}
		if got.Version != 3 || string(got.Data) != `{"v":3}` {
			return fmt.Errorf("observed %d %s, want version 3", got.Version, got.Data)
		}
		subjects, err := tx.ObservedSubjects(ctx, "mothership.lkc.desired")
		if err != nil {
			return err
		}
		if fmt.Sprint(subjects) != "[lkc-1]" {
			return fmt.Errorf("observed subjects %v", subjects)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Many at once, in the order given (not the store's): each answer is
	// its own event's, whether it was newer than the one recorded.
	var all []bool
	evOf := func(topic, subject string, v int64) store.TopicEvent {
		return store.TopicEvent{Topic: topic, Event: event.New("kafka", "lkc", event.Desired, subject, v, v, testTime, json.RawMessage(fmt.Sprintf(`{"v":%d}`, v)))}
	}
	update(t, s, func(ctx context.Context, tx store.Tx) error {
		var err error
		all, err = tx.ObservedPutAll(ctx, []store.TopicEvent{
			evOf("mothership.lkc.desired", "lkc-2", 1),
			evOf("mothership.lkc.desired", "lkc-1", 2), // older than 3
			evOf("mothership.lkc.status", "lkc-1", 1),
			evOf("mothership.lkc.desired", "lkc-0", 5),
		})
		if err != nil {
			return err
		}
		got, err := tx.ObservedGet(ctx, "mothership.lkc.desired", "lkc-0")
		if err != nil || got.Version != 5 {
			return fmt.Errorf("the transaction reads lkc-0 back as version %d, %v; want 5", got.Version, err)
		}
		return nil
	})
	if got := fmt.Sprint(all); got != "[true false true true]" {
		t.Fatalf("ObservedPutAll applied %s, want [true false true true]", got)
	}
	err = s.View(t.Context(), func(ctx context.Context, tx store.Tx) error {
		subjects, err := tx.ObservedSubjects(ctx, "mothership.lkc.desired")
		if err != nil {
			return err
		}
		if fmt.Sprint(subjects) != "[lkc-0 lkc-1 lkc-2]" {
			return fmt.Errorf("observed subjects %v after ObservedPutAll", subjects)
		}
		got, err := tx.ObservedGet(ctx, "mothership.lkc.desired", "lkc-1")
		if err != nil || got.Version != 3 {
			return fmt.Errorf("lkc-1 is at version %d, %v after an older one was offered; want 3", got.Version, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(drain(t, s.Feed())); n != 0 {
		t.Fatalf("observing emitted %d events; only own resources emit", n)
	}
}

func testFeedResume(t *testing.T, open Opener) {
	dir := t.TempDir()
	s := open(t, dir)
	for i := range 5 {
		create(t, s, "lkc", fmt.Sprintf("lkc-%d", i), map[string]any{})
	}
	cs := drain(t, s.Feed())
	if len(cs) != 5 {
		t.Fatalf("feed returned %d changes, want 5", len(cs))
	}
	for i := 1; i < len(cs); i++ {
		if cs[i].Position <= cs[i-1].Position {
			t.Fatalf("positions not increasing: %d then %d", cs[i-1].Position, cs[i].Position)
		}
	}
	if err := s.Feed().Confirm(t.Context(), cs[2].Position); err != nil {
		t.Fatal(err)
	}
	// The backlog is what is committed and not confirmed.
	if bf, ok := s.Feed().(store.BacklogFeed); !ok {
		t.Fatal("the feed does not count its backlog (store.BacklogFeed)")
	} else if n, err := bf.Backlog(t.Context()); err != nil || n != 2 {
		t.Fatalf("backlog after confirming 3 of 5: %d, %v; want 2", n, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, dir)
	got := drain(t, s.Feed())
	if len(got) != 2 || got[0].Key != "lkc-3" || got[1].Key != "lkc-4" {
		t.Fatalf("after reopen the feed returned %d changes, want lkc-3 and lkc-4", len(got))
	}
	// A create after everything was confirmed gets a fresh position.
	if err := s.Feed().Confirm(t.Context(), got[1].Position); err != nil {
		t.Fatal(err)
	}
	create(t, s, "lkc", "lkc-5", map[string]any{})
	if last := drain(t, s.Feed()); len(last) != 1 || last[0].Position <= got[1].Position {
		t.Fatalf("new change after full confirm: %+v, want one at a position after %d", last, got[1].Position)
	}
}

func testFeedRewind(t *testing.T, open Opener) {
	s := open(t, t.TempDir())
	for i := range 3 {
		create(t, s, "lkc", fmt.Sprintf("lkc-%d", i), map[string]any{})
	}
	cs := drain(t, s.Feed())
	if err := s.Feed().Confirm(t.Context(), cs[0].Position); err != nil {
		t.Fatal(err)
	}
	if err := s.Feed().Rewind(t.Context()); err != nil {
		t.Fatal(err)
	}
	again := drain(t, s.Feed())
	if len(again) != 2 || again[0].Position != cs[1].Position {
		t.Fatalf("after rewind the feed returned %d changes, want the 2 unconfirmed", len(again))
	}
}

func testFeedOrderInTx(t *testing.T, open Opener) {
	s := open(t, t.TempDir())
	update(t, s, func(ctx context.Context, tx store.Tx) error {
		// More events than one statement of a backend may take at once.
		for i := range 101 {
			if _, err := tx.ResourceCreate(ctx, store.CreateParams{Kind: "lkc", ID: fmt.Sprintf("lkc-%d", i), Spec: spec(map[string]any{})}); err != nil {
				return err
			}
		}
		_, err := tx.ResourceUpdateSpec(ctx, store.UpdateSpecParams{Kind: "lkc", ID: "lkc-3", Spec: spec(map[string]any{"cku": 2})})
		return err
	})
	var got []string
	cs := drain(t, s.Feed())
	for i, c := range cs {
		ev, _ := decode(t, c)
		got = append(got, fmt.Sprintf("%s@%d", c.Key, ev.Version))
		if i > 0 && c.Position < cs[i-1].Position {
			t.Fatalf("positions go back within a transaction: %d after %d", c.Position, cs[i-1].Position)
		}
	}
	var want []string
	for i := range 101 {
		want = append(want, fmt.Sprintf("lkc-%d@1", i))
	}
	want = append(want, "lkc-3@2")
	if !slices.Equal(got, want) {
		t.Fatalf("feed order %v, want the order of the writes %s", got, want)
	}
}

// testGetOrCreate: writers that each read a resource and create it when
// missing (quota's per organization) serialize as one writer at a time
// would: one creates it, the others find it and update it; none fails
// with ErrAlreadyExists and no update is lost.
func testGetOrCreate(t *testing.T, open Opener) {
	s := open(t, t.TempDir())
	const writers = 20
	var wg sync.WaitGroup
	for range writers {
		wg.Go(func() {
			err := s.Update(t.Context(), func(ctx context.Context, tx store.Tx) error {
				r, err := tx.ResourceGet(ctx, "quota", "q-org-1")
				if errors.Is(err, store.ErrNotFound) {
					r, err = tx.ResourceCreate(ctx, store.CreateParams{Kind: "quota", ID: "q-org-1", Organization: "org-1", Spec: spec(map[string]any{})})
				}
				if err != nil {
					return err
				}
				var n int
				_ = json.Unmarshal(r.Status.Detail, &n)
				_, err = tx.ResourceSetStatus(ctx, "quota", r.ID, store.Status{Detail: spec(n + 1)})
				return err
			})
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := counted(t, s, "q-org-1"); n != writers {
		t.Fatalf("%d writers counted %d: updates were lost", writers, n)
	}
}

// counted reads the counter the writers of a test kept in a quota's
// status detail.
func counted(t *testing.T, s store.Store, id string) int {
	t.Helper()
	var n int
	if err := s.View(t.Context(), func(ctx context.Context, tx store.Tx) error {
		r, err := tx.ResourceGet(ctx, "quota", id)
		if err == nil {
			err = json.Unmarshal(r.Status.Detail, &n)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

// testPrefetch: a prefetch serves the gets after it, deleted rows and
// missing ids as a get would, and it locks what it read: concurrent
// writers that prefetch two counters and add one to each lose no update
// and do not deadlock.
func testPrefetch(t *testing.T, open Opener) {
	s := open(t, t.TempDir())
	create(t, s, "lkc", "lkc-1", map[string]any{"cku": 1})
	create(t, s, "lkc", "lkc-2", map[string]any{"cku": 2})
	update(t, s, func(ctx context.Context, tx store.Tx) error {
		_, err := tx.ResourceDelete(ctx, "lkc", "lkc-2")
		return err
	})
	check := func(ctx context.Context, tx store.Tx) error {
		if err := tx.ResourcePrefetch(ctx, "lkc", nil); err != nil {
			return fmt.Errorf("prefetch of nothing: %w", err)
		}
		if err := tx.ResourcePrefetch(ctx, "lkc", []string{"lkc-3", "lkc-2", "lkc-1", "lkc-2"}); err != nil {
			return err
		}
		if r, err := tx.ResourceGet(ctx, "lkc", "lkc-1"); err != nil || string(r.Spec) != `{"cku":1}` {
			return fmt.Errorf("get lkc-1 after prefetch: %s, %v; want its spec", r.Spec, err)
		}
		if _, err := tx.ResourceGet(ctx, "lkc", "lkc-2"); !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("get of a deleted lkc-2 after prefetch: %v, want ErrNotFound", err)
		}
		if r, err := tx.ResourceGetAny(ctx, "lkc", "lkc-2"); err != nil || !r.Deleted() {
			return fmt.Errorf("get any of lkc-2 after prefetch: deleted %v, %v; want the deleted row", r.Deleted(), err)
		}
		if _, err := tx.ResourceGetAny(ctx, "lkc", "lkc-3"); !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("get of lkc-3, never made: %v, want ErrNotFound", err)
		}
		return nil
	}
	if err := s.View(t.Context(), check); err != nil {
		t.Fatalf("view: %v", err)
	}
	update(t, s, check)

	create(t, s, "quota", "q-a", map[string]any{})
	create(t, s, "quota", "q-b", map[string]any{})
	const writers = 20
	var wg sync.WaitGroup
	for i := range writers {
		wg.Go(func() {
			ids := []string{"q-a", "q-b"}
			if i%2 == 1 {
				ids = []string{"q-b", "q-a"} // the store orders them
			}
			err := s.Update(t.Context(), func(ctx context.Context, tx store.Tx) error {
				if err := tx.ResourcePrefetch(ctx, "quota", ids); err != nil {
					return err
				}
				for _, id := range ids {
					r, err := tx.ResourceGet(ctx, "quota", id)
					if err != nil {
						return err
					}
					var n int
					_ = json.Unmarshal(r.Status.Detail, &n)
					if _, err := tx.ResourceSetStatus(ctx, "quota", id, store.Status{Detail: spec(n + 1)}); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	for _, id := range []string{"q-a", "q-b"} {
		if n := counted(t, s, id); n != writers {
			t.Fatalf("%s: %d writers counted %d: updates were lost", id, writers, n)
		}
	}
}

// testPrefetchedReads: what a transaction read at once (ObservedPrefetch,
// IndexGetMany, ObservedSubjects) answers its later reads as the backend
// would, found or not, and follows the transaction's own writes.
func testPrefetchedReads(t *testing.T, open Opener) {
	s := open(t, t.TempDir())
	const topic = "mothership.lkc.desired"
	ev := func(subject string, v int64) event.Event {
		return event.New("kafka", "lkc", event.Desired, subject, v, v, testTime, json.RawMessage(fmt.Sprintf(`{"v":%d}`, v)))
	}
	update(t, s, func(ctx context.Context, tx store.Tx) error {
		if _, err := tx.ObservedPut(ctx, topic, ev("lkc-1", 1)); err != nil {
			return err
		}
		return tx.IndexPut(ctx, "tenant", "lkc-1", "pkc-1")
	})
	check := func(ctx context.Context, tx store.Tx) error {
		if err := tx.ObservedPrefetch(ctx, topic, []string{"lkc-2", "lkc-1", "lkc-1"}); err != nil {
			return err
		}
		if got, err := tx.ObservedGet(ctx, topic, "lkc-1"); err != nil || got.Version != 1 {
			return fmt.Errorf("observed lkc-1 after prefetch: version %d, %v; want 1", got.Version, err)
		}
		if _, err := tx.ObservedGet(ctx, topic, "lkc-2"); !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("observed lkc-2, never recorded, after prefetch: %v, want ErrNotFound", err)
		}
		if subjects, err := tx.ObservedSubjects(ctx, topic); err != nil || !slices.Equal(subjects, []string{"lkc-1"}) {
			return fmt.Errorf("observed subjects %v, %v; want [lkc-1]", subjects, err)
		}
		got, err := tx.IndexGetMany(ctx, "tenant", []string{"lkc-1", "lkc-2"})
		if err != nil || !maps.Equal(got, map[string]string{"lkc-1": "pkc-1"}) {
			return fmt.Errorf("index get many: %v, %v; want lkc-1 only", got, err)
		}
		if v, err := tx.IndexGet(ctx, "tenant", "lkc-1"); err != nil || v != "pkc-1" {
			return fmt.Errorf("index lkc-1 after get many: %q, %v; want pkc-1", v, err)
		}
		if _, err := tx.IndexGet(ctx, "tenant", "lkc-2"); !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("index lkc-2, absent, after get many: %v, want ErrNotFound", err)
		}
		return nil
	}
	if err := s.View(t.Context(), check); err != nil {
		t.Fatalf("view: %v", err)
	}
	update(t, s, func(ctx context.Context, tx store.Tx) error {
		if err := check(ctx, tx); err != nil {
			return err
		}
		// The transaction's own writes, after what it read at once.
		if _, err := tx.ObservedPutAll(ctx, []store.TopicEvent{{Topic: topic, Event: ev("lkc-2", 4)}, {Topic: topic, Event: ev("lkc-0", 2)}}); err != nil {
			return err
		}
		if got, err := tx.ObservedGet(ctx, topic, "lkc-2"); err != nil || got.Version != 4 {
			return fmt.Errorf("observed lkc-2 after recording it: version %d, %v; want 4", got.Version, err)
		}
		if subjects, err := tx.ObservedSubjects(ctx, topic); err != nil || !slices.Equal(subjects, []string{"lkc-0", "lkc-1", "lkc-2"}) {
			return fmt.Errorf("observed subjects after recording two: %v, %v; want [lkc-0 lkc-1 lkc-2]", subjects, err)
		}
		if err := tx.IndexPut(ctx, "tenant", "lkc-2", "pkc-2"); err != nil {
			return err
		}
		if err := tx.IndexDelete(ctx, "tenant", "lkc-1"); err != nil {
			return err
		}
		if v, err := tx.IndexGet(ctx, "tenant", "lkc-2"); err != nil || v != "pkc-2" {
			return fmt.Errorf("index lkc-2 after put: %q, %v; want pkc-2", v, err)
		}
		if _, err := tx.IndexGet(ctx, "tenant", "lkc-1"); !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("index lkc-1 after delete: %v, want ErrNotFound", err)
		}
		if _, err := tx.IndexGetMany(ctx, "count", []string{"n"}); err != nil {
			return err
		}
		if _, err := tx.IndexAdd(ctx, "count", "n", 2, 40); err != nil {
			return err
		}
		if v, err := tx.IndexGet(ctx, "count", "n"); err != nil || v != "42" {
			return fmt.Errorf("counter after add: %q, %v; want 42", v, err)
		}
		return nil
	})
	// What the transaction wrote is what the next one reads.
	if err := s.View(t.Context(), func(ctx context.Context, tx store.Tx) error {
		got, err := tx.IndexGetMany(ctx, "tenant", []string{"lkc-1", "lkc-2"})
		if err != nil || !maps.Equal(got, map[string]string{"lkc-2": "pkc-2"}) {
			return fmt.Errorf("index after commit: %v, %v; want lkc-2 only", got, err)
		}
		if err := tx.ObservedPrefetch(ctx, topic, []string{"lkc-2"}); err != nil {
			return err
		}
		if got, err := tx.ObservedGet(ctx, topic, "lkc-2"); err != nil || got.Version != 4 {
			return fmt.Errorf("observed lkc-2 after commit: version %d, %v; want 4", got.Version, err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
