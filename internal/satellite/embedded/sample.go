package embedded

import (
	"context"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/mothership-dev/mothership/internal/resource"
)

// DefaultSampleEvery is how often the driver samples what each cluster
// stores and its partitions.
const DefaultSampleEvery = time.Minute

// sampleLoop samples every cluster each SampleEvery until stop closes.
func (d *Driver) sampleLoop(stop <-chan struct{}) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-stop
		cancel()
	}()
	t := time.NewTicker(d.cfg.SampleEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			d.sampleAll(ctx)
		}
	}
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
		stored, parts, err := sampleCluster(sctx, kadm.NewClient(c.admin), ts)
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

// sampleCluster sums each tenant's stored bytes and partitions: a topic
// is the tenant's whose prefix it carries, or the only tenant's of a
// Dedicated cluster (no prefix).
func sampleCluster(ctx context.Context, adm *kadm.Client, ts map[string]resource.Tenant) (map[string]int64, map[string]int, error) {
	owner := func(topic string) string {
		for id, t := range ts {
			if t.Prefix == "" || strings.HasPrefix(topic, t.Prefix) {
				return id
			}
		}
		return ""
	}
	topics, err := adm.ListTopics(ctx)
	if err != nil {
		return nil, nil, err
	}
	parts := map[string]int{}
	for name, td := range topics {
		if lkc := owner(name); lkc != "" && !td.IsInternal {
			parts[lkc] += len(td.Partitions)
		}
	}
	dirs, err := adm.DescribeAllLogDirs(ctx, nil)
	if err != nil {
		return nil, nil, err
	}
	// A partition's size once: the largest of its replicas.
	largest := map[string]map[int32]int64{}
	dirs.Each(func(dir kadm.DescribedLogDir) {
		dir.Topics.Each(func(p kadm.DescribedLogDirPartition) {
			if largest[p.Topic] == nil {
				largest[p.Topic] = map[int32]int64{}
			}
			largest[p.Topic][p.Partition] = max(largest[p.Topic][p.Partition], p.Size)
		})
	})
	stored := map[string]int64{}
	for topic, ps := range largest {
		if td, ok := topics[topic]; (ok && td.IsInternal) || strings.HasPrefix(topic, "__") {
			continue
		}
		if lkc := owner(topic); lkc != "" {
			for _, size := range ps {
				stored[lkc] += size
			}
		}
	}
	return stored, parts, nil
}
