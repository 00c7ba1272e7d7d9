package satellite_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/mothership-dev/mothership/internal/resource"
	"github.com/mothership-dev/mothership/internal/satellite"
)

// oneBundle is a link that sends one bundle, then waits.
type oneBundle struct{ b resource.Bundle }

func (l oneBundle) Watch(ctx context.Context, after int64, fn func(resource.Bundle) error) error {
	if after < l.b.Version {
		if err := fn(l.b); err != nil {
			return err
		}
	}
	<-ctx.Done()
	return ctx.Err()
}

func (oneBundle) Report(context.Context, resource.Report) error { return nil }

// gated holds the Apply of "slow" until released, and records the others.
type gated struct {
	release chan struct{}
	mu      sync.Mutex
	done    map[string]time.Time
}

func (d *gated) Apply(ctx context.Context, id string, item resource.BundleItem, _ func(resource.Realized)) (resource.Realized, error) {
	if id == "pkc-slow" {
		select {
		case <-d.release:
		case <-ctx.Done():
			return resource.Realized{}, ctx.Err()
		}
	}
	d.mu.Lock()
	d.done[id] = time.Now()
	d.mu.Unlock()
	return resource.Realized{Generation: item.Generation, Phase: resource.PhaseProvisioned}, nil
}
func (d *gated) Remove(context.Context, string) error { return nil }
func (d *gated) Present() ([]string, error)           { return nil, nil }
func (d *gated) Close() error                         { return nil }

func (d *gated) applied(id string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	_, ok := d.done[id]
	return ok
}

// TestALongApplyDoesNotHoldTheOthersBack: a PKC whose resize takes long
// does not delay its neighbours on the site, and the bundle is held (saved
// and announced) before anything is realized.
func TestALongApplyDoesNotHoldTheOthersBack(t *testing.T) {
	site := resource.Site{Cloud: "AWS", Region: "us-west-2"}
	b := resource.Bundle{Site: site.String(), Version: 1, Resources: map[string]resource.BundleItem{}}
	for _, id := range []string{"pkc-a", "pkc-slow", "pkc-z"} {
		b.Resources[id] = resource.BundleItem{Kind: "other", Generation: 1}
	}
	drv := &gated{release: make(chan struct{}), done: map[string]time.Time{}}
	held := make(chan int64, 1)
	agent, err := satellite.New(satellite.Config{Site: site, Link: oneBundle{b}, Driver: drv, DataDir: t.TempDir(),
		OnBundle: func(b resource.Bundle, _ time.Time) { held <- b.Version }})
	if err != nil {
		t.Fatal(err)
	}
	if err := agent.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer agent.Stop()
	select {
	case v := <-held:
		if v != 1 {
			t.Fatalf("OnBundle got version %d, want 1", v)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the bundle was never announced as held")
	}
	deadline := time.Now().Add(10 * time.Second)
	for !(drv.applied("pkc-a") && drv.applied("pkc-z")) {
		if time.Now().After(deadline) {
			t.Fatal("pkc-a and pkc-z waited for pkc-slow")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if drv.applied("pkc-slow") {
		t.Fatal("pkc-slow was applied before it was released")
	}
	close(drv.release)
	for !drv.applied("pkc-slow") {
		if time.Now().After(deadline) {
			t.Fatal("pkc-slow was never applied")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
