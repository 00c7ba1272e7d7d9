package pkc

import (
	"context"
	"errors"
	"fmt"

	"github.com/mothership-dev/mothership/internal/resource"
	"github.com/mothership-dev/mothership/internal/runtime/store"
)

// stuckLayer names the lowest layer that has not caught up with a PKC's
// generation, from what the layers below reported: the satellite (its
// delivery), sync (no delivery of the generation yet), the cloud or
// capacity (the site's node pool), else pkc itself. A paused PKC is left
// as it is on purpose.
func (s *Service) stuckLayer(ctx context.Context, tx store.Tx, r store.Resource) (string, string, bool, error) {
	st, err := resource.Decode[resource.PKCStatus](r.Status.Detail)
	if err != nil {
		return "", "", false, err
	}
	if st.Paused != "" {
		return "", "", true, nil
	}
	spec, err := resource.Decode[resource.PKCSpec](r.Spec)
	if err != nil {
		return "", "", false, err
	}
	d, err := store.ObservedResource(ctx, tx, deliveryStatus, r.ID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return "sync", fmt.Sprintf("sync has not reported a delivery of %s to its satellite", r.ID), false, nil
	case err != nil:
		return "", "", false, err
	}
	ds, err := resource.Decode[resource.DeliverySpec](d.Spec)
	if err != nil {
		return "", "", false, err
	}
	switch {
	case d.Status.Stuck != nil:
		return d.Status.Stuck.Layer, d.Status.Stuck.Message, false, nil
	case ds.Item.Generation < r.Generation:
		return "sync", fmt.Sprintf("sync has not delivered generation %d of %s", r.Generation, r.ID), false, nil
	case d.Status.ObservedGeneration < d.Generation:
		return "satellite", fmt.Sprintf("the satellite of %s has not realized generation %d", ds.Site, r.Generation), false, nil
	}
	c, err := store.ObservedResource(ctx, tx, capacityStatus, spec.Site().ID())
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return "", "", false, err
	}
	if err == nil {
		cs, err := resource.Decode[resource.CapacityStatus](c.Status.Detail)
		if err != nil {
			return "", "", false, err
		}
		switch {
		case c.Status.Stuck != nil && cs.PKCs[r.ID] != spec.Brokers:
			return c.Status.Stuck.Layer, c.Status.Stuck.Message, false, nil
		case cs.PKCs[r.ID] != spec.Brokers:
			return "capacity", fmt.Sprintf("capacity has not sized %s's node pool for %s's %d brokers", spec.Site(), r.ID, spec.Brokers), false, nil
		}
	}
	return "pkc", fmt.Sprintf("every layer below realized generation %d; pkc has not recorded it: %s", r.Generation, r.Status.Message), false, nil
}
