// Package cloud is the interface to cloud providers that capacity and
// network use: every operation is asynchronous and idempotent ("ensure"),
// so a reconciler calls it again until it reports done, and a provider may
// refuse a call with a rate limit that says when to come back.
package cloud

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Operation is the state of an asynchronous cloud operation.
type Operation struct {
	// Done is true once the resource is in the asked state.
	Done bool
	// Progress is a short human-readable state ("3/12 nodes ready").
	Progress string
}

// Provider is a cloud. Calls are idempotent: asking again for the same
// state reports on the operation already running.
type Provider interface {
	// EnsureNodePool sizes the node pool name of the site's Kubernetes
	// cluster to nodes; 0 deletes it.
	EnsureNodePool(ctx context.Context, cloud, region, name string, nodes int) (Operation, error)
	// EnsureNetwork creates the network id, or deletes it when absent.
	EnsureNetwork(ctx context.Context, cloud, region, id string, present bool) (Operation, error)
}

// RateLimitedError is a cloud's 429: come back After.
type RateLimitedError struct {
	After time.Duration
}

// RetryAfter says when to call again; the runtime's reactor honours it.
func (e *RateLimitedError) RetryAfter() time.Duration { return e.After }

func (e *RateLimitedError) Error() string {
	return fmt.Sprintf("cloud API rate limit (429); retry after %s", e.After)
}

// IsRateLimited reports whether err is a rate limit.
func IsRateLimited(err error) bool {
	var rl *RateLimitedError
	return errors.As(err, &rl)
}

// InProgressError tells the runtime to call a reconciler again after a
// backoff, because an operation it started is still running.
type InProgressError struct {
	// Progress is the operation's own account of how far it is.
	Progress string
}

func (e *InProgressError) Error() string { return "cloud operation in progress: " + e.Progress }

// Wait returns nil once op is done, else an InProgressError.
func Wait(op Operation) error {
	if op.Done {
		return nil
	}
	return &InProgressError{Progress: op.Progress}
}

// Reason turns the error of a reconcile that called a cloud into the
// status reason and message users see while the resource waits.
func Reason(err error) (reason, message string) {
	var inProgress *InProgressError
	switch {
	case errors.As(err, &inProgress):
		return "IN_PROGRESS", inProgress.Progress
	case IsRateLimited(err):
		return "CLOUD_RATE_LIMITED", err.Error()
	}
	return "CLOUD_ERROR", err.Error()
}
