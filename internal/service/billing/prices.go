package billing

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/mothership-dev/mothership/internal/api"
	"github.com/mothership-dev/mothership/internal/resource"
	"github.com/mothership-dev/mothership/internal/runtime/store"
	"github.com/mothership-dev/mothership/internal/service/svcapi"
)

// PricesPath is the operators' price book.
const PricesPath = "/billing/v1/prices"

// PriceBook is the price book as the API shows it: every version, the
// configured one first (from the beginning of time).
type PriceBook struct {
	APIVersion string                  `json:"api_version"`
	Kind       string                  `json:"kind"`
	Versions   []resource.PriceVersion `json:"versions"`
}

// PriceBookUpdate adds a version to the price book, in force from
// EffectiveFrom (default now; never in the past, so that lines already
// reported keep their prices).
type PriceBookUpdate struct {
	EffectiveFrom *time.Time       `json:"effective_from,omitempty"`
	Prices        []resource.Price `json:"prices"`
}

// lineTypes are the line types the service prices.
var lineTypes = []string{LineCKUs, LineBase, LineWrite, LineRead, LineStorage, LinePartition}

// GetPrices answers GET /billing/v1/prices to an operator.
func (s *Service) GetPrices(ctx context.Context, p svcapi.Principal) (PriceBook, error) {
	if err := p.RequireFleetAdmin(); err != nil {
		return PriceBook{}, err
	}
	var out PriceBook
	err := s.st.View(ctx, func(ctx context.Context, tx store.Tx) error {
		b, err := s.book(ctx, tx)
		out = PriceBook{APIVersion: "billing/v1", Kind: "PriceBook", Versions: b.Versions}
		return err
	})
	return out, err
}

// SetPrices adds a version of the price book (operators only): every
// mistake of it is named at once.
func (s *Service) SetPrices(ctx context.Context, p svcapi.Principal, in PriceBookUpdate) (PriceBook, error) {
	if err := p.RequireFleetAdmin(); err != nil {
		return PriceBook{}, err
	}
	now := s.cfg.Now().UTC()
	from := now
	var errs []*api.Error
	if in.EffectiveFrom != nil {
		from = in.EffectiveFrom.UTC()
		if from.Before(now.Add(-time.Minute)) {
			errs = append(errs, api.Invalid("/effective_from", "effective_from %s is in the past: lines already reported keep their prices; give a time from now on", from.Format(time.RFC3339)))
		}
	}
	if len(in.Prices) == 0 {
		errs = append(errs, api.Invalid("/prices", "prices is the whole book in force from then on: at least one price"))
	}
	seen := map[resource.Price]bool{}
	for i, pr := range in.Prices {
		at := fmt.Sprintf("/prices/%d", i)
		if !slices.Contains(lineTypes, pr.LineType) {
			errs = append(errs, api.Invalid(at+"/line_type", "line_type %q: want one of %s", pr.LineType, strings.Join(lineTypes, ", ")))
		}
		if pr.SKU != "" && !slices.Contains([]string{resource.TypeBasic, resource.TypeStandard, resource.TypeDedicated}, pr.SKU) {
			errs = append(errs, api.Invalid(at+"/sku", "sku %q: want Basic, Standard or Dedicated, or none for every SKU", pr.SKU))
		}
		if pr.Cloud != "" && !slices.Contains(resource.Clouds, pr.Cloud) {
			errs = append(errs, api.Invalid(at+"/cloud", "cloud %q: want one of %s, or none for every cloud", pr.Cloud, strings.Join(resource.Clouds, ", ")))
		}
		if pr.UnitMicros < 0 {
			errs = append(errs, api.Invalid(at+"/unit_micros", "unit_micros is a price in millionths of the currency, 0 or more"))
		}
		key := pr
		key.UnitMicros = 0
		if seen[key] {
			errs = append(errs, api.Invalid(at, "a second price for the same line type, SKU, cloud and region"))
		}
		seen[key] = true
	}
	if err := api.Join(errs...); err != nil {
		return PriceBook{}, err
	}
	var out PriceBook
	err := s.st.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		r, err := tx.ResourceGet(ctx, resource.KindPriceBook, priceBookID)
		exists := err == nil
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		var set resource.PriceBookSpec
		if exists {
			if set, err = resource.Decode[resource.PriceBookSpec](r.Spec); err != nil {
				return err
			}
		}
		if n := len(set.Versions); n > 0 && from.Before(set.Versions[n-1].From) {
			return api.Invalid("/effective_from", "a version is in force from %s already: a new one starts then or later",
				set.Versions[n-1].From.Format(time.RFC3339))
		}
		set.Versions = append(set.Versions, resource.PriceVersion{From: from, By: p.Owner, Prices: in.Prices})
		if exists {
			_, err = tx.ResourceUpdateSpec(ctx, store.UpdateSpecParams{Kind: resource.KindPriceBook, ID: priceBookID, Spec: resource.Encode(set)})
		} else {
			_, err = tx.ResourceCreate(ctx, store.CreateParams{Kind: resource.KindPriceBook, ID: priceBookID, Spec: resource.Encode(set)})
		}
		if err != nil {
			return err
		}
		b, err := s.book(ctx, tx)
		out = PriceBook{APIVersion: "billing/v1", Kind: "PriceBook", Versions: b.Versions}
		return err
	})
	return out, svcapi.StoreError("price book", priceBookID, err)
}
