package kafka

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/mothership-dev/mothership/internal/api"
	"github.com/mothership-dev/mothership/internal/resource"
	"github.com/mothership-dev/mothership/internal/runtime/store"
	"github.com/mothership-dev/mothership/internal/service/svcapi"
)

// DefaultDeletedRetention is how long a deleted cluster stays restorable,
// with its data, unless the operator sets another.
const DefaultDeletedRetention = 7 * 24 * time.Hour

// ixPurge orders the deleted clusters by the end of their retention: key
// purge time (purgeKey) + "/" + LKC id, value the id.
const ixPurge = "kafka_purge"

// purgeLayout sorts bytewise as time does (UTC, fixed width).
const purgeLayout = "20060102T150405.000000000Z"

func purgeKey(at time.Time, id string) string { return at.UTC().Format(purgeLayout) + "/" + id }

// retention is the operator's setting.
func (s *Service) retention() time.Duration {
	if s.cfg.DeletedRetention > 0 {
		return s.cfg.DeletedRetention
	}
	return DefaultDeletedRetention
}

// upkeepInterval is how often the ended retentions are looked for: often
// enough that a short retention (tried end to end) ends on time.
func (s *Service) upkeepInterval() time.Duration {
	return min(max(s.retention()/20, time.Second), time.Minute)
}

// purgeBatch bounds the clusters one upkeep transaction purges.
const purgeBatch = 100

// purge ends the retention of the deleted clusters whose time came: each
// row goes, and its last event tells every layer below to drop what it
// kept (the data on the satellite included).
func (s *Service) purge(ctx context.Context, tx store.Tx) (bool, error) {
	now := time.Now().UTC()
	due, err := tx.IndexList(ctx, store.IndexListParams{Index: ixPurge, Limit: purgeBatch})
	if err != nil {
		return false, err
	}
	for _, e := range due {
		at, _, _ := strings.Cut(e.Key, "/")
		when, err := time.Parse(purgeLayout, at)
		if err != nil {
			return false, fmt.Errorf("kafka: purge entry %q: %w", e.Key, err)
		}
		if when.After(now) {
			return false, nil
		}
		r, err := tx.ResourceGetAny(ctx, resource.KindLKC, e.Value)
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			return false, err
		case r.Retained() && r.PurgeAt.Equal(when):
			if _, err := tx.ResourceEndRetention(ctx, resource.KindLKC, r.ID); err != nil {
				return false, fmt.Errorf("lkc %s: end of retention: %w", r.ID, err)
			}
			s.log.InfoContext(ctx, "deleted cluster purged: its retention ended", "lkc", r.ID, "deleted_at", r.DeletedAt, "purge_at", when)
		}
		// Restored, or deleted again with another purge time: the entry
		// is stale either way.
		if err := tx.IndexDelete(ctx, ixPurge, e.Key); err != nil {
			return false, err
		}
	}
	return len(due) == purgeBatch, nil
}

// RestoreCluster brings a deleted cluster back within its retention: the
// same id, endpoint, topics and records, and the keys that were live when
// it was deleted (iam and the layers below see the restore and bring
// back what they kept). The organization's admin may restore its own
// clusters; an operator any.
func (s *Service) RestoreCluster(ctx context.Context, p svcapi.Principal, id string) (api.Cluster, error) {
	var r store.Resource
	err := s.st.View(ctx, func(ctx context.Context, tx store.Tx) error {
		var err error
		r, err = tx.ResourceGetAny(ctx, resource.KindLKC, id)
		return err
	})
	if errors.Is(err, store.ErrNotFound) || (err == nil && !p.FleetAdmin() && r.Organization != p.Organization) {
		return api.Cluster{}, api.Errorf(http.StatusNotFound, api.CodeNotFound,
			"cluster %q not found: it never existed here, or it was deleted and its retention of %s ended, and it was purged with its data",
			id, s.retention())
	}
	if err != nil {
		return api.Cluster{}, fmt.Errorf("lkc %s: restore: %w", id, err)
	}
	if !p.FleetAdmin() {
		if err := p.Require(svcapi.Admin, svcapi.Scope{Org: r.Organization}); err != nil {
			return api.Cluster{}, err
		}
	}
	if !r.Deleted() {
		return api.Cluster{}, api.Errorf(http.StatusConflict, api.CodeConflict, "cluster %s is not deleted: there is nothing to restore", id)
	}
	if r.PurgeAt == nil || !r.PurgeAt.After(time.Now()) {
		return api.Cluster{}, api.Errorf(http.StatusConflict, api.CodeRetentionEnded,
			"cluster %s cannot be restored: its retention ended at %s, and it is being purged with its data", id, purgeTime(r))
	}
	spec, err := resource.Decode[resource.LKCSpec](r.Spec)
	if err != nil {
		return api.Cluster{}, err
	}
	if ok, err := s.cfg.Environments.EnvironmentExists(ctx, r.Organization, r.Environment); err != nil || !ok {
		if err != nil {
			return api.Cluster{}, err
		}
		return api.Cluster{}, api.Errorf(http.StatusConflict, api.CodeConflict,
			"cluster %s cannot be restored: its environment %s was deleted, and a cluster comes back only into its own environment", id, r.Environment)
	}
	if spec.Network != "" {
		if ok, err := s.cfg.Networks.NetworkExists(ctx, r.Organization, r.Environment, spec.Network, spec.Site()); err != nil || !ok {
			if err != nil {
				return api.Cluster{}, err
			}
			return api.Cluster{}, api.Errorf(http.StatusConflict, api.CodeConflict,
				"cluster %s cannot be restored: its network %s was deleted", id, spec.Network)
		}
	}
	if err := s.cfg.Quotas.Reserve(ctx, r.Organization, id, spec.CKU); err != nil {
		return api.Cluster{}, err
	}
	var out api.Cluster
	err = s.st.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		cur, err := tx.ResourceGetAny(ctx, resource.KindLKC, id)
		if err != nil {
			return err
		}
		if !cur.Retained() || cur.Version != r.Version {
			return api.Errorf(http.StatusConflict, api.CodeConflict, "cluster %s changed meanwhile (restored or purged); read it again", id)
		}
		if err := tx.IndexDelete(ctx, ixPurge, purgeKey(*cur.PurgeAt, id)); err != nil {
			return err
		}
		restored, err := tx.ResourceRestore(ctx, resource.KindLKC, id)
		if err != nil {
			return err
		}
		st := restored.Status
		st.Phase, st.Reason, st.Message = resource.PhaseProvisioning, "RESTORING", "restored: its brokers, data and keys are being brought back"
		if restored, err = tx.ResourceSetStatus(ctx, resource.KindLKC, id, st); err != nil {
			return err
		}
		s.log.InfoContext(ctx, "cluster restored", "lkc", id, "organization", r.Organization, "deleted_at", r.DeletedAt)
		out, err = toCluster(restored)
		return err
	})
	return out, svcapi.StoreError("cluster", id, err)
}

func purgeTime(r store.Resource) string {
	if r.PurgeAt == nil {
		return "its deletion"
	}
	return r.PurgeAt.UTC().Format(time.RFC3339)
}
