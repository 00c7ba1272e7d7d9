package kafka

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/mothership-dev/mothership/internal/api"
	"github.com/mothership-dev/mothership/internal/kafkaversion"
	"github.com/mothership-dev/mothership/internal/resource"
	"github.com/mothership-dev/mothership/internal/runtime/store"
	"github.com/mothership-dev/mothership/internal/service/svcapi"
)

// ClustersPath is where the clusters are served.
const ClustersPath = api.ClustersPath

// MaxCKU bounds a Dedicated cluster's size.
const MaxCKU = 24

var regionPattern = regexp.MustCompile(`^[a-z][a-z0-9-]{1,31}$`)

// toCluster renders an LKC in the public API's shape.
func toCluster(r store.Resource) (api.Cluster, error) {
	spec, err := resource.Decode[resource.LKCSpec](r.Spec)
	if err != nil {
		return api.Cluster{}, err
	}
	st, err := resource.Decode[resource.LKCStatus](r.Status.Detail)
	if err != nil {
		return api.Cluster{}, err
	}
	protect := spec.DeletionProtection
	c := api.Cluster{APIVersion: "cmk/v2", Kind: "Cluster", ID: r.ID, Metadata: svcapi.Metadata(r, ClustersPath+"/"+r.ID),
		Spec: api.ClusterSpec{
			DisplayName: spec.DisplayName, Availability: spec.Availability, Cloud: spec.Cloud, Region: spec.Region,
			Config:             &api.ClusterConfig{Kind: spec.Type, CKU: spec.CKU, ReleasePriority: spec.ReleasePriority},
			DeletionProtection: &protect,
			Environment:        ptr(svcapi.EnvironmentRef(r.Organization, r.Environment)),
			KafkaVersionPin:    spec.KafkaVersionPin,
			MaintenanceWindow:  svcapi.APIWindow(spec.MaintenanceWindow),
		},
		Status: &api.ClusterStatus{Phase: r.Status.Phase, CKU: st.CKU, Reason: r.Status.Reason, Message: r.Status.Message,
			Generation: r.Generation, ObservedGeneration: r.Status.ObservedGeneration, KafkaVersion: st.KafkaVersion, PendingKafkaVersion: st.PendingKafkaVersion},
	}
	switch {
	case strings.Contains(st.BootstrapEndpoint, "://"):
		// The data plane says how clients reach it (SASL_SSL on Strimzi).
		c.Spec.KafkaBootstrapEndpoint = st.BootstrapEndpoint
	case st.BootstrapEndpoint != "":
		c.Spec.KafkaBootstrapEndpoint = "SASL_PLAINTEXT://" + st.BootstrapEndpoint
	}
	c.Spec.HTTPEndpoint = st.RESTEndpoint
	if k := r.Status.Stuck; k != nil {
		c.Status.Stuck = &api.Stuck{Since: k.Since, Layer: k.Layer, Message: k.Message}
	}
	if spec.Network != "" {
		c.Spec.Network = ptr(svcapi.NetworkRef(r.Organization, r.Environment, spec.Network))
	}
	if r.Deleted() {
		c.Status.Phase = resource.PhaseDeleting
	}
	return c, nil
}

// validate checks an LKC spec as a whole and reports every faulty field
// at once, each with its pointer.
func validate(s resource.LKCSpec) error {
	var errs []*api.Error
	invalid := func(pointer, format string, args ...any) {
		errs = append(errs, api.Invalid(pointer, format, args...))
	}
	var nameErr *api.Error
	if errors.As(svcapi.ValidateDisplayName("/spec/display_name", s.DisplayName), &nameErr) {
		errs = append(errs, nameErr)
	}
	if !slices.Contains(resource.Clouds, s.Cloud) {
		invalid("/spec/cloud", "cloud must be one of %s", strings.Join(resource.Clouds, ", "))
	}
	if !regionPattern.MatchString(s.Region) {
		invalid("/spec/region", "region must be a cloud region name like us-west-2")
	}
	if s.Availability != resource.SingleZone && s.Availability != resource.MultiZone {
		invalid("/spec/availability", "availability must be SINGLE_ZONE or MULTI_ZONE")
	}
	switch s.Type {
	case resource.TypeBasic, resource.TypeStandard:
		if s.CKU != 0 {
			invalid("/spec/config/cku", "cku applies only to Dedicated clusters; a %s cluster has no size to set", s.Type)
		}
		if s.ReleasePriority != "" {
			invalid("/spec/config/release_priority", "release_priority applies only to Dedicated clusters")
		}
	case resource.TypeDedicated:
		if s.ReleasePriority != api.ReleaseRegular && s.ReleasePriority != api.ReleasePriority {
			invalid("/spec/config/release_priority", "release_priority must be REGULAR or PRIORITY")
		}
		switch {
		case s.CKU < 1 || s.CKU > MaxCKU:
			invalid("/spec/config/cku", "a Dedicated cluster needs cku from 1 to %d", MaxCKU)
		case s.Availability == resource.MultiZone && s.CKU < 2:
			invalid("/spec/config/cku", "a MULTI_ZONE Dedicated cluster needs at least 2 CKU")
		}
	default:
		invalid("/spec/config/kind", "config.kind must be Basic, Standard or Dedicated")
	}
	return api.Join(errs...)
}

// CreateCluster accepts a cluster: it is stored as desired state, and the
// layers below provision it. The answer is the cluster as PROVISIONING.
func (s *Service) CreateCluster(ctx context.Context, p svcapi.Principal, in api.ClusterCreate) (api.Cluster, error) {
	spec := resource.LKCSpec{DisplayName: in.Spec.DisplayName, Cloud: in.Spec.Cloud, Region: in.Spec.Region,
		Availability: cmp.Or(in.Spec.Availability, resource.SingleZone)}
	if in.Spec.Config == nil {
		return api.Cluster{}, api.Invalid("/spec/config", "config is required, like {\"kind\":\"Basic\"}")
	}
	spec.Type, spec.CKU, spec.ReleasePriority = in.Spec.Config.Kind, in.Spec.Config.CKU, in.Spec.Config.ReleasePriority
	if spec.Type == resource.TypeDedicated && spec.ReleasePriority == "" {
		spec.ReleasePriority = api.ReleaseRegular
	}
	if in.Spec.DeletionProtection != nil {
		spec.DeletionProtection = *in.Spec.DeletionProtection
	}
	if in.Spec.Environment == nil || in.Spec.Environment.ID == "" {
		return api.Cluster{}, api.Invalid("/spec/environment/id", "environment.id is required")
	}
	if in.Spec.KafkaBootstrapEndpoint != "" || in.Spec.HTTPEndpoint != "" {
		return api.Cluster{}, api.Invalid("/spec/kafka_bootstrap_endpoint", "endpoints are read-only")
	}
	var pin *string
	if in.Spec.KafkaVersionPin != "" {
		pin = &in.Spec.KafkaVersionPin
	}
	if errs := upgradeSettings(&spec, in.Spec.MaintenanceWindow, pin); len(errs) > 0 {
		return api.Cluster{}, api.Join(errs...)
	}
	if err := validate(spec); err != nil {
		return api.Cluster{}, err
	}
	env := in.Spec.Environment.ID
	if ok, err := s.cfg.Environments.EnvironmentExists(ctx, p.Organization, env); err != nil || !ok {
		return api.Cluster{}, orInvalid(err, "/spec/environment/id", "environment %q not found", env)
	}
	if err := p.Require(svcapi.Write, svcapi.Scope{Org: p.Organization, Env: env}); err != nil {
		return api.Cluster{}, err
	}
	if in.Spec.Network != nil && in.Spec.Network.ID != "" {
		spec.Network = in.Spec.Network.ID
		if ok, err := s.cfg.Networks.NetworkExists(ctx, p.Organization, env, spec.Network, spec.Site()); err != nil || !ok {
			return api.Cluster{}, orInvalid(err, "/spec/network/id", "network %q not found in environment %q for %s", spec.Network, env, spec.Site())
		}
	}
	if why, err := s.cfg.Sites.SiteRefusal(ctx, spec.Site()); err != nil || why != "" {
		return api.Cluster{}, orInvalid(err, "/spec/region", "%s; choose a served cloud and region%s", why, s.servedSites(ctx))
	}
	id, err := svcapi.FreshID(ctx, s.st, resource.KindLKC, func() string { return resource.NewID("lkc") })
	if err != nil {
		return api.Cluster{}, err
	}
	if err := s.cfg.Quotas.Reserve(ctx, p.Organization, id, spec.CKU); err != nil {
		return api.Cluster{}, err
	}
	var out api.Cluster
	err = s.st.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		r, err := tx.ResourceCreate(ctx, store.CreateParams{Kind: resource.KindLKC, ID: id,
			Organization: p.Organization, Environment: env, Spec: resource.Encode(spec)})
		if err != nil {
			return err
		}
		r, err = tx.ResourceSetStatus(ctx, resource.KindLKC, r.ID, store.Status{Phase: resource.PhaseProvisioning,
			Reason: "ACCEPTED", Message: "the cluster is being placed", Detail: resource.Encode(resource.LKCStatus{})})
		if err != nil {
			return err
		}
		out, err = toCluster(r)
		return err
	})
	return out, svcapi.StoreError("cluster", id, err)
}

// servedSites names the sites served, for the refusal of an unserved one:
// ": aws/us-west-2, gcp/europe-west1 (GET /mothership/v1/regions)". It is
// empty when sync cannot list them (the refusal stands without the list).
func (s *Service) servedSites(ctx context.Context) string {
	lister, ok := s.cfg.Sites.(interface {
		SitesServed(ctx context.Context) ([]resource.Site, error)
	})
	if !ok {
		return ""
	}
	sites, err := lister.SitesServed(ctx)
	if err != nil || len(sites) == 0 {
		return ""
	}
	names := make([]string, len(sites))
	for i, site := range sites {
		names[i] = site.String()
	}
	return ": " + strings.Join(names, ", ") + " (GET " + api.RegionsPath + ")"
}

// orInvalid returns err if there is one, else a 422 at pointer.
func orInvalid(err error, pointer, format string, args ...any) error {
	if err != nil {
		return err
	}
	return api.Invalid(pointer, format, args...)
}

// GetCluster returns one of the caller's clusters.
func (s *Service) GetCluster(ctx context.Context, p svcapi.Principal, id string) (api.Cluster, error) {
	var out api.Cluster
	err := s.st.View(ctx, func(ctx context.Context, tx store.Tx) error {
		r, err := svcapi.Own(ctx, tx, resource.KindLKC, p.Organization, id)
		if err != nil {
			return err
		}
		if err := p.Require(svcapi.Read, scopeOf(r)); err != nil {
			return err
		}
		out, err = toCluster(r)
		return err
	})
	return out, svcapi.StoreError("cluster", id, err)
}

// ListClusters lists the caller's clusters, in one environment if env is
// set.
func (s *Service) ListClusters(ctx context.Context, p svcapi.Principal, env string, page svcapi.Page) (api.List[api.Cluster], error) {
	return svcapi.ListPage(ctx, s.st, svcapi.ListQuery{APIVersion: "cmk/v2", ListKind: "ClusterList",
		Kind: resource.KindLKC, Org: p.Organization, Env: env, Path: ClustersPath, Filter: url.Values{"environment": {env}}, Page: page,
		Visible: func(r store.Resource) bool { return p.Can(svcapi.Read, scopeOf(r)) }}, toCluster)
}

// UpdateCluster applies a PATCH: display_name, config.cku, a Basic →
// Standard upgrade and deletion_protection may change; cloud, region and
// availability may be sent only unchanged.
func (s *Service) UpdateCluster(ctx context.Context, p svcapi.Principal, id string, in api.ClusterUpdate) (api.Cluster, error) {
	reserved, err := s.reserveGrowth(ctx, p, id, in)
	if err != nil {
		return api.Cluster{}, svcapi.StoreError("cluster", id, err)
	}
	var out api.Cluster
	err = s.st.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		r, old, spec, err := s.planUpdate(ctx, tx, p, id, in)
		if err != nil {
			return err
		}
		if spec.CKU > old.CKU && spec.CKU > reserved {
			// Changed since reserveGrowth read it: reserve what it needs
			// now, in the transaction (rare).
			if err := s.cfg.Quotas.Reserve(ctx, p.Organization, id, spec.CKU); err != nil {
				return err
			}
		}
		gen := r.Generation
		r, err = tx.ResourceUpdateSpec(ctx, store.UpdateSpecParams{Kind: resource.KindLKC, ID: id, Spec: resource.Encode(spec)})
		if err != nil {
			return err
		}
		if r.Generation != gen {
			st := r.Status
			st.Phase = resource.PhaseProvisioning
			if st.Reason != "PAUSED" {
				// A paused cluster keeps saying so: its change is held.
				st.Reason, st.Message = "UPDATING", "the change is being applied"
			}
			if r, err = tx.ResourceSetStatus(ctx, resource.KindLKC, id, st); err != nil {
				return err
			}
		}
		out, err = toCluster(r)
		return err
	})
	return out, svcapi.StoreError("cluster", id, err)
}

// reserveGrowth reserves, in quota, the CKU an update grows the cluster to,
// before UpdateCluster's transaction rather than in it: the reservation is
// quota's own write, and waiting for it with the transaction open held
// every other write of this service (the other requests, the reactions)
// behind it. It returns the CKU reserved, 0 for none. A reservation the
// update ends up not using is dropped by quota when it expires, as one
// whose transaction fails always was.
func (s *Service) reserveGrowth(ctx context.Context, p svcapi.Principal, id string, in api.ClusterUpdate) (int, error) {
	var grow int
	err := s.st.View(ctx, func(ctx context.Context, tx store.Tx) error {
		_, old, spec, err := s.planUpdate(ctx, tx, p, id, in)
		if err == nil && spec.CKU > old.CKU {
			grow = spec.CKU
		}
		return err
	})
	if err != nil || grow == 0 {
		return 0, err
	}
	return grow, s.cfg.Quotas.Reserve(ctx, p.Organization, id, grow)
}

// planUpdate reads cluster id for p, who must be allowed to write it, and
// returns it with its spec now and after in.
func (s *Service) planUpdate(ctx context.Context, tx store.Tx, p svcapi.Principal, id string, in api.ClusterUpdate) (store.Resource, resource.LKCSpec, resource.LKCSpec, error) {
	r, err := svcapi.Own(ctx, tx, resource.KindLKC, p.Organization, id)
	if err != nil {
		return r, resource.LKCSpec{}, resource.LKCSpec{}, err
	}
	if err := p.Require(svcapi.Write, scopeOf(r)); err != nil {
		return r, resource.LKCSpec{}, resource.LKCSpec{}, err
	}
	old, err := resource.Decode[resource.LKCSpec](r.Spec)
	if err != nil {
		return r, old, resource.LKCSpec{}, err
	}
	spec, err := applyUpdate(old, r.Environment, in.Spec)
	return r, old, spec, err
}

// upgradeSettings applies a tenant's maintenance window and version pin
// (nil: unchanged) to a Dedicated cluster's spec, and says what is wrong.
func upgradeSettings(spec *resource.LKCSpec, w *api.MaintenanceWindow, pin *string) []*api.Error {
	// Removing what a shared cluster cannot have is no change.
	if (w == nil || *w == (api.MaintenanceWindow{})) && (pin == nil || *pin == "") && spec.Type != resource.TypeDedicated {
		return nil
	}
	if w == nil && pin == nil {
		return nil
	}
	if spec.Type != resource.TypeDedicated {
		return []*api.Error{api.Invalid("/spec/maintenance_window", "maintenance windows and version pins apply to Dedicated clusters; "+
			"this one is %s and shares its PKC, which follows its site's window", spec.Type)}
	}
	var errs []*api.Error
	if w != nil {
		var bad []*api.Error
		spec.MaintenanceWindow, bad = svcapi.Window("/spec/maintenance_window", *w)
		errs = append(errs, bad...)
	}
	if pin != nil {
		if *pin != "" && !kafkaversion.Known(*pin) {
			errs = append(errs, api.Invalid("/spec/kafka_version_pin", "%q is not a Kafka version Mothership runs", *pin))
		}
		spec.KafkaVersionPin = *pin
	}
	return errs
}

func applyUpdate(spec resource.LKCSpec, env string, u api.ClusterUpdateSpec) (resource.LKCSpec, error) {
	// Every refusal of the update at once, each at its field.
	var errs []*api.Error
	immutable := func(pointer, name string, got *string, have string) {
		if got != nil && *got != have {
			errs = append(errs, api.Invalid(pointer, "%s cannot change after creation (it is %s)", name, have))
		}
	}
	immutable("/spec/cloud", "cloud", u.Cloud, spec.Cloud)
	immutable("/spec/region", "region", u.Region, spec.Region)
	immutable("/spec/availability", "availability", u.Availability, spec.Availability)
	if u.Environment != nil && u.Environment.ID != env {
		errs = append(errs, api.Invalid("/spec/environment/id", "a cluster cannot move to another environment"))
	}
	if u.DisplayName != nil {
		spec.DisplayName = *u.DisplayName
	}
	if u.DeletionProtection != nil {
		spec.DeletionProtection = *u.DeletionProtection
	}
	if c := u.Config; c != nil {
		// A resize of a Basic cluster (sent as Dedicated with a cku, as a
		// size implies) hears first that cku does not apply to it.
		ckuWrong := c.CKU != 0 && spec.Type != resource.TypeDedicated
		kindWrong := c.Kind != "" && c.Kind != spec.Type && (spec.Type != resource.TypeBasic || c.Kind != resource.TypeStandard)
		if ckuWrong {
			errs = append(errs, api.Invalid("/spec/config/cku", "cku applies only to Dedicated clusters; this cluster is %s, "+
				"which scales without a size", spec.Type))
		}
		if kindWrong {
			errs = append(errs, api.Invalid("/spec/config/kind", "the only type change allowed is Basic to Standard (this cluster is %s)", spec.Type))
		}
		if !ckuWrong && !kindWrong {
			spec.Type = cmp.Or(c.Kind, spec.Type)
			if c.CKU != 0 {
				spec.CKU = c.CKU
			}
		}
		if c.ReleasePriority != "" {
			spec.ReleasePriority = c.ReleasePriority
		}
	}
	errs = append(errs, upgradeSettings(&spec, u.MaintenanceWindow, u.KafkaVersionPin)...)
	if len(errs) > 0 {
		return spec, api.Join(errs...)
	}
	if spec.Type == resource.TypeDedicated && spec.ReleasePriority == "" {
		// Dedicated clusters made before release priorities existed.
		spec.ReleasePriority = api.ReleaseRegular
	}
	return spec, validate(spec)
}

// DeleteCluster deletes a cluster, unless deletion protection is on. Only
// the LKC is deleted; the layers below see the event and stop serving it,
// keeping what they need to restore it until its retention ends.
func (s *Service) DeleteCluster(ctx context.Context, p svcapi.Principal, id string) error {
	err := s.st.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		r, err := svcapi.Own(ctx, tx, resource.KindLKC, p.Organization, id)
		if err != nil {
			return err
		}
		if err := p.Require(svcapi.Write, scopeOf(r)); err != nil {
			return err
		}
		spec, err := resource.Decode[resource.LKCSpec](r.Spec)
		if err != nil {
			return err
		}
		if spec.DeletionProtection {
			return api.Errorf(http.StatusConflict, api.CodeDeletionProtected,
				"cluster %s has deletion protection; turn it off with PATCH {\"spec\":{\"deletion_protection\":false}} first", id)
		}
		// Kept, with its data in every layer, until its retention ends
		// (see purge); a restore brings it back meanwhile.
		d, err := tx.ResourceDeleteRetained(ctx, resource.KindLKC, id, time.Now().Add(s.retention()))
		if err != nil {
			return err
		}
		return tx.IndexPut(ctx, ixPurge, purgeKey(*d.PurgeAt, id), id)
	})
	return svcapi.StoreError("cluster", id, err)
}

// Cluster reports whether org has the live cluster id, its environment and
// where it runs; iam asks it before it scopes a key to the cluster.
func (s *Service) Cluster(ctx context.Context, org, id string) (env string, site resource.Site, ok bool, err error) {
	err = s.st.View(ctx, func(ctx context.Context, tx store.Tx) error {
		r, err := svcapi.Own(ctx, tx, resource.KindLKC, org, id)
		if err != nil {
			return err
		}
		spec, err := resource.Decode[resource.LKCSpec](r.Spec)
		env, site = r.Environment, spec.Site()
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return "", site, false, nil
	}
	return env, site, err == nil, err
}

// ClustersIn returns the live clusters of org in env (at most
// svcapi.MaxHeld).
func (s *Service) ClustersIn(ctx context.Context, org, env string) ([]string, error) {
	return svcapi.AllIn(ctx, s.st, resource.KindLKC, org, env)
}

// scopeOf locates a cluster for authorization.
func scopeOf(r store.Resource) svcapi.Scope {
	return svcapi.Scope{Org: r.Organization, Env: r.Environment, Cluster: r.ID}
}

// ClusterOnNetwork returns a live cluster of org that uses network, "" if
// none: a network in use is not deleted.
func (s *Service) ClusterOnNetwork(ctx context.Context, org, network string) (string, error) {
	var id string
	err := s.st.View(ctx, func(ctx context.Context, tx store.Tx) error {
		after := ""
		for id == "" {
			rs, err := tx.ResourceList(ctx, store.ListParams{Kind: resource.KindLKC, Organization: org, AfterID: after, Limit: 500})
			if err != nil {
				return err
			}
			for _, r := range rs {
				spec, err := resource.Decode[resource.LKCSpec](r.Spec)
				if err != nil {
					return err
				}
				if spec.Network == network {
					id = r.ID
					break
				}
			}
			if len(rs) < 500 {
				return nil
			}
			after = rs[len(rs)-1].ID
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("kafka: clusters on %s: %w", network, err)
	}
	return id, nil
}

func ptr[T any](v T) *T { return &v }
