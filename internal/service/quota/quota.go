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
	"net/http"
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

// usage is the status detail: what each live cluster counts for.
type usage struct {
	resource.QuotaStatus
	Clusters map[string]entry `json:"by_cluster"`
}

// entry is one cluster's share. A reservation made by a synchronous
// Reserve counts until the cluster's event confirms it, or until it
// expires (the request that made it failed after reserving).
type entry struct {
	Confirmed     bool       `json:"confirmed"`
	CKU           int        `json:"cku"`
	Reserved      int        `json:"reserved,omitempty"`
	ReservedUntil *time.Time `json:"reserved_until,omitempty"`
}

// reservationTTL bounds how long a reservation counts without its event.
const reservationTTL = time.Minute

func (e entry) live(now time.Time) bool {
	return e.ReservedUntil != nil && now.Before(*e.ReservedUntil)
}

// totals counts the clusters and CKU in use at now.
func (u *usage) totals(now time.Time) {
	u.QuotaStatus = resource.QuotaStatus{}
	for id, e := range u.Clusters {
		if !e.live(now) {
			e.Reserved, e.ReservedUntil = 0, nil
			u.Clusters[id] = e
			if !e.Confirmed {
				delete(u.Clusters, id)
				continue
			}
		}
		u.QuotaStatus.Clusters++
		u.CKU += max(e.CKU, e.Reserved)
	}
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
	if lkc.Deleted() {
		delete(u.Clusters, lkc.ID)
	} else {
		e := u.Clusters[lkc.ID]
		e.Confirmed, e.CKU = true, spec.CKU
		if e.Reserved <= spec.CKU {
			e.Reserved, e.ReservedUntil = 0, nil
		}
		u.Clusters[lkc.ID] = e
	}
	return s.save(ctx, tx, q, u)
}

func (s *Service) save(ctx context.Context, tx store.Tx, q store.Resource, u usage) error {
	u.totals(time.Now())
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
	if u.Clusters == nil {
		u.Clusters = map[string]entry{}
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
		u.totals(now)
		e, known := u.Clusters[lkc]
		if !known && u.QuotaStatus.Clusters+1 > limits.MaxClusters {
			return api.Errorf(http.StatusPaymentRequired, api.CodeQuotaExceeded,
				"the organization has %d of its %d clusters; delete one or ask for a higher quota", u.QuotaStatus.Clusters, limits.MaxClusters)
		}
		grow := cku - max(e.CKU, e.Reserved)
		if grow > 0 && u.CKU+grow > limits.MaxCKU {
			return api.Errorf(http.StatusPaymentRequired, api.CodeQuotaExceeded,
				"the organization uses %d of its %d CKU; %d more do not fit", u.CKU, limits.MaxCKU, grow)
		}
		until := now.Add(reservationTTL)
		e.Reserved, e.ReservedUntil = max(cku, e.Reserved), &until
		u.Clusters[lkc] = e
		return s.save(ctx, tx, q, u)
	})
	if err != nil {
		return svcapi.StoreError("quota", org, err)
	}
	return nil
}
