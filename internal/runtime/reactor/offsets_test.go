package reactor

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestLagCountsWhatIsNotApplied: the lag of a topic is what lies between
// the commit point and the high watermark, records fetched but not yet
// applied included; it falls as they are applied, and a partition
// revoked counts no more.
func TestLagCountsWhatIsNotApplied(t *testing.T) {
	tr := newTracker()
	tr.assign(map[string][]int32{"t": {0, 1}, "other": {0}})
	var toks []token
	for off := int64(5); off < 8; off++ {
		toks = append(toks, tr.add(&kgo.Record{Topic: "t", Partition: 0, Offset: off}))
	}
	tr.watermark("t", 0, 12)
	tr.watermark("t", 1, 40) // nothing fetched from it yet: counts none
	tr.watermark("other", 0, 3)
	if got := tr.lag("t"); got != 7 {
		t.Fatalf("lag with 3 records fetched of 7 behind: %d, want 7", got)
	}
	tr.finish(toks[:2]...)
	if got := tr.lag("t"); got != 5 {
		t.Fatalf("lag after applying 2: %d, want 5", got)
	}
	tr.watermark("t", 0, 10) // an older fetch's answer does not move it back
	if got := tr.lag("t"); got != 5 {
		t.Fatalf("lag after an older watermark: %d, want 5", got)
	}
	tr.drop(map[string][]int32{"t": {0}})
	if got := tr.lag("t"); got != 0 {
		t.Fatalf("lag of a revoked partition: %d, want 0", got)
	}
}
