package quota

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mothership-dev/mothership/internal/api"
	"github.com/mothership-dev/mothership/internal/resource"
	"github.com/mothership-dev/mothership/internal/runtime/event"
	"github.com/mothership-dev/mothership/internal/runtime/store"
	"github.com/mothership-dev/mothership/internal/runtime/store/storetest"
)

func TestMain(m *testing.M) { storetest.Main(m) }

// TestConcurrentReservationsStayWithinTheLimit: sixty clusters asked for
// at once against a limit of fifty: fifty pass, ten get 402, on either
// backend.
func TestConcurrentReservationsStayWithinTheLimit(t *testing.T) {
	storetest.EachBackend(t, testConcurrentReservationsStayWithinTheLimit)
}

func testConcurrentReservationsStayWithinTheLimit(t *testing.T, backend string) {
	st := storetest.Open(t, backend, Name, []string{resource.KindQuota})
	s := New(Config{Defaults: resource.QuotaSpec{MaxClusters: 50, MaxCKU: 1000}})
	s.st = st
	var ok, refused atomic.Int64
	var wg sync.WaitGroup
	for i := range 60 {
		wg.Go(func() {
			err := s.Reserve(t.Context(), "org-1", fmt.Sprintf("lkc-%03d", i), 0)
			var e *api.Error
			switch {
			case err == nil:
				ok.Add(1)
			case errors.As(err, &e) && e.Status == http.StatusPaymentRequired && e.Code == api.CodeQuotaExceeded:
				refused.Add(1)
			default:
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if ok.Load() != 50 || refused.Load() != 10 {
		t.Fatalf("%d reserved, %d refused; want 50 and 10", ok.Load(), refused.Load())
	}
	// CKU: a resize of a reserved cluster counts only what it adds.
	if err := s.Reserve(t.Context(), "org-2", "lkc-big", 900); err != nil {
		t.Fatal(err)
	}
	if err := s.Reserve(t.Context(), "org-2", "lkc-big", 1000); err != nil {
		t.Fatalf("growing 900 → 1000 CKU within a 1000 limit: %v", err)
	}
	if err := s.Reserve(t.Context(), "org-2", "lkc-other", 1); err == nil {
		t.Fatal("a CKU beyond the limit was reserved")
	}
}

// TestUsageFollowsTheClustersEvents: quota counts what each cluster's
// events say, once however often an event is applied, with reservations
// on top until their event confirms them; a usage kept the old way (every
// cluster in the status) is moved into the index the first time it is used.
func TestUsageFollowsTheClustersEvents(t *testing.T) {
	storetest.EachBackend(t, testUsageFollowsTheClustersEvents)
}

func testUsageFollowsTheClustersEvents(t *testing.T, backend string) {
	ctx := t.Context()
	st := storetest.Open(t, backend, Name, []string{resource.KindQuota})
	s := New(Config{Defaults: resource.QuotaSpec{MaxClusters: 3, MaxCKU: 10}})
	s.st = st
	versions := map[string]int64{}
	// apply records a cluster's event and reconciles it, as the reactor
	// does; again applies the same event once more (a resync).
	apply := func(id string, cku int, deleted bool) {
		t.Helper()
		versions[id]++
		r := store.Resource{ID: id, Kind: resource.KindLKC, Organization: "org-1", Generation: versions[id], Version: versions[id],
			Spec: resource.Encode(resource.LKCSpec{CKU: cku})}
		if deleted {
			now := time.Now()
			r.DeletedAt = &now
		}
		data, _ := json.Marshal(r)
		for range 2 {
			err := st.Update(ctx, func(ctx context.Context, tx store.Tx) error {
				if _, err := tx.ObservedPut(ctx, lkcDesired, event.New("kafka", resource.KindLKC, event.Desired, id, r.Generation, r.Version, time.Now(), data)); err != nil {
					return err
				}
				return s.reconcile(ctx, tx, id)
			})
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	inUse := func(org string) resource.QuotaStatus {
		t.Helper()
		var u usage
		err := st.View(ctx, func(ctx context.Context, tx store.Tx) error {
			q, err := tx.ResourceGet(ctx, resource.KindQuota, quotaID(org))
			if err != nil {
				return err
			}
			u, err = resource.Decode[usage](q.Status.Detail)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(u.Legacy) > 0 {
			t.Fatalf("%s still keeps every cluster in its status: %v", org, u.Legacy)
		}
		return u.QuotaStatus
	}
	want := func(org string, clusters, cku int) {
		t.Helper()
		if got := inUse(org); got.Clusters != clusters || got.CKU != cku {
			t.Fatalf("%s uses %d clusters and %d CKU, want %d and %d", org, got.Clusters, got.CKU, clusters, cku)
		}
	}
	refused := func(err error) bool {
		var e *api.Error
		return errors.As(err, &e) && e.Code == api.CodeQuotaExceeded
	}

	if err := s.Reserve(ctx, "org-1", "lkc-a", 2); err != nil {
		t.Fatal(err)
	}
	want("org-1", 1, 2) // reserved
	apply("lkc-a", 2, false)
	want("org-1", 1, 2) // confirmed, counted once
	apply("lkc-b", 4, false)
	apply("lkc-c", 1, false)
	want("org-1", 3, 7)
	if err := s.Reserve(ctx, "org-1", "lkc-d", 1); !refused(err) {
		t.Fatalf("a fourth cluster of three: %v, want quota_exceeded", err)
	}
	if err := s.Reserve(ctx, "org-1", "lkc-b", 6); err != nil {
		t.Fatalf("growing lkc-b 4 → 6 CKU, 9 of 10 in all: %v", err)
	}
	want("org-1", 3, 9)
	if err := s.Reserve(ctx, "org-1", "lkc-c", 3); !refused(err) {
		t.Fatalf("growing lkc-c 1 → 3 CKU, 11 of 10: %v, want quota_exceeded", err)
	}
	apply("lkc-b", 6, false)
	want("org-1", 3, 9)
	apply("lkc-a", 2, true)
	want("org-1", 2, 7)
	if err := s.Reserve(ctx, "org-1", "lkc-d", 1); err != nil {
		t.Fatalf("a cluster where one was deleted: %v", err)
	}
	want("org-1", 3, 8)

	// A usage kept before the index: every cluster in the status.
	until := time.Now().Add(time.Minute)
	legacy := map[string]legacyEntry{"lkc-x": {Confirmed: true, CKU: 2}, "lkc-y": {Confirmed: true, CKU: 1, Reserved: 3, ReservedUntil: &until}}
	err := st.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		q, err := tx.ResourceCreate(ctx, store.CreateParams{Kind: resource.KindQuota, ID: quotaID("org-2"), Organization: "org-2",
			Spec: resource.Encode(resource.QuotaSpec{MaxClusters: 50, MaxCKU: 100})})
		if err != nil {
			return err
		}
		_, err = tx.ResourceSetStatus(ctx, resource.KindQuota, q.ID, store.Status{Phase: resource.PhaseReady,
			Detail: resource.Encode(map[string]any{"clusters": 2, "cku": 5, "by_cluster": legacy})})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Reserve(ctx, "org-2", "lkc-z", 1); err != nil {
		t.Fatal(err)
	}
	want("org-2", 3, 6) // lkc-x 2, lkc-y reserved 3, lkc-z 1
	err = st.View(ctx, func(ctx context.Context, tx store.Tx) error {
		cku, known, err := confirmedCKU(ctx, tx, "lkc-x")
		if err != nil || !known || cku != 2 {
			return fmt.Errorf("lkc-x counts %d CKU (known %v, %v) after the move, want 2", cku, known, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
