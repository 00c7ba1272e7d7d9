package kafka

import (
	"context"
	"errors"
	"fmt"

	"github.com/mothership-dev/mothership/internal/resource"
	"github.com/mothership-dev/mothership/internal/runtime/store"
)

// stuckLayer names the lowest layer that has not caught up with a
// cluster's generation: the one its PKC names when the PKC is stuck
// itself, pkc while it has not placed or realized the cluster, else kafka.
// A paused cluster is left as it is on purpose.
func (s *Service) stuckLayer(ctx context.Context, tx store.Tx, r store.Resource) (string, string, bool, error) {
	if r.Status.Reason == "PAUSED" {
		return "", "", true, nil
	}
	st, err := resource.Decode[resource.LKCStatus](r.Status.Detail)
	if err != nil {
		return "", "", false, err
	}
	if st.PKC == "" {
		return "pkc", "no PKC has taken the cluster yet", false, nil
	}
	pkc, err := store.ObservedResource(ctx, tx, pkcStatus, st.PKC)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return "pkc", fmt.Sprintf("pkc has not reported %s", st.PKC), false, nil
	case err != nil:
		return "", "", false, err
	}
	if pkc.Status.Stuck != nil {
		return pkc.Status.Stuck.Layer, fmt.Sprintf("%s waits: %s", pkc.ID, pkc.Status.Stuck.Message), false, nil
	}
	ps, err := resource.Decode[resource.PKCStatus](pkc.Status.Detail)
	if err != nil {
		return "", "", false, err
	}
	if ts, ok := ps.Tenants[r.ID]; !ok || ts.ObservedGeneration < r.Generation || pkc.Status.ObservedGeneration < ts.PKCGeneration {
		return "pkc", fmt.Sprintf("%s has not realized generation %d of the cluster", pkc.ID, r.Generation), false, nil
	}
	return "kafka", fmt.Sprintf("%s realized generation %d; kafka has not recorded it", pkc.ID, r.Generation), false, nil
}
