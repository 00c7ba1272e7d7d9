package embedded

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/mothership-dev/mothership/internal/runtime/startstop"
	"github.com/mothership-dev/mothership/internal/satellite/tenants"
)

// DefaultSampleEvery is how often the driver samples what each cluster
// stores and its partitions.
const DefaultSampleEvery = time.Minute

// sampleLoop samples every cluster each SampleEvery until stop closes.
func (d *Driver) sampleLoop(stop <-chan struct{}) {
	startstop.Every(stop, d.cfg.SampleEvery, d.sampleAll)
}

// sampleAll tells cfg.Sample, per tenant (LKC) of every cluster, the
// bytes its topics store (once, not per replica) and their partitions.
func (d *Driver) sampleAll(ctx context.Context) {
	d.mu.Lock()
	clusters := make([]*cluster, 0, len(d.clusters))
	for _, c := range d.clusters {
		clusters = append(clusters, c)
	}
	d.mu.Unlock()
	for _, c := range clusters {
		p := c.tenants.Load()
		if p == nil || len(*p) == 0 {
			continue
		}
		ts := *p
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		stored, parts, err := tenants.Stored(sctx, kadm.NewClient(c.admin), ts)
		cancel()
		if err != nil {
			d.log.Debug("sampling a cluster's storage failed; the next round tries again", "pkc", c.id, "err", err)
			continue
		}
		for lkc, t := range ts {
			if t.RetainedUntil == nil { // a deleted cluster's data is kept, not billed
				d.cfg.Sample(lkc, stored[lkc], parts[lkc])
			}
		}
	}
}
