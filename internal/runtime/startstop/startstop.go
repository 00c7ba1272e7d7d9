// Package startstop gives long-running components the same lifecycle:
// Start launches the work under a context of its own, Stop cancels it and
// waits for it to end, and both are safe to call more than once.
package startstop

import (
	"context"
	"errors"
	"sync"
	"time"
)

// ErrStarted is returned by Start when the component already runs.
var ErrStarted = errors.New("already started")

// Runner runs one function in the background between Start and Stop.
type Runner struct {
	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
	err    error
}

// Start runs fn in a goroutine with a context derived from ctx that Stop
// also cancels. It fails
// with ErrStarted while a previous run is still in progress.
func (r *Runner) Start(ctx context.Context, fn func(ctx context.Context) error) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done != nil {
		select {
		case <-r.done:
		default:
			return ErrStarted
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	r.cancel, r.done, r.err = cancel, done, nil
	go func() {
		defer close(done)
		err := fn(ctx)
		if errors.Is(err, context.Canceled) && ctx.Err() != nil {
			err = nil
		}
		r.mu.Lock()
		r.err = err
		r.mu.Unlock()
	}()
	return nil
}

// Stop cancels the run and waits for it to return; it returns the run's
// error. It does nothing if the runner was never started.
func (r *Runner) Stop() error {
	r.mu.Lock()
	cancel, done := r.cancel, r.done
	r.mu.Unlock()
	if done == nil {
		return nil
	}
	cancel()
	<-done
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// Done is closed when the current run has ended (nil before Start).
func (r *Runner) Done() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.done
}

// Every calls fn every interval until stop is closed; fn's context ends
// when stop is closed, so that a round under way is cut short too. It
// returns when stop is closed: run it in its own goroutine.
func Every(stop <-chan struct{}, interval time.Duration, fn func(ctx context.Context)) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			fn(ctx)
		}
	}
}
