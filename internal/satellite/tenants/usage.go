package tenants

import (
	"context"
	"strings"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/mothership-dev/mothership/internal/resource"
)

// Stored sums each tenant's stored bytes (a partition once: its largest
// replica) and partitions, for metering: a topic is the tenant's whose
// prefix it carries, or the only tenant's of a Dedicated cluster (no
// prefix).
func Stored(ctx context.Context, adm *kadm.Client, ts map[string]resource.Tenant) (map[string]int64, map[string]int, error) {
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
