// Package kafka is the Kafka frontend (layer 3): it owns the logical Kafka
// clusters (LKCs) customers create, validates them, and turns what the
// layers below report into each cluster's status. It never places or sizes
// brokers itself: pkc reacts to its events and decides.
package kafka

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"time"

	"github.com/mothership-dev/mothership/internal/resource"
	"github.com/mothership-dev/mothership/internal/runtime/event"
	"github.com/mothership-dev/mothership/internal/runtime/host"
	"github.com/mothership-dev/mothership/internal/runtime/store"
)

// Name and Layer place the service in the layer cake.
const (
	Name  = "kafka"
	Layer = 3
)

var pkcStatus = event.Topic(resource.KindPKC, event.Status)

// Environments answers whether an environment exists (iam, same layer).
type Environments interface {
	EnvironmentExists(ctx context.Context, org, id string) (bool, error)
}

// Quotas reserves room within an organization's limits (quota, same
// layer), for a new cluster or a larger size.
type Quotas interface {
	Reserve(ctx context.Context, org, lkc string, cku int) error
}

// Sites answers whether a site takes new clusters (sync, a lower layer).
type Sites interface {
	// SiteRefusal says why site takes no new cluster: "" when it takes
	// them.
	SiteRefusal(ctx context.Context, site resource.Site) (string, error)
}

// Networks answers whether a network exists (network, a lower layer).
type Networks interface {
	NetworkExists(ctx context.Context, org, env, id string, site resource.Site) (bool, error)
}

// Config configures the service.
type Config struct {
	Environments Environments
	Quotas       Quotas
	Sites        Sites
	Networks     Networks
	// DeletedRetention is how long a deleted cluster stays restorable
	// (default DefaultDeletedRetention).
	DeletedRetention time.Duration
	Logger           *slog.Logger
}

// Service is the kafka service.
type Service struct {
	cfg Config
	log *slog.Logger
	st  store.Store
}

// New returns the service.
func New(cfg Config) *Service {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Service{cfg: cfg, log: cfg.Logger.With("service", Name)}
}

// Host declares the service: it owns LKCs and reacts to the status of
// PKCs, the layer below.
func (s *Service) Host() host.Service {
	return host.Service{
		Name:      Name,
		Layer:     Layer,
		Owns:      []string{resource.KindLKC},
		ReactsTo:  []string{pkcStatus},
		Reconcile: s.reconcile,
		Attach:    func(st store.Store) { s.st = st },
		Stuck:     &host.StuckWatch{Kinds: []string{resource.KindLKC}, Layer: s.stuckLayer},
		// The ended retentions of deleted clusters.
		Upkeep:         s.purge,
		UpkeepInterval: s.upkeepInterval(),
	}
}

// reconcile turns a PKC's status into the status of each LKC it hosts. An
// LKC is PROVISIONED only when the PKC accounts for the LKC's current
// generation and every layer below realized the PKC generation that
// carries it.
func (s *Service) reconcile(ctx context.Context, tx store.Tx, key string) error {
	pkc, err := store.ObservedResource(ctx, tx, pkcStatus, key)
	if err != nil {
		return fmt.Errorf("pkc %s: %w", key, err)
	}
	spec, err := resource.Decode[resource.PKCSpec](pkc.Spec)
	if err != nil {
		return err
	}
	st, err := resource.Decode[resource.PKCStatus](pkc.Status.Detail)
	if err != nil {
		return err
	}
	// A shared PKC hosts many tenants: their rows are read at once.
	if err := tx.ResourcePrefetch(ctx, resource.KindLKC, slices.Collect(maps.Keys(st.Tenants))); err != nil {
		return fmt.Errorf("pkc %s: %w", key, err)
	}
	for id, ts := range st.Tenants {
		lkc, err := tx.ResourceGet(ctx, resource.KindLKC, id)
		if err != nil {
			continue // deleted, or not ours: nothing to report
		}
		tenant, hosted := spec.Tenants[id]
		if !hosted || pkc.Deleted() {
			continue
		}
		// Realized once the PKC realized the generation that carries this
		// LKC's current one; later changes for other tenants of the PKC
		// do not make it wait again.
		realized := ts.PKCGeneration > 0 && pkc.Status.ObservedGeneration >= ts.PKCGeneration
		next := lkc.Status
		detail := resource.LKCStatus{CKU: ts.CKU, PKC: pkc.ID, BootstrapEndpoint: st.BootstrapEndpoint, RESTEndpoint: st.RESTEndpoint, TopicPrefix: tenant.Prefix,
			KafkaVersion: st.Version}
		if spec.Version != "" && spec.Version != st.Version {
			detail.PendingKafkaVersion = spec.Version
		}
		next.Detail = resource.Encode(detail)
		if realized && ts.ObservedGeneration == lkc.Generation {
			next.ObservedGeneration, next.Phase, next.Reason, next.Message = lkc.Generation, resource.PhaseProvisioned, "", ""
		} else {
			next.Phase = resource.PhaseProvisioning
			next.Reason, next.Message = pkc.Status.Reason, pkc.Status.Message
			if next.Reason == "" {
				next.Reason, next.Message = "WAITING_FOR_PKC", fmt.Sprintf("waiting for %s to realize this change", pkc.ID)
			}
		}
		if ts.Paused != "" {
			// The operators paused it: every layer leaves it as it is.
			next.Reason, next.Message = "PAUSED", ts.Paused+"; changes are held until an operator resumes it"
		}
		if _, err := tx.ResourceSetStatus(ctx, resource.KindLKC, id, next); err != nil {
			return fmt.Errorf("lkc %s: set status: %w", id, err)
		}
	}
	return nil
}
