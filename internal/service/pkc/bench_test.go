package pkc

import (
	"context"
	"fmt"
	"testing"

	"github.com/mothership-dev/mothership/internal/resource"
	"github.com/mothership-dev/mothership/internal/runtime/store"
	"github.com/mothership-dev/mothership/internal/runtime/store/storetest"
)

// seedFleet stores n shared PKCs of 10 tenants each over 100 sites (so
// that every site has full PKCs and one with room), as a fleet of n PKCs
// looks to the pkc service, and observes their LKCs.
func seedFleet(tb testing.TB, st store.Store, n int) {
	tb.Helper()
	err := st.Update(tb.Context(), func(ctx context.Context, tx store.Tx) error {
		for i := range n {
			site := fmt.Sprintf("r%02d", i%100)
			ps := resource.PKCSpec{Cloud: "AWS", Region: site, Availability: resource.MultiZone, Brokers: SharedBrokers,
				Zones: zones(site, resource.MultiZone), Tenants: map[string]resource.Tenant{}}
			tenants := 10
			if i >= n-100 {
				tenants = 5 // the last PKC of each site has room
			}
			for j := range tenants {
				lkc := fmt.Sprintf("lkc-%06d%02d", i, j)
				ps.Tenants[lkc] = resource.Tenant{Prefix: lkc + ".", CKU: 1}
				observeLKC(tb, ctx, tx, lkc, 1, resource.LKCSpec{DisplayName: lkc, Type: resource.TypeBasic, CKU: 1,
					Cloud: "AWS", Region: site, Availability: resource.SingleZone})
			}
			if _, err := tx.ResourceCreate(ctx, store.CreateParams{Kind: resource.KindPKC, ID: fmt.Sprintf("pkc-%06d", i), Spec: resource.Encode(ps)}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
}

// BenchmarkReconcile measures one reconcile, in its own transaction, as
// the fleet grows: a reconcile's cost must not grow with the number of
// PKCs. "resize" changes a placed tenant; "place" places a new one on a
// shared PKC of its site.
func BenchmarkReconcile(b *testing.B) {
	for _, n := range []int{100, 10_000} {
		b.Run(fmt.Sprintf("pkcs=%d", n), func(b *testing.B) {
			ctx := b.Context()
			st := storetest.Open(b, "sqlite", Name, []string{resource.KindPKC})
			seedFleet(b, st, n)
			s := New(Config{MaxTenants: 10})
			run := func(b *testing.B, id string, gen int64, spec resource.LKCSpec) {
				if err := st.Update(ctx, func(ctx context.Context, tx store.Tx) error {
					observeLKC(b, ctx, tx, id, gen, spec)
					return s.reconcile(ctx, tx, id)
				}); err != nil {
					b.Fatal(err)
				}
			}
			lkc := resource.LKCSpec{DisplayName: "x", Type: resource.TypeBasic, Cloud: "AWS", Region: "r07", Availability: resource.SingleZone}
			run(b, "lkc-warmup", 1, lkc) // a first reconcile may set things up
			b.Run("resize", func(b *testing.B) {
				id := fmt.Sprintf("lkc-%06d%02d", n/2, 3)
				spec := lkc
				spec.Region = fmt.Sprintf("r%02d", n/2%100)
				for i := range b.N {
					spec.CKU = 1 + i%2
					run(b, id, int64(2+i), spec)
				}
			})
			b.Run("place", func(b *testing.B) {
				for i := range b.N {
					run(b, fmt.Sprintf("lkc-new%s-%d", b.Name()[len(b.Name())-1:], i), 1, lkc)
				}
			})
		})
	}
}
