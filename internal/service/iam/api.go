package iam

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/mothership-dev/mothership/internal/api"
	"github.com/mothership-dev/mothership/internal/resource"
	"github.com/mothership-dev/mothership/internal/runtime/store"
	"github.com/mothership-dev/mothership/internal/service/svcapi"
)

// Paths of the resources this service serves.
const (
	EnvironmentsPath = api.EnvironmentsPath
	APIKeysPath      = "/iam/v2/api-keys"
)

func toEnvironment(r store.Resource) (api.Environment, error) {
	spec, err := resource.Decode[resource.EnvironmentSpec](r.Spec)
	return api.Environment{APIVersion: "org/v2", Kind: "Environment", ID: r.ID,
		Metadata: svcapi.Metadata(r, EnvironmentsPath+"/"+r.ID), DisplayName: spec.DisplayName}, err
}

// CreateEnvironment creates an environment in the caller's organization.
func (s *Service) CreateEnvironment(ctx context.Context, p svcapi.Principal, in api.EnvironmentCreate) (api.Environment, error) {
	if err := p.Require(svcapi.Admin, svcapi.Scope{Org: p.Organization}); err != nil {
		return api.Environment{}, err
	}
	if err := svcapi.ValidateDisplayName("/display_name", in.DisplayName); err != nil {
		return api.Environment{}, err
	}
	var out api.Environment
	err := s.st.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		r, err := tx.ResourceCreate(ctx, store.CreateParams{Kind: resource.KindEnvironment, ID: resource.NewID("env"),
			Organization: p.Organization, Spec: resource.Encode(resource.EnvironmentSpec{DisplayName: in.DisplayName})})
		if err != nil {
			return err
		}
		out, err = toEnvironment(r)
		return err
	})
	return out, svcapi.StoreError("environment", "", err)
}

// GetEnvironment returns one of the caller's environments.
func (s *Service) GetEnvironment(ctx context.Context, p svcapi.Principal, id string) (api.Environment, error) {
	var out api.Environment
	err := s.st.View(ctx, func(ctx context.Context, tx store.Tx) error {
		r, err := svcapi.Own(ctx, tx, resource.KindEnvironment, p.Organization, id)
		if err != nil {
			return err
		}
		if err := p.Require(svcapi.Read, svcapi.Scope{Org: r.Organization, Env: r.ID}); err != nil {
			return err
		}
		out, err = toEnvironment(r)
		return err
	})
	return out, svcapi.StoreError("environment", id, err)
}

// EnvironmentExists reports whether org has the live environment id; the
// kafka service asks it before it accepts a cluster.
func (s *Service) EnvironmentExists(ctx context.Context, org, id string) (bool, error) {
	err := s.st.View(ctx, func(ctx context.Context, tx store.Tx) error {
		_, err := svcapi.Own(ctx, tx, resource.KindEnvironment, org, id)
		return err
	})
	if api.AsError(svcapi.StoreError("environment", id, err)).Status == http.StatusNotFound {
		return false, nil
	}
	return err == nil, err
}

// ListEnvironments lists the caller's environments.
func (s *Service) ListEnvironments(ctx context.Context, p svcapi.Principal, page svcapi.Page) (api.List[api.Environment], error) {
	return svcapi.ListPage(ctx, s.st, svcapi.ListQuery{APIVersion: "org/v2", ListKind: "EnvironmentList",
		Kind: resource.KindEnvironment, Org: p.Organization, Path: EnvironmentsPath, Page: page,
		Visible: func(r store.Resource) bool {
			return p.Can(svcapi.Read, svcapi.Scope{Org: r.Organization, Env: r.ID})
		}}, toEnvironment)
}

// DeleteEnvironment deletes an environment that holds no cluster.
func (s *Service) DeleteEnvironment(ctx context.Context, p svcapi.Principal, id string) error {
	err := s.st.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		if _, err := svcapi.Own(ctx, tx, resource.KindEnvironment, p.Organization, id); err != nil {
			return err
		}
		if err := p.Require(svcapi.Admin, svcapi.Scope{Org: p.Organization}); err != nil {
			return err
		}
		// Asked of their owners, not of events that may lag: a cluster
		// created a moment ago must keep its environment.
		clusters, err := s.clusters.ClustersIn(ctx, p.Organization, id)
		if err != nil {
			return err
		}
		networks, err := s.networks.NetworksIn(ctx, p.Organization, id)
		if err != nil {
			return err
		}
		if held := slices.Concat(clusters, networks); len(held) > 0 {
			more := ""
			if len(clusters) == svcapi.MaxHeld || len(networks) == svcapi.MaxHeld {
				more = " and more"
			}
			return api.Errorf(http.StatusConflict, api.CodeConflict, "environment %q still holds %s%s; delete them first",
				id, strings.Join(held, ", "), more)
		}
		_, err = tx.ResourceDelete(ctx, resource.KindEnvironment, id)
		return err
	})
	return svcapi.StoreError("environment", id, err)
}

func toAPIKey(r store.Resource) (api.APIKey, error) {
	spec, err := resource.Decode[resource.APIKeySpec](r.Spec)
	owner := svcapi.PrincipalRef(r.Organization, spec.Owner)
	k := api.APIKey{APIVersion: "iam/v2", Kind: "ApiKey", ID: r.ID, Metadata: svcapi.Metadata(r, APIKeysPath+"/"+r.ID),
		Spec: api.APIKeySpec{DisplayName: spec.DisplayName, Description: spec.Description, Owner: &owner}}
	if spec.Resource != "" {
		// A cluster key lives in its cluster's environment (keys made
		// before that was recorded name none).
		ref := svcapi.ClusterRef(r.Organization, r.Environment, spec.Resource)
		k.Spec.Resource = &ref
	} else {
		k.Spec.Resource = &api.ObjectReference{ID: "cloud", Kind: "Cloud"}
	}
	return k, err
}

// CreateAPIKey creates a key for the caller; the secret is in the answer
// and nowhere else. A key scoped to a cluster is that cluster's SASL
// credential.
func (s *Service) CreateAPIKey(ctx context.Context, p svcapi.Principal, in api.APIKeyCreate) (api.APIKey, error) {
	scope := ""
	if in.Spec.Resource != nil && in.Spec.Resource.ID != "cloud" {
		scope = in.Spec.Resource.ID
		if !strings.HasPrefix(scope, "lkc-") {
			return api.APIKey{}, api.Invalid("/spec/resource/id", "resource must be a Kafka cluster id (lkc-…) or \"cloud\"")
		}
	}
	if in.Spec.Secret != "" {
		return api.APIKey{}, api.Invalid("/spec/secret", "the secret is generated by the service and cannot be chosen")
	}
	if in.Spec.DisplayName != "" {
		if err := svcapi.ValidateDisplayName("/spec/display_name", in.Spec.DisplayName); err != nil {
			return api.APIKey{}, err
		}
	}
	if err := validateDescription("/spec/description", in.Spec.Description); err != nil {
		return api.APIKey{}, err
	}
	owner := p.Owner
	if in.Spec.Owner != nil && in.Spec.Owner.ID != "" {
		owner = in.Spec.Owner.ID
	}
	var out api.APIKey
	err := s.st.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		if owner != p.Owner {
			// A key for someone else is identity administration.
			if err := p.Require(svcapi.Admin, svcapi.Scope{Org: p.Organization}); err != nil {
				return err
			}
			if !s.principalExists(ctx, tx, p.Organization, owner) {
				return api.Invalid("/spec/owner/id", "no user or service account %q in this organization", owner)
			}
		}
		if n, err := s.keysOf(ctx, tx, p.Organization, owner); err != nil {
			return err
		} else if n >= MaxKeysPerPrincipal {
			return api.Errorf(http.StatusPaymentRequired, api.CodeQuotaExceeded,
				"%s has %d API keys, the most a principal may hold; delete one first", owner, n)
		}
		var site resource.Site
		var env string
		if scope != "" {
			var where resource.Site
			var ok bool
			var err error
			env, where, ok, err = s.clusters.Cluster(ctx, p.Organization, scope)
			if err != nil {
				return err
			}
			if !ok {
				return api.Invalid("/spec/resource/id", "cluster %q not found", scope)
			}
			if err := p.Require(svcapi.Write, svcapi.Scope{Org: p.Organization, Env: env, Cluster: scope}); err != nil {
				return err
			}
			site = where
		} else if !p.MayAttempt(svcapi.Read) {
			return p.Require(svcapi.Read, svcapi.Scope{Org: p.Organization})
		}
		key, secret, err := s.createKey(ctx, tx, keyFor{org: p.Organization, owner: owner, cluster: scope, env: env, site: site,
			name: in.Spec.DisplayName, description: in.Spec.Description})
		if err != nil {
			return err
		}
		r, err := tx.ResourceGet(ctx, resource.KindAPIKey, key)
		if err != nil {
			return err
		}
		out, err = toAPIKey(r)
		out.Spec.Secret = secret
		return err
	})
	return out, svcapi.StoreError("api key", "", err)
}

// GetAPIKey returns one of the organization's keys, without its secret.
func (s *Service) GetAPIKey(ctx context.Context, p svcapi.Principal, id string) (api.APIKey, error) {
	var out api.APIKey
	err := s.st.View(ctx, func(ctx context.Context, tx store.Tx) error {
		r, err := svcapi.Own(ctx, tx, resource.KindAPIKey, p.Organization, id)
		if err != nil {
			return err
		}
		if err := s.mayManageKey(p, r); err != nil {
			return err
		}
		out, err = toAPIKey(r)
		return err
	})
	return out, svcapi.StoreError("api key", id, err)
}

// ListAPIKeys lists the organization's keys, without secrets.
func (s *Service) ListAPIKeys(ctx context.Context, p svcapi.Principal, page svcapi.Page) (api.List[api.APIKey], error) {
	return svcapi.ListPage(ctx, s.st, svcapi.ListQuery{APIVersion: "iam/v2", ListKind: "ApiKeyList",
		Kind: resource.KindAPIKey, Org: p.Organization, Path: APIKeysPath, Page: page,
		Visible: func(r store.Resource) bool { return s.mayManageKey(p, r) == nil }}, toAPIKey)
}

// DeleteAPIKey deletes one of the organization's keys; the data plane
// drops its SASL credential when the event reaches it.
func (s *Service) DeleteAPIKey(ctx context.Context, p svcapi.Principal, id string) error {
	err := s.st.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		r, err := svcapi.Own(ctx, tx, resource.KindAPIKey, p.Organization, id)
		if err != nil {
			return err
		}
		if err := s.mayManageKey(p, r); err != nil {
			return err
		}
		_, err = tx.ResourceDelete(ctx, resource.KindAPIKey, id)
		return err
	})
	s.forget(id)
	return svcapi.StoreError("api key", id, err)
}

// mayManageKey lets a principal see and delete its own keys; an
// OrganizationAdmin sees and deletes every key of the organization.
func (s *Service) mayManageKey(p svcapi.Principal, r store.Resource) error {
	spec, err := resource.Decode[resource.APIKeySpec](r.Spec)
	if err != nil {
		return err
	}
	if spec.Owner == p.Owner {
		return nil
	}
	return p.Require(svcapi.Admin, svcapi.Scope{Org: p.Organization})
}

// principalExists reports whether id is a live user or service account of
// org.
func (s *Service) principalExists(ctx context.Context, tx store.Tx, org, id string) bool {
	for _, kind := range []string{resource.KindUser, resource.KindServiceAcct} {
		if _, err := svcapi.Own(ctx, tx, kind, org, id); err == nil {
			return true
		}
	}
	return false
}

// forget drops a key's cached verification.
func (s *Service) forget(key string) {
	s.mu.Lock()
	delete(s.verified, key)
	s.mu.Unlock()
}

// MaxKeysPerPrincipal bounds a user's or service account's keys, as
// Confluent Cloud does: each key costs a slow hash to make and its own
// rate-limit bucket.
const MaxKeysPerPrincipal = 10

// keysOf counts the live keys of owner.
func (s *Service) keysOf(ctx context.Context, tx store.Tx, org, owner string) (int, error) {
	keys, err := s.ownedKeys(ctx, tx, org, owner)
	return len(keys), err
}

// ownedKeys returns the live keys of owner, every page of them.
func (s *Service) ownedKeys(ctx context.Context, tx store.Tx, org, owner string) ([]store.Resource, error) {
	var out []store.Resource
	after := ""
	for {
		rs, err := tx.ResourceList(ctx, store.ListParams{Kind: resource.KindAPIKey, Organization: org, AfterID: after, Limit: 500})
		if err != nil {
			return nil, err
		}
		for _, r := range rs {
			spec, err := resource.Decode[resource.APIKeySpec](r.Spec)
			if err != nil {
				return nil, err
			}
			if spec.Owner == owner {
				out = append(out, r)
			}
		}
		if len(rs) < 500 {
			return out, nil
		}
		after = rs[len(rs)-1].ID
	}
}

// aclsOnly says whether a key of a principal with bindings on a cluster
// acts only as the cluster's ACLs allow: no binding of its owner
// administers the cluster (OrganizationAdmin, EnvironmentAdmin of its
// environment, CloudClusterAdmin of it), as on Confluent Cloud.
func aclsOnly(bindings []svcapi.Binding, org, env, cluster string) bool {
	return !svcapi.Principal{Bindings: bindings}.Can(svcapi.Write, svcapi.Scope{Org: org, Env: env, Cluster: cluster})
}

// syncKeyAccess brings the cluster keys of principal in step with its role
// bindings after they changed in tx: a key whose owner gained or lost the
// administration of its cluster changes its ACLsOnly, which the cluster's
// data plane applies.
func (s *Service) syncKeyAccess(ctx context.Context, tx store.Tx, org, principal string) error {
	bindings, err := s.bindings(ctx, tx, org)
	if err != nil {
		return err
	}
	keys, err := s.ownedKeys(ctx, tx, org, principal)
	if err != nil {
		return err
	}
	for _, k := range keys {
		spec, err := resource.Decode[resource.APIKeySpec](k.Spec)
		if err != nil {
			return err
		}
		want := aclsOnly(bindings[principal], org, k.Environment, spec.Resource)
		if spec.Resource == "" || spec.ACLsOnly == want {
			continue
		}
		spec.ACLsOnly = want
		if _, err := tx.ResourceUpdateSpec(ctx, store.UpdateSpecParams{Kind: resource.KindAPIKey, ID: k.ID, Spec: resource.Encode(spec)}); err != nil {
			return fmt.Errorf("key %s: %w", k.ID, err)
		}
	}
	return nil
}

// validateDescription checks a description: at most 256 characters,
// none of them a control character.
func validateDescription(pointer, d string) error {
	if utf8.RuneCountInString(d) > 256 || strings.IndexFunc(d, unicode.IsControl) >= 0 {
		return api.Invalid(pointer, "description is at most 256 characters, without control characters")
	}
	return nil
}

// updateSpec changes the spec of one of the organization's resources of
// kind (what, in errors) as change says, once may allows the caller, and
// renders the result.
func updateSpec[S, T any](ctx context.Context, s *Service, p svcapi.Principal, kind, what, id string,
	may func(store.Resource) error, change func(*S) error, render func(store.Resource) (T, error)) (T, error) {
	var out T
	err := s.st.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		r, err := svcapi.Own(ctx, tx, kind, p.Organization, id)
		if err != nil {
			return err
		}
		if err := may(r); err != nil {
			return err
		}
		spec, err := resource.Decode[S](r.Spec)
		if err != nil {
			return err
		}
		if err := change(&spec); err != nil {
			return err
		}
		if r, err = tx.ResourceUpdateSpec(ctx, store.UpdateSpecParams{Kind: kind, ID: id, Spec: resource.Encode(spec)}); err != nil {
			return err
		}
		out, err = render(r)
		return err
	})
	return out, svcapi.StoreError(what, id, err)
}

// orgAdmin allows an OrganizationAdmin of the caller's organization.
func orgAdmin(p svcapi.Principal) func(store.Resource) error {
	return func(store.Resource) error { return p.Require(svcapi.Admin, svcapi.Scope{Org: p.Organization}) }
}

// UpdateEnvironment renames an environment.
func (s *Service) UpdateEnvironment(ctx context.Context, p svcapi.Principal, id string, in api.EnvironmentUpdate) (api.Environment, error) {
	return updateSpec(ctx, s, p, resource.KindEnvironment, "environment", id, orgAdmin(p), func(spec *resource.EnvironmentSpec) error {
		if in.DisplayName != nil {
			if err := svcapi.ValidateDisplayName("/display_name", *in.DisplayName); err != nil {
				return err
			}
			spec.DisplayName = *in.DisplayName
		}
		return nil
	}, toEnvironment)
}

// UpdateAPIKey changes a key's display name or description; what it
// grants never changes (a new key does that).
func (s *Service) UpdateAPIKey(ctx context.Context, p svcapi.Principal, id string, in api.APIKeyUpdate) (api.APIKey, error) {
	may := func(r store.Resource) error { return s.mayManageKey(p, r) }
	return updateSpec(ctx, s, p, resource.KindAPIKey, "api key", id, may, func(spec *resource.APIKeySpec) error {
		if d := in.Spec.DisplayName; d != nil {
			if *d != "" {
				if err := svcapi.ValidateDisplayName("/spec/display_name", *d); err != nil {
					return err
				}
			}
			spec.DisplayName = *d
		}
		if d := in.Spec.Description; d != nil {
			if err := validateDescription("/spec/description", *d); err != nil {
				return err
			}
			spec.Description = *d
		}
		return nil
	}, toAPIKey)
}
