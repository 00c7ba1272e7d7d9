// Package sim is the built-in cloud simulator: it behaves like a real cloud
// to the services that call it (operations take time, a share of calls is
// answered with a rate limit and Retry-After) without creating anything.
package sim

import (
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/mothership-dev/mothership/internal/cloud"
)

// Config tunes the simulator.
type Config struct {
	// OperationTime is how long an operation takes (default 300ms); a node
	// pool takes it per step of up to 3 nodes.
	OperationTime time.Duration
	// RateLimitShare is the share of calls refused with a rate limit
	// (default 0).
	RateLimitShare float64
	// RetryAfter is the delay a rate limit asks for (default 200ms).
	RetryAfter time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Cloud is a simulated cloud. It keeps its state in memory: after a restart
// every ensure starts a fresh operation, as a reconciler must expect.
type Cloud struct {
	cfg Config
	mu  sync.Mutex
	ops map[string]*op
	rnd *rand.Rand
}

type op struct {
	target   string
	started  time.Time
	duration time.Duration
}

// New returns a simulator.
func New(cfg Config) *Cloud {
	cfg.OperationTime = cmp.Or(cfg.OperationTime, 300*time.Millisecond)
	cfg.RetryAfter = cmp.Or(cfg.RetryAfter, 200*time.Millisecond)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Cloud{cfg: cfg, ops: map[string]*op{}, rnd: rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))}
}

var _ cloud.Provider = (*Cloud)(nil)

// EnsureNodePool implements cloud.Provider.
func (c *Cloud) EnsureNodePool(ctx context.Context, cloudName, region, name string, nodes int) (cloud.Operation, error) {
	steps := max((nodes+2)/3, 1)
	return c.ensure(ctx, "nodepool/"+cloudName+"/"+region+"/"+name, fmt.Sprint(nodes), time.Duration(steps)*c.cfg.OperationTime,
		func(frac float64) string { return fmt.Sprintf("%d/%d nodes ready", int(frac*float64(nodes)), nodes) })
}

// EnsureNetwork implements cloud.Provider.
func (c *Cloud) EnsureNetwork(ctx context.Context, cloudName, region, id string, present bool) (cloud.Operation, error) {
	return c.ensure(ctx, "network/"+cloudName+"/"+region+"/"+id, fmt.Sprint(present), c.cfg.OperationTime,
		func(frac float64) string { return fmt.Sprintf("%d%% done", int(frac*100)) })
}

func (c *Cloud) ensure(ctx context.Context, key, target string, duration time.Duration, progress func(float64) string) (cloud.Operation, error) {
	if err := ctx.Err(); err != nil {
		return cloud.Operation{}, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cfg.RateLimitShare > 0 && c.rnd.Float64() < c.cfg.RateLimitShare {
		return cloud.Operation{}, &cloud.RateLimitedError{After: c.cfg.RetryAfter}
	}
	now := c.cfg.Now()
	o := c.ops[key]
	if o == nil || o.target != target {
		o = &op{target: target, started: now, duration: duration}
		c.ops[key] = o
	}
	elapsed := now.Sub(o.started)
	if elapsed >= o.duration {
		return cloud.Operation{Done: true, Progress: progress(1)}, nil
	}
	return cloud.Operation{Progress: progress(float64(elapsed) / float64(o.duration))}, nil
}
