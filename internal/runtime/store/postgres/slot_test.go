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

// TestLostSlotFailsLoudly: past max_slot_wal_keep_size the server
// invalidates the slot. The store then refuses writes and its feed fails,
// both saying what to do, instead of accepting events nobody will relay.
func TestLostSlotFailsLoudly(t *testing.T) {
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
	cfg := postgres.Config{URL: srv.NewDatabase(t), Service: "lossy", Registerer: reg, SlotCheckEvery: 20 * time.Millisecond}
	s, err := postgres.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	writeN(t, s, "org", 1)

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

	waitUntil(t, "writes refused once the slot is lost", func() (bool, string) {
		err := s.Update(ctx, func(context.Context, store.Tx) error { return nil })
		return errors.Is(err, postgres.ErrSlotLost), fmt.Sprint(err)
	})
	err = s.Update(ctx, func(context.Context, store.Tx) error { return nil })
	if !strings.Contains(err.Error(), "pg_drop_replication_slot") || !strings.Contains(err.Error(), "resync") {
		t.Fatalf("the error does not say what to do: %v", err)
	}
	t.Logf("what the operator is told: %v", err)
	if _, err := s.Feed().Next(ctx, 10); !errors.Is(err, postgres.ErrSlotLost) {
		t.Fatalf("feed of a lost slot: %v, want ErrSlotLost", err)
	}
	if v, _ := gauge(t, reg, postgres.MetricWALStatus, map[string]string{"service": "lossy", "status": "lost"}); v != 1 {
		t.Fatalf("wal_status lost = %v, want 1", v)
	}
	s.Close()
	if _, err := postgres.Open(ctx, cfg); !errors.Is(err, postgres.ErrSlotLost) {
		t.Fatalf("reopening on a lost slot: %v, want ErrSlotLost", err)
	}

	// The recovery the error describes: drop the slot and start again.
	if _, err := su.Exec(ctx, `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots`); err != nil {
		t.Fatal(err)
	}
	again, err := postgres.Open(ctx, cfg)
	if err != nil {
		t.Fatalf("reopen after dropping the lost slot: %v", err)
	}
	defer again.Close()
	writeN(t, again, "after", 1)
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
