package simdriver_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mothership-dev/mothership/internal/resource"
	"github.com/mothership-dev/mothership/internal/satellite"
	"github.com/mothership-dev/mothership/internal/satellite/simdriver"
)

// link is the sync service as an agent sees it: bundles in, reports out.
type link struct {
	bundles chan resource.Bundle
	mu      sync.Mutex
	last    resource.Report
}

func (l *link) Watch(ctx context.Context, _ resource.Bundle, fn func(resource.Bundle) error) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case b := <-l.bundles:
			if err := fn(b); err != nil {
				return err
			}
		}
	}
}

// Report keeps each entry, as sync does: a report names only what changed.
func (l *link) Report(_ context.Context, rep resource.Report) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.last.Resources == nil {
		l.last.Resources = map[string]resource.Realized{}
	}
	l.last.Site, l.last.Version = rep.Site, rep.Version
	maps.Copy(l.last.Resources, rep.Resources)
	return nil
}

// holds reports whether the reports answer version with every PKC of want
// at its generation and brokers, and the agent realizes nothing else.
func (l *link) holds(agent *satellite.Agent, version int64, want map[string]resource.BundleItem) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, realized := agent.Realized(); l.last.Version != version || len(realized) != len(want) {
		return false
	}
	for id, item := range want {
		r := l.last.Resources[id]
		spec, _ := resource.Decode[resource.PKCSpec](item.Spec)
		got, _ := resource.Decode[resource.PKCRealized](r.Detail)
		if r.Generation != item.Generation || r.Phase != resource.PhaseProvisioned || got.Brokers != spec.Brokers {
			return false
		}
	}
	return true
}

// calls records the hooks, per PKC and generation.
type calls struct {
	mu                 sync.Mutex
	applied, realized  map[string]int
	removed            []string
	appliedAt, holdsAt map[string]time.Time
}

func key(id string, gen int64) string { return fmt.Sprintf("%s@%d", id, gen) }

// TestAgentRealizesThroughSimDriver: a real agent, fed bundles, realizes
// them through a driver that faults a third of first attempts: every
// generation ends realized, the hooks fire once per generation, and a PKC
// dropped from the bundle is removed.
func TestAgentRealizesThroughSimDriver(t *testing.T) {
	c := &calls{applied: map[string]int{}, realized: map[string]int{}, appliedAt: map[string]time.Time{}, holdsAt: map[string]time.Time{}}
	drv := newDriver(t, simdriver.Config{TimeFactor: factor(time.Millisecond), FailShare: 0.2, RateLimitShare: 0.2, Seed: 3,
		OnApplied: func(id string, item resource.BundleItem, at time.Time) {
			c.mu.Lock()
			defer c.mu.Unlock()
			c.applied[key(id, item.Generation)]++
			c.appliedAt[key(id, item.Generation)] = at
		},
		OnRealized: func(id string, item resource.BundleItem, _ resource.Realized, at time.Time) {
			c.mu.Lock()
			defer c.mu.Unlock()
			c.realized[key(id, item.Generation)]++
			c.holdsAt[key(id, item.Generation)] = at
		},
		OnRemoved: func(id string, _ time.Time) {
			c.mu.Lock()
			defer c.mu.Unlock()
			c.removed = append(c.removed, id)
		},
	})
	l := &link{bundles: make(chan resource.Bundle)}
	site := resource.Site{Cloud: "AWS", Region: "us-west-2"}
	agent, err := satellite.New(satellite.Config{Site: site, Link: l, Driver: drv, DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if err := agent.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = agent.Stop() })

	bundles := []map[string]resource.BundleItem{
		{"pkc-1": pkc(1, 3), "pkc-2": pkc(1, 6), "pkc-3": pkc(1, 3), "pkc-4": pkc(1, 3)},
		{"pkc-1": pkc(2, 6), "pkc-2": pkc(1, 6), "pkc-4": pkc(2, 3)},
	}
	for i, want := range bundles {
		version := int64(i + 1)
		l.bundles <- resource.Bundle{Site: site.String(), Version: version, Resources: want}
		deadline := time.Now().Add(20 * time.Second)
		for !l.holds(agent, version, want) {
			if time.Now().After(deadline) {
				l.mu.Lock()
				t.Fatalf("bundle %d not realized: last report %+v", version, l.last)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	if present, _ := drv.Present(); !slices.Equal(present, []string{"pkc-1", "pkc-2", "pkc-4"}) {
		t.Errorf("present: %v", present)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	want := map[string]int{"pkc-1@1": 1, "pkc-2@1": 1, "pkc-3@1": 1, "pkc-4@1": 1, "pkc-1@2": 1, "pkc-4@2": 1}
	if !maps.Equal(c.applied, want) || !maps.Equal(c.realized, want) || !slices.Equal(c.removed, []string{"pkc-3"}) {
		t.Errorf("hooks: applied %v, realized %v, removed %v", c.applied, c.realized, c.removed)
	}
	for k, at := range c.appliedAt {
		if !at.Before(c.holdsAt[k]) {
			t.Errorf("%s realized at %s, before it was applied at %s", k, c.holdsAt[k], at)
		}
	}
	if st := drv.Stats(); st.RateLimited+st.Failed == 0 {
		t.Errorf("no fault injected in %d operations: the test does not show retries", st.Operations)
	}
}
