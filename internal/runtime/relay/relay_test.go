package relay_test

import (
	"context"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mothership-dev/mothership/internal/runtime/relay"
	"github.com/mothership-dev/mothership/internal/runtime/store"
	"github.com/mothership-dev/mothership/internal/runtime/store/sqlite"
)

// With the broker away, the relay's produce waits; Stop must not wait with
// it, and the change must stay unconfirmed for the next run.
func TestStopDoesNotWaitForAnAbsentBroker(t *testing.T) {
	s, err := sqlite.Open(t.Context(), sqlite.Config{Path: filepath.Join(t.TempDir(), "s.db"), Service: "s"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	err = s.Update(t.Context(), func(ctx context.Context, tx store.Tx) error {
		_, err := tx.ResourceCreate(ctx, store.CreateParams{Kind: "item", ID: "a"})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0") // a port nobody answers on
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	r, err := relay.New(relay.Config{Service: "s", Feed: s.Feed(), Kafka: []kgo.Opt{kgo.SeedBrokers(addr)}})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // the change is read and its produce waits
	stopped := make(chan error, 1)
	go func() { stopped <- r.Stop() }()
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatalf("stop: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Stop waited for the absent broker")
	}
	// Nothing was confirmed: the change is still there for the next run.
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	if err := s.Feed().Rewind(ctx); err != nil {
		t.Fatal(err)
	}
	if cs, err := s.Feed().Next(ctx, 10); err != nil || len(cs) != 1 {
		t.Fatalf("after stop the feed holds %d changes (%v), want the unproduced one", len(cs), err)
	}
}
