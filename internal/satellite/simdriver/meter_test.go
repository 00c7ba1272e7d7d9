package simdriver_test

import (
	"sync"
	"testing"
	"time"

	"github.com/mothership-dev/mothership/internal/resource"
	"github.com/mothership-dev/mothership/internal/satellite/simdriver"
)

// TestDrawsTheUsageOfItsTenants: a metered simulated site draws usage for
// each cluster its PKCs host, and none for a cluster it does not.
func TestDrawsTheUsageOfItsTenants(t *testing.T) {
	d := newDriver(t, simdriver.Config{TimeFactor: 0.0001})
	item := resource.BundleItem{Kind: resource.KindPKC, Generation: 1, Spec: resource.Encode(resource.PKCSpec{Cloud: "AWS", Region: "us-west-2",
		Brokers: 3, Tenants: map[string]resource.Tenant{"lkc-one": {Prefix: "lkc-one_"}, "lkc-two": {Prefix: "lkc-two_"}}})}
	if r, _ := applyRetrying(t, d, "pkc-1", item); r.Phase != resource.PhaseProvisioned {
		t.Fatalf("applied: %+v", r)
	}
	var mu sync.Mutex
	in, samples := map[string]int64{}, map[string]int{}
	d.SetMeter(func(c string, i, _ int64) { mu.Lock(); in[c] += i; mu.Unlock() },
		func(c string, _ int64, p int) { mu.Lock(); samples[c] += p; mu.Unlock() }, 10*time.Millisecond)
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		done := in["lkc-one"] > 0 && in["lkc-two"] > 0 && samples["lkc-one"] > 0 && samples["lkc-two"] > 0
		other := len(in) + len(samples)
		mu.Unlock()
		if done {
			if other != 4 {
				t.Fatalf("usage drawn for clusters it does not host: %v %v", in, samples)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no usage drawn: %v %v", in, samples)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
