package iam

import (
	"context"

	"github.com/mothership-dev/mothership/internal/api"
	"github.com/mothership-dev/mothership/internal/resource"
	"github.com/mothership-dev/mothership/internal/runtime/store"
	"github.com/mothership-dev/mothership/internal/service/svcapi"
)

func toOrganization(r store.Resource) (api.Organization, error) {
	spec, err := resource.Decode[resource.OrganizationSpec](r.Spec)
	return api.Organization{APIVersion: "org/v2", Kind: "Organization", ID: r.ID, Metadata: svcapi.Metadata(r, api.OrganizationsPath+"/"+r.ID),
		DisplayName: spec.DisplayName, MaintenanceWindow: svcapi.APIWindow(spec.MaintenanceWindow)}, err
}

// GetOrganization returns the caller's organization (another's is not
// found).
func (s *Service) GetOrganization(ctx context.Context, p svcapi.Principal, id string) (api.Organization, error) {
	var out api.Organization
	err := s.st.View(ctx, func(ctx context.Context, tx store.Tx) error {
		r, err := svcapi.Own(ctx, tx, resource.KindOrganization, p.Organization, id)
		if err != nil {
			return err
		}
		if err := p.Require(svcapi.Read, svcapi.Scope{Org: r.ID}); err != nil {
			return err
		}
		out, err = toOrganization(r)
		return err
	})
	return out, svcapi.StoreError("organization", id, err)
}

// ListOrganizations lists the organizations the caller belongs to: its
// own.
func (s *Service) ListOrganizations(ctx context.Context, p svcapi.Principal, _ svcapi.Page) (api.List[api.Organization], error) {
	org, err := s.GetOrganization(ctx, p, p.Organization)
	if err != nil {
		return api.List[api.Organization]{}, err
	}
	return api.List[api.Organization]{APIVersion: "org/v2", Kind: "OrganizationList", Data: []api.Organization{org},
		Metadata: api.ListMeta{TotalSize: 1}}, nil
}

// UpdateOrganization renames the caller's organization or sets its
// maintenance window, which its Dedicated clusters without one of their
// own follow; every mistake is named at once.
func (s *Service) UpdateOrganization(ctx context.Context, p svcapi.Principal, id string, in api.OrganizationUpdate) (api.Organization, error) {
	return updateSpec(ctx, s, p, resource.KindOrganization, "organization", id, orgAdmin(p), func(spec *resource.OrganizationSpec) error {
		var errs []*api.Error
		if in.DisplayName != nil {
			if err := svcapi.ValidateDisplayName("/display_name", *in.DisplayName); err != nil {
				return err
			}
			spec.DisplayName = *in.DisplayName
		}
		if in.MaintenanceWindow != nil {
			spec.MaintenanceWindow, errs = svcapi.Window("/maintenance_window", *in.MaintenanceWindow)
		}
		return api.Join(errs...)
	}, toOrganization)
}
