package audit_test

import (
	"context"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mothership-dev/mothership/internal/resource"
	"github.com/mothership-dev/mothership/internal/runtime/store"
	"github.com/mothership-dev/mothership/internal/runtime/store/sqlite"
	"github.com/mothership-dev/mothership/internal/service/audit"
	"github.com/mothership-dev/mothership/internal/service/svcapi"
)

// TestRecordsPastTheRetentionArePurged: the upkeep purges the records
// older than the retention, in rounds of pages, and keeps the others.
func TestRecordsPastTheRetentionArePurged(t *testing.T) {
	var now atomic.Int64
	now.Store(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	clock := func() time.Time { return time.Unix(0, now.Load()) }
	st, err := sqlite.Open(t.Context(), sqlite.Config{Path: filepath.Join(t.TempDir(), "audit.db"), Service: audit.Name,
		Owns: []string{resource.KindAudit}, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	svc := audit.New(audit.Config{Retention: 24 * time.Hour, Now: clock})
	h := svc.Host()
	h.Attach(st)
	record := func(n int, subject string) {
		for range n {
			err := svc.Record(t.Context(), audit.Request{Principal: svcapi.Principal{Organization: "org-1", Owner: "u-1"},
				Method: "PATCH", Path: "/cmk/v2/clusters/" + subject, Route: "/cmk/v2/clusters/{id}", Subject: subject, Status: 200, At: clock()})
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	record(1200, "lkc-old") // more than a page
	now.Add(int64(20 * time.Hour))
	record(3, "lkc-new")
	now.Add(int64(5 * time.Hour)) // the old ones are 25 h old, the new ones 5 h

	rounds := 0
	for more := true; more; rounds++ {
		err := st.Update(t.Context(), func(ctx context.Context, tx store.Tx) (err error) {
			more, err = h.Upkeep(ctx, tx)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	var left []string
	err = st.View(t.Context(), func(ctx context.Context, tx store.Tx) error {
		rs, err := tx.ResourceList(ctx, store.ListParams{Kind: resource.KindAudit, IncludeDeleted: true})
		for _, r := range rs {
			left = append(left, r.ID[:len("a-lkc-new")])
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 3 || left[0] != "a-lkc-new" || left[2] != "a-lkc-new" {
		t.Fatalf("after the purge %d records are left (%v…), want the 3 of lkc-new", len(left), left[:min(len(left), 3)])
	}
	if rounds < 2 {
		t.Fatalf("the purge took %d round, want more than one page's", rounds)
	}
}
