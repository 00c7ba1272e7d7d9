package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mothership-dev/mothership/internal/runtime/event"
	"github.com/mothership-dev/mothership/internal/runtime/store"
	"github.com/mothership-dev/mothership/internal/runtime/store/postgres"
	"github.com/mothership-dev/mothership/internal/runtime/store/postgres/pgtest"
)

// gauge reads the value of metric name with the given labels from reg.
func gauge(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) (float64, bool) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if want, ok := labels[lp.GetName()]; ok && want != lp.GetValue() {
					continue metrics
				}
			}
			return m.GetGauge().GetValue(), true
		}
	}
	return 0, false
}

func superuser(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.WithoutCancel(t.Context())) })
	return conn
}

func writeN(t *testing.T, s store.Store, prefix string, n int) {
	t.Helper()
	pad := strings.Repeat("x", 1000)
	for i := range n {
		err := s.Update(t.Context(), func(ctx context.Context, tx store.Tx) error {
			_, err := tx.ResourceCreate(ctx, store.CreateParams{Kind: "organization", ID: fmt.Sprintf("%s-%d", prefix, i), Spec: []byte(`{"pad":"` + pad + `"}`)})
			return err
		})
		if err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
}

// TestRetainedWALIsReported: while nothing confirms (the relay is stopped,
// Kafka is away), the slot keeps the WAL of every write, and the gauge
// shows it growing; once the feed confirms, the server releases it and the
// gauge falls back.
func TestRetainedWALIsReported(t *testing.T) {
	ctx := t.Context()
	srv := pgtest.Shared(t)
	dbURL := srv.NewDatabase(t)
	reg := prometheus.NewRegistry()
	cfg := postgres.Config{URL: dbURL, Service: "watched", Registerer: reg, SlotCheckEvery: 20 * time.Millisecond}
	s, err := postgres.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// A second store of the service (a second process would have its own
	// registry; one registry must not fail either).
	second, err := postgres.Open(ctx, cfg)
	if err != nil {
		t.Fatalf("a second store of the same service registering the same metrics: %v", err)
	}
	second.Close()

	labels := map[string]string{"service": "watched"}
	retained := func() float64 {
		v, _ := gauge(t, reg, postgres.MetricRetainedWAL, labels)
		return v
	}
	waitUntil(t, "wal_status reported", func() (bool, string) {
		v, ok := gauge(t, reg, postgres.MetricWALStatus, map[string]string{"service": "watched", "status": "reserved"})
		return ok && v == 1, fmt.Sprintf("wal_status reserved = %v (reported %v), want 1", v, ok)
	})
	before := retained()
	writeN(t, s, "org", 500)
	var grown float64
	waitUntil(t, "retained WAL grows with unconfirmed writes", func() (bool, string) {
		grown = retained()
		return grown >= before+400_000, fmt.Sprintf("%.0f bytes, %.0f before", grown, before)
	})

	// The relay comes back: it reads everything and confirms it. The
	// server moves the slot's restart_lsn on at its next snapshot of
	// running transactions, which a checkpoint writes at once (else the
	// background writer does every 15 s).
	su := superuser(t, srv.URL("postgres"))
	var last int64
	for {
		next, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		changes, err := s.Feed().Next(next, 1000)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			break
		}
		if err != nil {
			t.Fatalf("feed: %v", err)
		}
		last = changes[len(changes)-1].Position
	}
	if err := s.Feed().Confirm(ctx, last); err != nil {
		t.Fatalf("confirm: %v", err)
	}
	waitUntil(t, "retained WAL falls back once confirmed", func() (bool, string) {
		if _, err := su.Exec(ctx, `CHECKPOINT`); err != nil {
			t.Fatal(err)
		}
		// The feed receives the server's keepalives while it waits.
		next, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		s.Feed().Next(next, 1000)
		cancel()
		v := retained()
		return v < grown/4, fmt.Sprintf("%.0f bytes, %.0f at the peak", v, grown)
	})
}

// TestInvalidatedSlotLosesNothing: past max_slot_wal_keep_size the server
// invalidates the slot while Kafka is away. Writes go on being accepted;
// the loss is loud (an error log, the lost counter, the store not ready);
// the feed makes the slot again and returns every change committed before
// and after, from the outbox table, in order per key.
func TestInvalidatedSlotLosesNothing(t *testing.T) {
	ctx := t.Context()
	srv, err := pgtest.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	su := superuser(t, srv.URL("postgres"))
	for _, q := range []string{`ALTER SYSTEM SET max_slot_wal_keep_size = '1MB'`, `SELECT pg_reload_conf()`} {
		if _, err := su.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	reg := prometheus.NewRegistry()
	dbURL := srv.NewDatabase(t)
	cfg := postgres.Config{URL: dbURL, Service: "lossy", Registerer: reg, SlotCheckEvery: 20 * time.Millisecond}
	s, err := postgres.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	want := versions{}
	want.write(t, s, "before", 3, 4)

	// Kafka stays away while WAL goes well past the bound.
	if _, err := su.Exec(ctx, `CREATE TABLE filler (x text)`); err != nil {
		t.Fatal(err)
	}
	for range 4 {
		for _, q := range []string{`INSERT INTO filler SELECT repeat(md5(i::text), 100) FROM generate_series(1, 2000) i`, `SELECT pg_switch_wal()`} {
			if _, err := su.Exec(ctx, q); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := su.Exec(ctx, `CHECKPOINT`); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the store says it is not ready once the slot is lost", func() (bool, string) {
		err := s.Ready()
		return err != nil && strings.Contains(err.Error(), "invalidated"), fmt.Sprint(err)
	})
	t.Logf("what readiness says: %v", s.Ready())
	if v, _ := gauge(t, reg, postgres.MetricWALStatus, map[string]string{"service": "lossy", "status": "lost"}); v != 1 {
		t.Fatalf("wal_status lost = %v, want 1", v)
	}
	// Writes are still accepted: they wait in the table.
	want.write(t, s, "during", 2, 3)

	got := drain(t, s)
	want.check(t, got)
	if v := counter(t, reg, postgres.MetricSlotLost, "lossy"); v != 1 {
		t.Fatalf("%s = %v, want 1", postgres.MetricSlotLost, v)
	}
	if err := s.Ready(); err != nil {
		t.Fatalf("not ready after the catch-up was confirmed: %v", err)
	}
	outboxEmpty(t, dbURL)

	// The new slot streams what comes next.
	after := versions{}
	after.write(t, s, "after", 2, 2)
	after.check(t, drain(t, s))
}

// TestDroppedSlotLosesNothing: the service's slot is dropped (by anyone
// holding REPLICATION) while the service is down, with changes committed
// that the relay had not confirmed, and again while the relay reconnects.
// Each time the store says so, and every change still comes out of the
// feed, in order per key.
func TestDroppedSlotLosesNothing(t *testing.T) {
	ctx := t.Context()
	srv := pgtest.Shared(t)
	su := superuser(t, srv.URL("postgres"))
	dbURL := srv.NewDatabase(t)
	cfg := postgres.Config{URL: dbURL, Service: "dropped", Registerer: prometheus.NewRegistry()}
	s, err := postgres.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	slot := "mothership_" + strings.TrimPrefix(dbURL[strings.LastIndex(dbURL, "/")+1:strings.Index(dbURL, "?")], "mothership_")
	want := versions{}
	want.write(t, s, "k", 4, 3)
	// Part of it is relayed and confirmed; the rest is not.
	first, err := s.Feed().Next(ctx, 5)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Feed().Confirm(ctx, first[len(first)-1].Position); err != nil {
		t.Fatal(err)
	}
	s.Close() // the relay and the service stop

	dropSlot(t, su, slot)
	reg := prometheus.NewRegistry()
	cfg.Registerer = reg
	s, err = postgres.Open(ctx, cfg)
	if err != nil {
		t.Fatalf("reopen after the slot was dropped: %v", err)
	}
	if err := s.Ready(); err == nil || !strings.Contains(err.Error(), "dropped") {
		t.Fatalf("readiness after a start on a dropped slot: %v, want the loss", err)
	}
	if v := counter(t, reg, postgres.MetricSlotLost, "dropped"); v != 1 {
		t.Fatalf("%s = %v, want 1", postgres.MetricSlotLost, v)
	}
	want.write(t, s, "k", 4, 2) // writes are accepted meanwhile

	// The service stops again in the middle of the catch-up: the next
	// start goes on with it.
	part, err := s.Feed().Next(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Feed().Confirm(ctx, part[len(part)-1].Position); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = postgres.Open(ctx, cfg)
	if err != nil {
		t.Fatalf("reopen during the catch-up: %v", err)
	}
	defer s.Close()
	if err := s.Ready(); err == nil || !strings.Contains(err.Error(), "catch-up had not ended") {
		t.Fatalf("readiness after a start during a catch-up: %v, want it to say so", err)
	}
	want.write(t, s, "k", 4, 1)
	got := append(append(first, part...), drain(t, s)...)
	want.check(t, got)
	if err := s.Ready(); err != nil {
		t.Fatalf("not ready after the catch-up was confirmed: %v", err)
	}
	outboxEmpty(t, dbURL)

	// Dropped again while the relay reconnects (its connection broke).
	want = versions{}
	want.write(t, s, "r", 3, 2)
	if err := s.Feed().Rewind(ctx); err != nil {
		t.Fatal(err)
	}
	dropSlot(t, su, slot)
	want.write(t, s, "r", 3, 2)
	want.check(t, drain(t, s))
	if v := counter(t, reg, postgres.MetricSlotLost, "dropped"); v != 2 {
		t.Fatalf("%s = %v, want 2", postgres.MetricSlotLost, v)
	}
	if err := s.Ready(); err != nil {
		t.Fatalf("not ready after the second catch-up: %v", err)
	}
}

// dropSlot drops slot as the superuser, once its walsender let go of it.
func dropSlot(t *testing.T, su *pgx.Conn, slot string) {
	t.Helper()
	waitUntil(t, "slot "+slot+" dropped", func() (bool, string) {
		_, err := su.Exec(t.Context(), `SELECT pg_drop_replication_slot($1)`, slot)
		return err == nil, fmt.Sprint(err)
	})
}

// versions are the versions written of each resource id, in order.
type versions map[string][]int64

// write creates keys resources with the prefix (or updates them if they
// exist) n times each, and records each version committed.
func (v versions) write(t *testing.T, s store.Store, prefix string, keys, n int) {
	t.Helper()
	for range n {
		for k := range keys {
			id := fmt.Sprintf("%s-%d", prefix, k)
			err := s.Update(t.Context(), func(ctx context.Context, tx store.Tx) error {
				spec := []byte(fmt.Sprintf(`{"n":%d}`, len(v[id])))
				r, err := tx.ResourceGet(ctx, "organization", id)
				if errors.Is(err, store.ErrNotFound) {
					r, err = tx.ResourceCreate(ctx, store.CreateParams{Kind: "organization", ID: id, Spec: spec})
				} else if err == nil {
					r, err = tx.ResourceUpdateSpec(ctx, store.UpdateSpecParams{Kind: "organization", ID: id, Spec: spec})
				}
				if err == nil {
					v[id] = append(v[id], r.Version)
				}
				return err
			})
			if err != nil {
				t.Fatalf("write %s: %v", id, err)
			}
		}
	}
}

// check fails unless got holds every version written, each key's in order
// (a version may come twice, never after a newer one of its key).
func (v versions) check(t *testing.T, got []store.Change) {
	t.Helper()
	seen := map[string][]int64{}
	for _, c := range got {
		ev, err := event.Decode(c.Value)
		if err != nil {
			t.Fatalf("change %s: %v", c.Key, err)
		}
		if prev := seen[c.Key]; len(prev) > 0 && ev.Version < prev[len(prev)-1] {
			t.Fatalf("%s: version %d after %d", c.Key, ev.Version, prev[len(prev)-1])
		}
		if prev := seen[c.Key]; len(prev) == 0 || prev[len(prev)-1] != ev.Version {
			seen[c.Key] = append(seen[c.Key], ev.Version)
		}
	}
	for id, want := range v {
		if fmt.Sprint(seen[id]) != fmt.Sprint(want) {
			t.Fatalf("%s: the feed gave versions %v, want %v", id, seen[id], want)
		}
	}
	t.Logf("%d changes, %d keys, every version in order", len(got), len(v))
}

// drain reads the feed until it stays quiet, confirming as a relay does,
// and returns what it read.
func drain(t *testing.T, s store.Store) []store.Change {
	t.Helper()
	var all []store.Change
	for {
		next, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
		changes, err := s.Feed().Next(next, 7)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			return all
		}
		if err != nil {
			t.Fatalf("feed: %v", err)
		}
		all = append(all, changes...)
		if err := s.Feed().Confirm(t.Context(), changes[len(changes)-1].Position); err != nil {
			t.Fatalf("confirm: %v", err)
		}
	}
}

// counter reads a counter of the service from reg.
func counter(t *testing.T, reg *prometheus.Registry, name, service string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if mf.GetName() == name && lp.GetName() == "service" && lp.GetValue() == service {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no %s for %s", name, service)
	return 0
}

// outboxEmpty fails unless every row of the outbox table was relayed and
// deleted.
func outboxEmpty(t *testing.T, dbURL string) {
	t.Helper()
	conn := superuser(t, dbURL)
	var n int
	if err := conn.QueryRow(t.Context(), `SELECT count(*) FROM outbox`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("%d rows left in the outbox table after everything was confirmed", n)
	}
}

// waitUntil polls cond until it holds, for at most 30 seconds.
func waitUntil(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 30s: %s", what, why)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
