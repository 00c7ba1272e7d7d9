package sync

import (
	"context"
	"errors"
	"fmt"

	"connectrpc.com/connect"

	"github.com/mothership-dev/mothership/internal/api"
	"github.com/mothership-dev/mothership/internal/resource"
	"github.com/mothership-dev/mothership/internal/runtime/store"
)

// MaxBuckets bounds the buckets of one usage report.
const MaxBuckets = 10_000

// ReportUsage records the metered buckets a site's satellite reported,
// each as its own meter resource, whole: a bucket reported again with the
// same totals changes nothing, one that grew is replaced, so a bucket
// resent after a broken link counts once. A final bucket is not reopened.
func (s *Service) ReportUsage(ctx context.Context, site resource.Site, rep resource.UsageReport) error {
	if len(rep.Buckets) > MaxBuckets {
		return api.Invalid("/buckets", "at most %d buckets per report", MaxBuckets)
	}
	for i, b := range rep.Buckets {
		if err := b.Validate(); err != nil {
			return api.Invalid(fmt.Sprintf("/buckets/%d", i), "%v", err)
		}
	}
	err := s.st.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		for _, b := range rep.Buckets {
			b.Site, b.Hour = site.String(), b.Hour.UTC()
			id := resource.MeterID(b.Cluster, b.Hour)
			r, err := tx.ResourceGet(ctx, resource.KindMeter, id)
			switch {
			case errors.Is(err, store.ErrNotFound):
				_, err = tx.ResourceCreate(ctx, store.CreateParams{Kind: resource.KindMeter, ID: id, Spec: resource.Encode(b)})
			case err != nil:
			default:
				old, derr := resource.Decode[resource.MeterSpec](r.Spec)
				if derr != nil {
					return derr
				}
				if old.Final || old.Site != b.Site {
					continue // closed, or another site's: kept as it is
				}
				_, err = tx.ResourceUpdateSpec(ctx, store.UpdateSpecParams{Kind: resource.KindMeter, ID: id, Spec: resource.Encode(b)})
			}
			if err != nil {
				return fmt.Errorf("meter %s: %w", id, err)
			}
		}
		return nil
	})
	var apiErr *api.Error
	if err != nil && !errors.As(err, &apiErr) {
		return fmt.Errorf("sync: usage of %s: %w", site, err)
	}
	return err
}

// reportUsage serves the link's ReportUsage.
func (s *Service) reportUsage(ctx context.Context, req *connect.Request[resource.UsageReport]) (*connect.Response[struct{}], error) {
	site := satelliteSite(ctx)
	if err := ownSite(site, req.Msg.Site); err != nil {
		return nil, err
	}
	if err := s.ReportUsage(ctx, site, *req.Msg); err != nil {
		return nil, linkError(ctx, s, "recording usage", site.String(), err)
	}
	s.seen(site, 0, 0)
	return connect.NewResponse(&struct{}{}), nil
}
