package meter_test

import (
	"testing"
	"time"

	"github.com/mothership-dev/mothership/internal/satellite/meter"
)

// TestBucketsSurviveAnAbsenceAndCountOnce: bytes counted in three hours
// while sync cannot be reached are all kept, across a restart of the
// satellite, and reported when it is back, each hour final; a bucket
// reported as it was is not due again, one that grew since is.
func TestBucketsSurviveAnAbsenceAndCountOnce(t *testing.T) {
	dir := t.TempDir()
	now := time.Date(2026, 12, 7, 10, 15, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	m, err := meter.Open(dir, clock)
	if err != nil {
		t.Fatal(err)
	}
	m.Add("lkc-a", 100, 10)
	due := m.Due()
	if len(due) != 1 || due[0].BytesIn != 100 || due[0].Final {
		t.Fatalf("due in the hour: %+v", due)
	}
	m.Reported(due)
	if due := m.Due(); len(due) != 0 {
		t.Fatalf("due again though heard as it is: %+v", due)
	}
	m.Add("lkc-a", 50, 0) // grew
	if due := m.Due(); len(due) != 1 || due[0].BytesIn != 150 {
		t.Fatalf("a grown bucket: %+v", due)
	}
	// Away for three hours: nothing reported, and a restart meanwhile.
	for _, h := range []int{11, 12, 13} {
		now = time.Date(2026, 12, 7, h, 30, 0, 0, time.UTC)
		m.Add("lkc-a", int64(h), 0)
	}
	if err := m.Save(); err != nil {
		t.Fatal(err)
	}
	if m, err = meter.Open(dir, clock); err != nil {
		t.Fatal(err)
	}
	now = time.Date(2026, 12, 7, 14, 5, 0, 0, time.UTC)
	due = m.Due()
	var in int64
	for _, b := range due {
		if !b.Final {
			t.Errorf("a past hour not final: %+v", b)
		}
		in += b.BytesIn
	}
	if len(due) != 4 || in != 150+11+12+13 {
		t.Fatalf("after the absence: %d buckets, %d bytes in: %+v", len(due), in, due)
	}
	m.Reported(due)
	if due := m.Due(); len(due) != 0 {
		t.Fatalf("due after all were heard: %+v", due)
	}
}
