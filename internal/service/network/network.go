// Package network is the network service (layer 0): it owns the networks
// (PUBLIC, PEERING, PRIVATELINK, TRANSITGATEWAY) of a cloud region and
// realizes them through the cloud provider.
package network

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/mothership-dev/mothership/internal/api"
	"github.com/mothership-dev/mothership/internal/cloud"
	"github.com/mothership-dev/mothership/internal/resource"
	"github.com/mothership-dev/mothership/internal/runtime/event"
	"github.com/mothership-dev/mothership/internal/runtime/host"
	"github.com/mothership-dev/mothership/internal/runtime/reactor"
	"github.com/mothership-dev/mothership/internal/runtime/store"
	"github.com/mothership-dev/mothership/internal/service/svcapi"
)

// Name and Layer place the service in the layer cake.
const (
	Name  = "network"
	Layer = 0
)

// NetworksPath is where networks are served.
const NetworksPath = api.NetworksPath

// ConnectionTypes are the kinds of network a cluster can be reached by.
var ConnectionTypes = []string{"PUBLIC", "PEERING", "PRIVATELINK", "TRANSITGATEWAY"}

var networkDesired = event.Topic(resource.KindNetwork, event.Desired)

// Config configures the service.
type Config struct {
	Cloud  cloud.Provider
	Logger *slog.Logger
}

// Service is the network service.
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

// Host declares the service; it reacts to its own desired state, where it
// calls the cloud until the network is realized.
func (s *Service) Host() host.Service {
	return host.Service{
		Name:      Name,
		Layer:     Layer,
		Owns:      []string{resource.KindNetwork},
		ReactsTo:  []string{networkDesired},
		Reconcile: s.reconcile,
		Prefetch:  host.PrefetchByKey(resource.KindNetwork),
		OnFailure: s.onFailure,
		Attach:    func(st store.Store) { s.st = st },
		Stuck: &host.StuckWatch{Kinds: []string{resource.KindNetwork}, Layer: func(_ context.Context, _ store.Tx, r store.Resource) (string, string, bool, error) {
			return "cloud", fmt.Sprintf("the cloud has not realized generation %d of the network: %s", r.Generation, r.Status.Message), false, nil
		}},
		Reactor: reactor.Config{BackoffBase: 50 * time.Millisecond, BackoffMax: 2 * time.Second},
	}
}

func (s *Service) reconcile(ctx context.Context, tx store.Tx, id string) error {
	r, err := tx.ResourceGetAny(ctx, resource.KindNetwork, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if r.Status.ObservedGeneration == r.Generation {
		return nil
	}
	spec, err := resource.Decode[resource.NetworkSpec](r.Spec)
	if err != nil {
		return err
	}
	op, err := s.cfg.Cloud.EnsureNetwork(ctx, spec.Cloud, spec.Region, id, !r.Deleted())
	if err != nil {
		return fmt.Errorf("network %s: %w", id, err)
	}
	if err := cloud.Wait(op); err != nil {
		return reactor.Waiting(err) // an operation in flight is not a failure
	}
	phase := resource.PhaseReady
	if r.Deleted() {
		phase = "DELETED"
	}
	_, err = tx.ResourceSetStatus(ctx, resource.KindNetwork, id, store.Status{ObservedGeneration: r.Generation, Phase: phase})
	return err
}

func (s *Service) onFailure(ctx context.Context, tx store.Tx, id string, cause error) error {
	r, err := tx.ResourceGetAny(ctx, resource.KindNetwork, id)
	if err != nil {
		return nil
	}
	st := r.Status
	st.Phase = resource.PhaseProvisioning
	st.Reason, st.Message = cloud.Reason(cause)
	_, err = tx.ResourceSetStatus(ctx, resource.KindNetwork, id, st)
	return err
}

func toNetwork(r store.Resource) (api.Network, error) {
	spec, err := resource.Decode[resource.NetworkSpec](r.Spec)
	return api.Network{APIVersion: "networking/v1", Kind: "Network", ID: r.ID, Metadata: svcapi.Metadata(r, NetworksPath+"/"+r.ID),
		Spec: api.NetworkSpec{DisplayName: spec.DisplayName, Cloud: spec.Cloud, Region: spec.Region, ConnectionTypes: spec.ConnectionTypes,
			CIDR: spec.CIDR, Environment: ptr(svcapi.EnvironmentRef(r.Organization, r.Environment))},
		Status: &api.NetworkStatus{Phase: r.Status.Phase, Reason: r.Status.Reason, Message: r.Status.Message}}, err
}

// CreateNetwork accepts a network; the answer shows it PROVISIONING. The
// caller (the gateway, above iam) has checked that the environment
// exists: network is layer 0 and does not call upward.
func (s *Service) CreateNetwork(ctx context.Context, p svcapi.Principal, in api.NetworkCreate) (api.Network, error) {
	sp := in.Spec
	spec := resource.NetworkSpec{DisplayName: sp.DisplayName, Cloud: sp.Cloud, Region: sp.Region, ConnectionTypes: sp.ConnectionTypes, CIDR: sp.CIDR}
	if len(spec.ConnectionTypes) == 0 {
		spec.ConnectionTypes = []string{"PUBLIC"}
	}
	if err := svcapi.ValidateDisplayName("/spec/display_name", spec.DisplayName); err != nil {
		return api.Network{}, err
	}
	switch {
	case !slices.Contains(resource.Clouds, spec.Cloud):
		return api.Network{}, api.Invalid("/spec/cloud", "cloud must be one of %s", strings.Join(resource.Clouds, ", "))
	case spec.Region == "" || len(spec.Region) > 32 || strings.ContainsAny(spec.Region, "/ "):
		return api.Network{}, api.Invalid("/spec/region", "region must be a cloud region name like us-west-2")
	case sp.Environment == nil || sp.Environment.ID == "":
		return api.Network{}, api.Invalid("/spec/environment/id", "environment.id is required")
	}
	if err := p.Require(svcapi.Write, svcapi.Scope{Org: p.Organization, Env: sp.Environment.ID}); err != nil {
		return api.Network{}, err
	}
	for i, t := range spec.ConnectionTypes {
		if !slices.Contains(ConnectionTypes, t) {
			return api.Network{}, api.Invalid(fmt.Sprintf("/spec/connection_types/%d", i), "connection type must be one of %s", strings.Join(ConnectionTypes, ", "))
		}
	}
	if spec.CIDR != "" {
		if pfx, err := netip.ParsePrefix(spec.CIDR); err != nil || !pfx.Addr().Is4() || pfx.Bits() != 16 {
			return api.Network{}, api.Invalid("/spec/cidr", "cidr must be an IPv4 /16 range like 10.1.0.0/16")
		}
	}
	var out api.Network
	err := s.st.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		r, err := tx.ResourceCreate(ctx, store.CreateParams{Kind: resource.KindNetwork, ID: resource.NewID("n"),
			Organization: p.Organization, Environment: sp.Environment.ID, Spec: resource.Encode(spec)})
		if err != nil {
			return err
		}
		if r, err = tx.ResourceSetStatus(ctx, resource.KindNetwork, r.ID, store.Status{Phase: resource.PhaseProvisioning}); err != nil {
			return err
		}
		out, err = toNetwork(r)
		return err
	})
	return out, svcapi.StoreError("network", "", err)
}

// GetNetwork returns one of the caller's networks.
func (s *Service) GetNetwork(ctx context.Context, p svcapi.Principal, id string) (api.Network, error) {
	var out api.Network
	err := s.st.View(ctx, func(ctx context.Context, tx store.Tx) error {
		r, err := svcapi.Own(ctx, tx, resource.KindNetwork, p.Organization, id)
		if err != nil {
			return err
		}
		if err := p.Require(svcapi.Read, svcapi.Scope{Org: r.Organization, Env: r.Environment}); err != nil {
			return err
		}
		out, err = toNetwork(r)
		return err
	})
	return out, svcapi.StoreError("network", id, err)
}

// NetworkExists reports whether org's environment env has the live
// network id in cloud and region.
func (s *Service) NetworkExists(ctx context.Context, org, env, id string, site resource.Site) (bool, error) {
	err := s.st.View(ctx, func(ctx context.Context, tx store.Tx) error {
		r, err := svcapi.Own(ctx, tx, resource.KindNetwork, org, id)
		if err != nil {
			return err
		}
		spec, err := resource.Decode[resource.NetworkSpec](r.Spec)
		if err != nil {
			return err
		}
		if r.Environment != env || (resource.Site{Cloud: spec.Cloud, Region: spec.Region}) != site {
			return store.ErrNotFound
		}
		return nil
	})
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// ListNetworks lists the caller's networks.
func (s *Service) ListNetworks(ctx context.Context, p svcapi.Principal, env string, page svcapi.Page) (api.List[api.Network], error) {
	return svcapi.ListPage(ctx, s.st, svcapi.ListQuery{APIVersion: "networking/v1", ListKind: "NetworkList",
		Kind: resource.KindNetwork, Org: p.Organization, Env: env, Path: NetworksPath, Filter: url.Values{"environment": {env}}, Page: page,
		Visible: func(r store.Resource) bool {
			return p.Can(svcapi.Read, svcapi.Scope{Org: r.Organization, Env: r.Environment})
		}}, toNetwork)
}

// DeleteNetwork deletes a network.
func (s *Service) DeleteNetwork(ctx context.Context, p svcapi.Principal, id string) error {
	err := s.st.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		r, err := svcapi.Own(ctx, tx, resource.KindNetwork, p.Organization, id)
		if err != nil {
			return err
		}
		if err := p.Require(svcapi.Write, svcapi.Scope{Org: r.Organization, Env: r.Environment}); err != nil {
			return err
		}
		_, err = tx.ResourceDelete(ctx, resource.KindNetwork, id)
		return err
	})
	return svcapi.StoreError("network", id, err)
}

// NetworksIn returns the live networks of org in env (at most
// svcapi.MaxHeld).
func (s *Service) NetworksIn(ctx context.Context, org, env string) ([]string, error) {
	return svcapi.AllIn(ctx, s.st, resource.KindNetwork, org, env)
}

func ptr[T any](v T) *T { return &v }
