package iam

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"

	"github.com/mothership-dev/mothership/internal/api"
	"github.com/mothership-dev/mothership/internal/resource"
	"github.com/mothership-dev/mothership/internal/runtime/store"
	"github.com/mothership-dev/mothership/internal/service/svcapi"
)

// Paths of the identity resources.
const (
	UsersPath           = api.UsersPath
	ServiceAccountsPath = api.ServiceAccountsPath
	RoleBindingsPath    = "/iam/v2/role-bindings"
)

func toUser(r store.Resource) (api.User, error) {
	spec, err := resource.Decode[resource.UserSpec](r.Spec)
	return api.User{APIVersion: "iam/v2", Kind: "User", ID: r.ID, Metadata: svcapi.Metadata(r, UsersPath+"/"+r.ID), FullName: spec.FullName}, err
}

func toServiceAccount(r store.Resource) (api.ServiceAccount, error) {
	spec, err := resource.Decode[resource.ServiceAccountSpec](r.Spec)
	return api.ServiceAccount{APIVersion: "iam/v2", Kind: "ServiceAccount", ID: r.ID, Metadata: svcapi.Metadata(r, ServiceAccountsPath+"/"+r.ID),
		DisplayName: spec.DisplayName, Description: spec.Description}, err
}

func toRoleBinding(r store.Resource) (api.RoleBinding, error) {
	spec, err := resource.Decode[resource.RoleBindingSpec](r.Spec)
	return api.RoleBinding{APIVersion: "iam/v2", Kind: "RoleBinding", ID: r.ID, Metadata: svcapi.Metadata(r, RoleBindingsPath+"/"+r.ID),
		Principal: "User:" + spec.Principal, RoleName: spec.Role, CRNPattern: spec.CRN}, err
}

// get reads one of org's resources after checking a on the organization.
func get[T any](ctx context.Context, s *Service, p svcapi.Principal, a svcapi.Action, kind, id string, render func(store.Resource) (T, error)) (T, error) {
	var out T
	if err := p.Require(a, svcapi.Scope{Org: p.Organization}); err != nil {
		return out, err
	}
	err := s.st.View(ctx, func(ctx context.Context, tx store.Tx) error {
		r, err := svcapi.Own(ctx, tx, kind, p.Organization, id)
		if err != nil {
			return err
		}
		out, err = render(r)
		return err
	})
	return out, svcapi.StoreError(kind, id, err)
}

// list pages org's resources of kind after checking a on the organization.
func list[T any](ctx context.Context, s *Service, p svcapi.Principal, a svcapi.Action, kind, path, listKind string, page svcapi.Page,
	render func(store.Resource) (T, error)) (api.List[T], error) {
	q := svcapi.ListQuery{APIVersion: "iam/v2", ListKind: listKind, Kind: kind, Org: p.Organization, Path: path, Page: page}
	if !p.Can(a, svcapi.Scope{Org: p.Organization}) {
		// A list answers with what the caller may see: nothing here.
		return api.List[T]{APIVersion: q.APIVersion, Kind: q.ListKind, Data: []T{}}, nil
	}
	return svcapi.ListPage(ctx, s.st, q, render)
}

// GetUser returns a user of the caller's organization.
func (s *Service) GetUser(ctx context.Context, p svcapi.Principal, id string) (api.User, error) {
	return get(ctx, s, p, svcapi.Read, resource.KindUser, id, toUser)
}

// ListUsers lists the organization's users.
func (s *Service) ListUsers(ctx context.Context, p svcapi.Principal, page svcapi.Page) (api.List[api.User], error) {
	return list(ctx, s, p, svcapi.Read, resource.KindUser, UsersPath, "UserList", page, toUser)
}

// CreateServiceAccount creates an application identity; it gets roles
// through role bindings and keys from an OrganizationAdmin.
func (s *Service) CreateServiceAccount(ctx context.Context, p svcapi.Principal, in api.ServiceAccountCreate) (api.ServiceAccount, error) {
	if err := p.Require(svcapi.Admin, svcapi.Scope{Org: p.Organization}); err != nil {
		return api.ServiceAccount{}, err
	}
	if err := svcapi.ValidateDisplayName("/display_name", in.DisplayName); err != nil {
		return api.ServiceAccount{}, err
	}
	if err := validateDescription("/description", in.Description); err != nil {
		return api.ServiceAccount{}, err
	}
	var out api.ServiceAccount
	err := s.st.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		r, err := tx.ResourceCreate(ctx, store.CreateParams{Kind: resource.KindServiceAcct, ID: resource.NewID("sa"), Organization: p.Organization,
			Spec: resource.Encode(resource.ServiceAccountSpec{DisplayName: in.DisplayName, Description: in.Description})})
		if err != nil {
			return err
		}
		out, err = toServiceAccount(r)
		return err
	})
	return out, svcapi.StoreError("service account", "", err)
}

// GetServiceAccount returns a service account.
func (s *Service) GetServiceAccount(ctx context.Context, p svcapi.Principal, id string) (api.ServiceAccount, error) {
	return get(ctx, s, p, svcapi.Read, resource.KindServiceAcct, id, toServiceAccount)
}

// ListServiceAccounts lists the organization's service accounts.
func (s *Service) ListServiceAccounts(ctx context.Context, p svcapi.Principal, page svcapi.Page) (api.List[api.ServiceAccount], error) {
	return list(ctx, s, p, svcapi.Read, resource.KindServiceAcct, ServiceAccountsPath, "ServiceAccountList", page, toServiceAccount)
}

// DeleteServiceAccount deletes a service account; its role bindings stop
// granting anything and its keys stop authenticating with it.
func (s *Service) DeleteServiceAccount(ctx context.Context, p svcapi.Principal, id string) error {
	return s.deleteOwned(ctx, p, resource.KindServiceAcct, id, func(ctx context.Context, tx store.Tx) error {
		if err := s.dropPrincipal(ctx, tx, p.Organization, id); err != nil {
			return err
		}
		return s.keepAnAdmin(ctx, tx, p.Organization)
	})
}

// CreateRoleBinding grants a role on a scope to a user or service account
// of the organization.
func (s *Service) CreateRoleBinding(ctx context.Context, p svcapi.Principal, in api.RoleBindingCreate) (api.RoleBinding, error) {
	if err := p.Require(svcapi.Admin, svcapi.Scope{Org: p.Organization}); err != nil {
		return api.RoleBinding{}, err
	}
	principal, ok := strings.CutPrefix(in.Principal, "User:")
	if !ok || principal == "" {
		return api.RoleBinding{}, api.Invalid("/principal", "principal is User:<id> of a user (u-…) or service account (sa-…)")
	}
	if !slices.Contains(svcapi.Roles, in.RoleName) {
		return api.RoleBinding{}, api.Invalid("/role_name", "role_name must be one of %s", strings.Join(svcapi.Roles, ", "))
	}
	scope, err := svcapi.ParseCRN(in.CRNPattern)
	if err != nil {
		return api.RoleBinding{}, api.Invalid("/crn_pattern", "crn_pattern: %v", err)
	}
	if scope.Org != p.Organization {
		return api.RoleBinding{}, api.Invalid("/crn_pattern", "crn_pattern must be in this organization (%s)", p.Organization)
	}
	switch {
	case in.RoleName == svcapi.RoleOrganizationAdmin && scope.Env != "":
		return api.RoleBinding{}, api.Invalid("/crn_pattern", "OrganizationAdmin is granted on an organization")
	case in.RoleName == svcapi.RoleEnvironmentAdmin && (scope.Env == "" || scope.Cluster != ""):
		return api.RoleBinding{}, api.Invalid("/crn_pattern", "EnvironmentAdmin is granted on an environment")
	case in.RoleName == svcapi.RoleCloudClusterAdmin && scope.Cluster == "":
		return api.RoleBinding{}, api.Invalid("/crn_pattern", "CloudClusterAdmin is granted on a cluster")
	}
	var out api.RoleBinding
	err = s.st.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		if !s.principalExists(ctx, tx, p.Organization, principal) {
			return api.Invalid("/principal", "no user or service account %q in this organization", principal)
		}
		if scope.Env != "" {
			if _, err := svcapi.Own(ctx, tx, resource.KindEnvironment, p.Organization, scope.Env); err != nil {
				return api.Invalid("/crn_pattern", "environment %q not found", scope.Env)
			}
		}
		if scope.Cluster != "" {
			env, _, ok, err := s.clusters.Cluster(ctx, p.Organization, scope.Cluster)
			if err != nil {
				return err
			}
			if !ok || env != scope.Env {
				return api.Invalid("/crn_pattern", "cluster %q not found in environment %q", scope.Cluster, scope.Env)
			}
		}
		r, err := tx.ResourceCreate(ctx, store.CreateParams{Kind: resource.KindRoleBinding, ID: resource.NewID("rb"), Organization: p.Organization,
			Spec: resource.Encode(resource.RoleBindingSpec{Principal: principal, Role: in.RoleName, CRN: scope.CRN()})})
		if err != nil {
			return err
		}
		if out, err = toRoleBinding(r); err != nil {
			return err
		}
		return s.syncKeyAccess(ctx, tx, p.Organization, principal)
	})
	return out, svcapi.StoreError("role binding", "", err)
}

// GetRoleBinding returns a role binding.
func (s *Service) GetRoleBinding(ctx context.Context, p svcapi.Principal, id string) (api.RoleBinding, error) {
	return get(ctx, s, p, svcapi.Admin, resource.KindRoleBinding, id, toRoleBinding)
}

// ListRoleBindings lists the organization's role bindings.
func (s *Service) ListRoleBindings(ctx context.Context, p svcapi.Principal, page svcapi.Page) (api.List[api.RoleBinding], error) {
	return list(ctx, s, p, svcapi.Admin, resource.KindRoleBinding, RoleBindingsPath, "RoleBindingList", page, toRoleBinding)
}

// DeleteRoleBinding revokes a role binding, unless it is the
// organization's last OrganizationAdmin: no one could grant a role again.
func (s *Service) DeleteRoleBinding(ctx context.Context, p svcapi.Principal, id string) error {
	return s.deleteOwned(ctx, p, resource.KindRoleBinding, id, func(ctx context.Context, tx store.Tx) error {
		if err := s.keepAnAdmin(ctx, tx, p.Organization); err != nil {
			return err
		}
		r, err := tx.ResourceGetAny(ctx, resource.KindRoleBinding, id)
		if err != nil {
			return err
		}
		spec, err := resource.Decode[resource.RoleBindingSpec](r.Spec)
		if err != nil {
			return err
		}
		if spec.Role == svcapi.RoleFleetAdmin {
			return api.Errorf(http.StatusForbidden, api.CodeForbidden,
				"FleetAdmin belongs to the installation, not to the organization: no organization's admin grants or revokes it")
		}
		return s.syncKeyAccess(ctx, tx, p.Organization, spec.Principal)
	})
}

// keepAnAdmin refuses a change that leaves the organization without a
// live OrganizationAdmin.
func (s *Service) keepAnAdmin(ctx context.Context, tx store.Tx, org string) error {
	if _, err := s.firstAdmin(ctx, tx, org); err != nil {
		return api.Errorf(http.StatusConflict, api.CodeConflict,
			"this is the organization's last OrganizationAdmin binding; grant the role to someone else first")
	}
	return nil
}

// deleteOwned deletes one of the organization's identity resources, an
// OrganizationAdmin's act, then runs also in the same transaction.
func (s *Service) deleteOwned(ctx context.Context, p svcapi.Principal, kind, id string, also func(ctx context.Context, tx store.Tx) error) error {
	err := s.st.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		if _, err := svcapi.Own(ctx, tx, kind, p.Organization, id); err != nil {
			return err
		}
		if err := p.Require(svcapi.Admin, svcapi.Scope{Org: p.Organization}); err != nil {
			return err
		}
		if _, err := tx.ResourceDelete(ctx, kind, id); err != nil {
			return err
		}
		if also != nil {
			return also(ctx, tx)
		}
		return nil
	})
	return svcapi.StoreError(kind, id, err)
}

// dropPrincipal deletes the role bindings and keys of a deleted principal,
// all iam's own resources, every page of them.
func (s *Service) dropPrincipal(ctx context.Context, tx store.Tx, org, principal string) error {
	for _, kind := range []string{resource.KindRoleBinding, resource.KindAPIKey} {
		after := ""
		for {
			rs, err := tx.ResourceList(ctx, store.ListParams{Kind: kind, Organization: org, AfterID: after, Limit: 500})
			if err != nil {
				return err
			}
			for _, r := range rs {
				var owner struct {
					Principal string `json:"principal"`
					Owner     string `json:"owner"`
				}
				if err := json.Unmarshal(r.Spec, &owner); err != nil {
					return err
				}
				if owner.Principal == principal || owner.Owner == principal {
					if _, err := tx.ResourceDelete(ctx, kind, r.ID); err != nil {
						return err
					}
					s.forget(r.ID)
				}
			}
			if len(rs) < 500 {
				break
			}
			after = rs[len(rs)-1].ID
		}
	}
	return nil
}

// UpdateServiceAccount changes a service account's display name or
// description.
func (s *Service) UpdateServiceAccount(ctx context.Context, p svcapi.Principal, id string, in api.ServiceAccountUpdate) (api.ServiceAccount, error) {
	return updateSpec(ctx, s, p, resource.KindServiceAcct, "service account", id, orgAdmin(p), func(spec *resource.ServiceAccountSpec) error {
		if in.DisplayName != nil {
			if err := svcapi.ValidateDisplayName("/display_name", *in.DisplayName); err != nil {
				return err
			}
			spec.DisplayName = *in.DisplayName
		}
		if in.Description != nil {
			if err := validateDescription("/description", *in.Description); err != nil {
				return err
			}
			spec.Description = *in.Description
		}
		return nil
	}, toServiceAccount)
}
