package startstop

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestStartStopAreSafeTwiceAndRestartable(t *testing.T) {
	var r Runner
	if err := r.Stop(); err != nil {
		t.Fatalf("Stop before Start: %v", err)
	}
	runs := 0
	run := func(ctx context.Context) error {
		runs++
		<-ctx.Done()
		return ctx.Err()
	}
	if err := r.Start(t.Context(), run); err != nil {
		t.Fatal(err)
	}
	if err := r.Start(t.Context(), run); !errors.Is(err, ErrStarted) {
		t.Fatalf("second Start: %v, want ErrStarted", err)
	}
	if err := r.Stop(); err != nil {
		t.Fatalf("Stop: %v (a run ended by Stop is not an error)", err)
	}
	if err := r.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	if err := r.Start(t.Context(), run); err != nil {
		t.Fatalf("Start after Stop: %v", err)
	}
	r.Stop()
	if runs != 2 {
		t.Fatalf("ran %d times, want 2", runs)
	}
}

func TestStopReturnsTheRunsError(t *testing.T) {
	var r Runner
	boom := errors.New("boom")
	if err := r.Start(t.Context(), func(context.Context) error { return boom }); err != nil {
		t.Fatal(err)
	}
	<-r.Done()
	if err := r.Stop(); !errors.Is(err, boom) {
		t.Fatalf("Stop: %v, want the run's error", err)
	}
}

// TestEveryRunsUntilStopped: fn runs on each tick; closing stop ends the
// loop and the context of a round under way.
func TestEveryRunsUntilStopped(t *testing.T) {
	stop := make(chan struct{})
	rounds := make(chan context.Context, 100)
	done := make(chan struct{})
	go func() {
		defer close(done)
		Every(stop, time.Millisecond, func(ctx context.Context) { rounds <- ctx })
	}()
	first := <-rounds
	<-rounds
	close(stop)
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("Every did not return once stop closed")
	}
	if first.Err() == nil {
		t.Fatal("a round's context is not ended by stop")
	}
}
