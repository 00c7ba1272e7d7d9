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

	"github.com/mothership-dev/mothership/internal/api"
	"github.com/mothership-dev/mothership/internal/resource"
	"github.com/mothership-dev/mothership/internal/runtime/event"
	"github.com/mothership-dev/mothership/internal/runtime/host"
	"github.com/mothership-dev/mothership/internal/runtime/store"
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

// usage is the status detail: the CKU counted for each live cluster.
type usage struct {
	resource.QuotaStatus
	Clusters map[string]int `json:"by_cluster"`
}

func (s *Service) reconcile(ctx context.Context, tx store.Tx, key string) error {
	if strings.HasPrefix(key, "org-") {
		_, _, err := s.ensure(ctx, tx, key)
		return err
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
		u.Clusters[lkc.ID] = spec.CKU
	}
	u.QuotaStatus = resource.QuotaStatus{Clusters: len(u.Clusters)}
	for _, c := range u.Clusters {
		u.CKU += c
	}
	_, err = tx.ResourceSetStatus(ctx, resource.KindQuota, q.ID, store.Status{ObservedGeneration: q.Generation,
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
		u.Clusters = map[string]int{}
	}
	return r, u, err
}

// Check refuses a change that would take org over its limits. Usage is
// what the cluster events seen so far say, so two creations racing within
// the same instant can both pass: limits are soft by that much.
func (s *Service) Check(ctx context.Context, org string, addClusters, addCKU int) error {
	limits, u := s.cfg.Defaults, usage{}
	err := s.st.View(ctx, func(ctx context.Context, tx store.Tx) error {
		r, err := tx.ResourceGet(ctx, resource.KindQuota, quotaID(org))
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if limits, err = resource.Decode[resource.QuotaSpec](r.Spec); err != nil {
			return err
		}
		u, err = resource.Decode[usage](r.Status.Detail)
		return err
	})
	if err != nil {
		return fmt.Errorf("quota: check %s: %w", org, err)
	}
	if addClusters > 0 && u.QuotaStatus.Clusters+addClusters > limits.MaxClusters {
		return api.Errorf(http.StatusConflict, api.CodeQuotaExceeded, "the organization has %d of its %d clusters; delete one or ask for a higher quota", u.QuotaStatus.Clusters, limits.MaxClusters)
	}
	if addCKU > 0 && u.CKU+addCKU > limits.MaxCKU {
		return api.Errorf(http.StatusConflict, api.CodeQuotaExceeded, "the organization uses %d of its %d CKU; %d more do not fit", u.CKU, limits.MaxCKU, addCKU)
	}
	return nil
}
