package quota

import (
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/mothership-dev/mothership/internal/api"
	"github.com/mothership-dev/mothership/internal/resource"
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
