// Package quota is the quota service (layer 3): it owns each
// organization's limits and keeps its usage from the cluster events it
// sees. The kafka service asks it, synchronously and at the same layer,
// before it accepts a cluster or a larger size.
package quota

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mothership-dev/mothership/internal/api"
	"github.com/mothership-dev/mothership/internal/resource"
	"github.com/mothership-dev/mothership/internal/runtime/event"
	"github.com/mothership-dev/mothership/internal/runtime/host"
	"github.com/mothership-dev/mothership/internal/runtime/store"
	"github.com/mothership-dev/mothership/internal/service/svcapi"
)

// Name and Layer place the service in the layer cake.
const (
	Name  = "quota"
	Layer = 3
)

var (
	orgDesired = event.Topic(resource.KindOrganization, event.Desired)
	lkcDesired = event.Topic(resource.KindLKC, event.Desired)
)

// Config configures the service.
type Config struct {
	// Defaults are the limits of a new organization (default 50 clusters,
	// 100 CKU).
	Defaults resource.QuotaSpec
	Logger   *slog.Logger
}

// Service is the quota service.
type Service struct {
	cfg Config
	log *slog.Logger
	st  store.Store
}

// New returns the service.
func New(cfg Config) *Service {
	cfg.Defaults.MaxClusters = cmp.Or(cfg.Defaults.MaxClusters, 50)
	cfg.Defaults.MaxCKU = cmp.Or(cfg.Defaults.MaxCKU, 100)
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Service{cfg: cfg, log: cfg.Logger.With("service", Name)}
}

// Host declares the service.
func (s *Service) Host() host.Service {
	return host.Service{
		Name:      Name,
		Layer:     Layer,
		Owns:      []string{resource.KindQuota},
		ReactsTo:  []string{orgDesired, lkcDesired},
		Reconcile: s.reconcile,
		Attach:    func(st store.Store) { s.st = st },
	}
}

func quotaID(org string) string { return "quota-" + org }

// ixCKU is the service's private index of what each confirmed cluster
// counts for: lkc id → its CKU. It keeps a change to one cluster a read
// and a write of that cluster's share, not of the organization's every
// cluster (which made each change cost as much as the organization is
// large: with 10,000 clusters in one organization, every event of quota
// carried all 10,000).
const ixCKU = "quota_cku"

// usage is the status detail: the totals, and the reservations not yet
// confirmed by their cluster's event (a handful: the requests in flight).
type usage struct {
	// QuotaStatus is what counts now: the confirmed clusters and the
	// live reservations.
	resource.QuotaStatus
	// Confirmed totals the clusters whose events quota saw (ixCKU).
	Confirmed resource.QuotaStatus `json:"confirmed"`
	// Pending are reservations by lkc id: a Reserve counts until the
	// cluster's event confirms it, or until it expires (the request that
	// made it failed after reserving).
	Pending map[string]reservation `json:"pending,omitempty"`
	// Legacy is how usage was kept before ixCKU: every cluster's share.
	// It is moved into the index the first time the quota is used.
	Legacy map[string]legacyEntry `json:"by_cluster,omitempty"`
}

// reservation is a Reserve not yet confirmed: the size asked, until when
// it counts.
type reservation struct {
	CKU   int       `json:"cku"`
	Until time.Time `json:"until"`
}

// legacyEntry is one cluster's share as usage kept it before ixCKU.
type legacyEntry struct {
	Confirmed     bool       `json:"confirmed"`
	CKU           int        `json:"cku"`
	Reserved      int        `json:"reserved,omitempty"`
	ReservedUntil *time.Time `json:"reserved_until,omitempty"`
}

// reservationTTL bounds how long a reservation counts without its event.
const reservationTTL = time.Minute

// confirmedCKU is what the confirmed cluster lkc counts for, known false if
// quota saw no event of it.
func confirmedCKU(ctx context.Context, tx store.Tx, lkc string) (cku int, known bool, err error) {
	v, err := tx.IndexGet(ctx, ixCKU, lkc)
	if errors.Is(err, store.ErrNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	cku, err = parseCKU(lkc, v)
	return cku, err == nil, err
}

// parseCKU reads a cluster's ixCKU value.
func parseCKU(lkc, v string) (int, error) {
	cku, err := strconv.Atoi(v)
	if err != nil {
		return 0, fmt.Errorf("quota: %s counts %q CKU: %w", lkc, v, err)
	}
	return cku, nil
}

// totals drops the reservations expired at now and counts what is in use:
// the confirmed clusters, a reserved cluster not confirmed yet, and what a
// reservation adds to a confirmed cluster's size.
func (u *usage) totals(ctx context.Context, tx store.Tx, now time.Time) error {
	u.QuotaStatus = u.Confirmed
	for id, r := range u.Pending {
		if !now.Before(r.Until) {
			delete(u.Pending, id)
		}
	}
	// The reserved clusters' confirmed shares in one read, not one each:
	// every cluster event of an organization counts its reservations.
	confirmed, err := tx.IndexGetMany(ctx, ixCKU, slices.Collect(maps.Keys(u.Pending)))
	if err != nil {
		return err
	}
	for id, r := range u.Pending {
		cku := 0
		if v, known := confirmed[id]; !known {
			u.QuotaStatus.Clusters++
		} else if cku, err = parseCKU(id, v); err != nil {
			return err
		}
		u.CKU += max(0, r.CKU-cku)
	}
	return nil
}

// migrate moves a usage kept before ixCKU into the index, once.
func (u *usage) migrate(ctx context.Context, tx store.Tx, now time.Time) error {
	for id, e := range u.Legacy {
		if e.Confirmed {
			if err := tx.IndexPut(ctx, ixCKU, id, strconv.Itoa(e.CKU)); err != nil {
				return err
			}
			u.Confirmed.Clusters++
			u.Confirmed.CKU += e.CKU
		}
		if e.ReservedUntil != nil && now.Before(*e.ReservedUntil) && (!e.Confirmed || e.Reserved > e.CKU) {
			u.Pending[id] = reservation{CKU: e.Reserved, Until: *e.ReservedUntil}
		}
	}
	u.Legacy = nil
	return nil
}

func (s *Service) reconcile(ctx context.Context, tx store.Tx, key string) error {
	if strings.HasPrefix(key, "org-") {
		q, u, err := s.ensure(ctx, tx, key)
		if err != nil {
			return err
		}
		return s.save(ctx, tx, q, u)
	}
	lkc, err := store.ObservedResource(ctx, tx, lkcDesired, key)
	if err != nil {
		return err
	}
	spec, err := resource.Decode[resource.LKCSpec](lkc.Spec)
	if err != nil {
		return err
	}
	q, u, err := s.ensure(ctx, tx, lkc.Organization)
	if err != nil {
		return err
	}
	// Counted from the cluster's own share, so that applying the same
	// event twice (a resync, a redelivery) changes nothing.
	cur, known, err := confirmedCKU(ctx, tx, lkc.ID)
	if err != nil {
		return err
	}
	switch {
	case lkc.Deleted():
		delete(u.Pending, lkc.ID)
		if known {
			u.Confirmed.Clusters--
			u.Confirmed.CKU -= cur
			if err := tx.IndexDelete(ctx, ixCKU, lkc.ID); err != nil {
				return err
			}
		}
	default:
		if !known {
			u.Confirmed.Clusters++
		}
		u.Confirmed.CKU += spec.CKU - cur
		if !known || cur != spec.CKU {
			if err := tx.IndexPut(ctx, ixCKU, lkc.ID, strconv.Itoa(spec.CKU)); err != nil {
				return err
			}
		}
		if r, ok := u.Pending[lkc.ID]; ok && r.CKU <= spec.CKU {
			delete(u.Pending, lkc.ID)
		}
	}
	return s.save(ctx, tx, q, u)
}

func (s *Service) save(ctx context.Context, tx store.Tx, q store.Resource, u usage) error {
	if err := u.totals(ctx, tx, time.Now()); err != nil {
		return err
	}
	_, err := tx.ResourceSetStatus(ctx, resource.KindQuota, q.ID, store.Status{ObservedGeneration: q.Generation,
		Phase: resource.PhaseReady, Detail: resource.Encode(u)})
	return err
}

// ensure returns the organization's quota, created with the defaults.
func (s *Service) ensure(ctx context.Context, tx store.Tx, org string) (store.Resource, usage, error) {
	r, err := tx.ResourceGet(ctx, resource.KindQuota, quotaID(org))
	if errors.Is(err, store.ErrNotFound) {
		r, err = tx.ResourceCreate(ctx, store.CreateParams{Kind: resource.KindQuota, ID: quotaID(org), Organization: org,
			Spec: resource.Encode(s.cfg.Defaults)})
	}
	if err != nil {
		return r, usage{}, fmt.Errorf("quota %s: %w", org, err)
	}
	u, err := resource.Decode[usage](r.Status.Detail)
	if err != nil {
		return r, u, err
	}
	if u.Pending == nil {
		u.Pending = map[string]reservation{}
	}
	if len(u.Legacy) > 0 {
		err = u.migrate(ctx, tx, time.Now())
	}
	return r, u, err
}

// Reserve makes room for cluster lkc at cku in org, or refuses with 402
// quota_exceeded. The reservation is written in quota's own database, one
// writer at a time, so concurrent requests cannot all squeeze past the
// limit; the cluster's event confirms it.
func (s *Service) Reserve(ctx context.Context, org, lkc string, cku int) error {
	err := s.st.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		q, u, err := s.ensure(ctx, tx, org)
		if err != nil {
			return err
		}
		limits, err := resource.Decode[resource.QuotaSpec](q.Spec)
		if err != nil {
			return err
		}
		now := time.Now()
		if err := u.totals(ctx, tx, now); err != nil {
			return err
		}
		cur, known, err := confirmedCKU(ctx, tx, lkc)
		if err != nil {
			return err
		}
		r, pending := u.Pending[lkc]
		if known && !pending && cku <= cur {
			return nil // nothing more to count: a rename, a shrink
		}
		if !known && !pending && u.QuotaStatus.Clusters+1 > limits.MaxClusters {
			return api.Errorf(http.StatusPaymentRequired, api.CodeQuotaExceeded,
				"the organization has %d of its %d clusters; delete one or ask for a higher quota", u.QuotaStatus.Clusters, limits.MaxClusters)
		}
		grow := cku - max(cur, r.CKU)
		if grow > 0 && u.CKU+grow > limits.MaxCKU {
			return api.Errorf(http.StatusPaymentRequired, api.CodeQuotaExceeded,
				"the organization uses %d of its %d CKU; %d more do not fit", u.CKU, limits.MaxCKU, grow)
		}
		u.Pending[lkc] = reservation{CKU: max(cku, r.CKU), Until: now.Add(reservationTTL)}
		return s.save(ctx, tx, q, u)
	})
	if err != nil {
		return svcapi.StoreError("quota", org, err)
	}
	return nil
}
