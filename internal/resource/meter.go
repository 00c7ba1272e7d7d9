package resource

import (
	"fmt"
	"strings"
	"time"
)

// KindMeter is one cluster's metered usage in one hour, as its site's
// satellite measured it: full state, flowing up from the data plane.
const KindMeter = "meter" // sync

// MeterSpec is a cluster's usage in the hour starting at Hour, so far:
// the bytes its clients sent and received, the bytes it stored (the
// average of the hour's samples) and its partitions (the most at once). A satellite reports a bucket
// again, whole, as it grows, and once more when the hour ended (Final);
// nothing is a delta, so a bucket reported twice counts once.
type MeterSpec struct {
	Site     string    `json:"site"`
	Cluster  string    `json:"cluster"`
	Hour     time.Time `json:"hour"`
	BytesIn  int64     `json:"bytes_in"`
	BytesOut int64     `json:"bytes_out"`
	// StoredBytes and Partitions are 0 where the driver does not sample
	// them.
	StoredBytes int64 `json:"stored_bytes,omitempty"`
	Partitions  int   `json:"partitions,omitempty"`
	Final       bool  `json:"final,omitempty"`
}

// MeterID is the id of cluster's bucket of hour.
func MeterID(cluster string, hour time.Time) string {
	return fmt.Sprintf("%s@%s", cluster, hour.UTC().Format("2006010215"))
}

// Validate says what is wrong with a bucket a satellite reported.
func (m MeterSpec) Validate() error {
	switch {
	case !strings.HasPrefix(m.Cluster, "lkc-") || len(m.Cluster) > 64:
		return fmt.Errorf("bucket of %q: cluster must be an lkc id", m.Cluster)
	case m.Hour.IsZero() || !m.Hour.Equal(m.Hour.Truncate(time.Hour)):
		return fmt.Errorf("bucket of %s: hour %s must start a UTC hour", m.Cluster, m.Hour)
	case m.BytesIn < 0 || m.BytesOut < 0 || m.StoredBytes < 0 || m.Partitions < 0:
		return fmt.Errorf("bucket of %s at %s: byte counts are 0 or more", m.Cluster, m.Hour)
	}
	return nil
}

// UsageReport is a satellite's report of metered buckets (the link's
// ReportUsage procedure).
type UsageReport struct {
	Site    string      `json:"site"`
	Buckets []MeterSpec `json:"buckets"`
}

// ReportUsageProcedure is the link's unary call that reports buckets.
const ReportUsageProcedure = LinkPath + "ReportUsage"
