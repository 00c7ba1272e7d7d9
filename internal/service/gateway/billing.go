package gateway

import (
	"context"
	"net/http"

	"github.com/mothership-dev/mothership/internal/api"
	"github.com/mothership-dev/mothership/internal/service/billing"
	"github.com/mothership-dev/mothership/internal/service/svcapi"
)

// Billing is what the gateway asks of the billing service.
type Billing interface {
	ListCosts(ctx context.Context, p svcapi.Principal, q billing.CostQuery) (billing.CostList, error)
	GetPrices(ctx context.Context, p svcapi.Principal) (billing.PriceBook, error)
	SetPrices(ctx context.Context, p svcapi.Principal, in billing.PriceBookUpdate) (billing.PriceBook, error)
}

var (
	_ Billing = (*billing.Service)(nil)
	_ Billing = (*billing.Client)(nil)
)

// billingRoutes are the costs, for an organization's admins (billing
// checks who may ask), and the price book, for the operators.
func (g *Gateway) billingRoutes() []Route {
	return []Route{
		{Method: http.MethodGet, Pattern: billing.CostsPath, Need: svcapi.Read, handler: func(w http.ResponseWriter, r *http.Request, p svcapi.Principal) error {
			v := r.URL.Query()
			q := billing.CostQuery{Organization: v.Get("organization"), StartDate: v.Get("start_date"), EndDate: v.Get("end_date"),
				Granularity: v.Get("granularity"), PageToken: v.Get("page_token")}
			var err error
			if q.PageSize, err = intParam(v, "page_size", 0, 1, billing.MaxPageSize); err != nil {
				return err
			}
			// metadata.next is a path: the gateway makes it absolute.
			return ok(w)(g.cfg.Billing.ListCosts(r.Context(), p, q))
		}},
		{Method: http.MethodGet, Pattern: billing.PricesPath, Fleet: true, handler: func(w http.ResponseWriter, r *http.Request, p svcapi.Principal) error {
			return ok(w)(g.cfg.Billing.GetPrices(r.Context(), p))
		}},
		{Method: http.MethodPost, Pattern: billing.PricesPath, Fleet: true, handler: func(w http.ResponseWriter, r *http.Request, p svcapi.Principal) error {
			var in billing.PriceBookUpdate
			if e := api.Decode(r.Body, &in); e != nil {
				return e
			}
			out, err := g.cfg.Billing.SetPrices(r.Context(), p, in)
			return created(w, err, http.StatusCreated, billing.PricesPath, out)
		}},
	}
}
