package kafka

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/mothership-dev/mothership/internal/api"
	"github.com/mothership-dev/mothership/internal/resource"
	"github.com/mothership-dev/mothership/internal/runtime/store"
	"github.com/mothership-dev/mothership/internal/runtime/store/sqlite"
	"github.com/mothership-dev/mothership/internal/service/svcapi"
)

// heldQuota is a quota whose reservations wait until released, and keeps
// what it was asked.
type heldQuota struct {
	entered chan struct{}
	release chan struct{}
	mu      sync.Mutex
	asked   map[string]int
}

func (q *heldQuota) Reserve(ctx context.Context, _, lkc string, cku int) error {
	q.entered <- struct{}{}
	select {
	case <-q.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	q.asked[lkc] = cku
	return nil
}

// TestAResizeWaitingForQuotaHoldsNoOtherWrite: while quota takes its time
// to reserve a resize's CKU, the service's other writes (here a rename of
// another cluster) go through; the resize then lands with its reservation
// made for the size asked.
func TestAResizeWaitingForQuotaHoldsNoOtherWrite(t *testing.T) {
	ctx := t.Context()
	st, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(t.TempDir(), "kafka.db"), Service: Name, Owns: []string{resource.KindLKC}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	q := &heldQuota{entered: make(chan struct{}, 1), release: make(chan struct{}), asked: map[string]int{}}
	s := New(Config{Quotas: q})
	s.Host().Attach(st)
	spec := resource.LKCSpec{DisplayName: "orders", Type: resource.TypeDedicated, CKU: 2, Cloud: "AWS", Region: "us-west-2",
		Availability: resource.MultiZone, ReleasePriority: api.ReleaseRegular}
	err = st.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		for _, id := range []string{"lkc-big", "lkc-other"} {
			if _, err := tx.ResourceCreate(ctx, store.CreateParams{Kind: resource.KindLKC, ID: id, Organization: "org-1",
				Environment: "env-1", Spec: resource.Encode(spec)}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	admin := svcapi.Principal{Owner: "u-1", Organization: "org-1",
		Bindings: []svcapi.Binding{{Role: svcapi.RoleOrganizationAdmin, Scope: svcapi.Scope{Org: "org-1"}}}}

	resized := make(chan error, 1)
	go func() {
		_, err := s.UpdateCluster(ctx, admin, "lkc-big", api.ClusterUpdate{Spec: api.ClusterUpdateSpec{
			Config: &api.ClusterConfig{Kind: "Dedicated", CKU: 4}}})
		resized <- err
	}()
	select {
	case <-q.entered:
	case <-time.After(30 * time.Second):
		t.Fatal("the resize never asked quota")
	}
	renamed := make(chan error, 1)
	go func() {
		_, err := s.UpdateCluster(ctx, admin, "lkc-other", api.ClusterUpdate{Spec: api.ClusterUpdateSpec{DisplayName: ptr("payments")}})
		renamed <- err
	}()
	select {
	case err := <-renamed:
		if err != nil {
			t.Fatalf("rename: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the rename of another cluster waited for quota's reservation of the resize")
	}
	close(q.release)
	if err := <-resized; err != nil {
		t.Fatalf("resize: %v", err)
	}
	err = st.View(ctx, func(ctx context.Context, tx store.Tx) error {
		r, err := tx.ResourceGet(ctx, resource.KindLKC, "lkc-big")
		if err != nil {
			return err
		}
		got, err := resource.Decode[resource.LKCSpec](r.Spec)
		if err == nil && got.CKU != 4 {
			t.Errorf("lkc-big has %d CKU, want 4", got.CKU)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.asked["lkc-big"] != 4 || len(q.asked) != 1 {
		t.Fatalf("quota was asked %v, want lkc-big at 4 CKU only", q.asked)
	}
}
