package fleet

import (
	"cmp"
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/mothership-dev/mothership/internal/api"
	"github.com/mothership-dev/mothership/internal/resource"
	"github.com/mothership-dev/mothership/internal/runtime/store"
	"github.com/mothership-dev/mothership/internal/service/svcapi"
)

// SiteWindowPath is where an operator sets a site's maintenance window,
// with the site's cloud and region as path values.
const SiteWindowPath = "/fleet/v1/sites/{cloud}/{region}/maintenance-window"

// SiteWindow is a site's maintenance window: its shared PKCs', and its
// Dedicated ones' whose tenants set none.
type SiteWindow struct {
	Site              string          `json:"site"`
	MaintenanceWindow resource.Window `json:"maintenance_window"`
}

// SetSiteWindow answers PUT …/maintenance-window. site is cloud/region,
// one a satellite serves (the gateway checks).
func (s *Service) SetSiteWindow(ctx context.Context, p svcapi.Principal, site string, w resource.Window) (SiteWindow, error) {
	if err := p.RequireFleetAdmin(); err != nil {
		return SiteWindow{}, err
	}
	site = strings.ToLower(site)
	w.Day = strings.ToUpper(w.Day)
	if bad := w.Validate(); len(bad) > 0 {
		var errs []*api.Error
		for _, field := range []string{"day", "start_time", "duration"} {
			if msg, ok := bad[field]; ok {
				errs = append(errs, api.Invalid("/maintenance_window/"+field, "%s", msg))
			}
		}
		return SiteWindow{}, api.Join(errs...)
	}
	spec := resource.Encode(w)
	err := s.st.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		_, err := tx.ResourceGet(ctx, resource.KindSiteWindow, site)
		switch {
		case errors.Is(err, store.ErrNotFound):
			_, err = tx.ResourceCreate(ctx, store.CreateParams{Kind: resource.KindSiteWindow, ID: site, Spec: spec})
		case err == nil:
			_, err = tx.ResourceUpdateSpec(ctx, store.UpdateSpecParams{Kind: resource.KindSiteWindow, ID: site, Spec: spec})
		}
		return err
	})
	if err != nil {
		return SiteWindow{}, err
	}
	s.setSiteWindow(site, &w)
	s.log.InfoContext(ctx, "site maintenance window set", "site", site, "window", w, "actor", p.Owner)
	return SiteWindow{Site: site, MaintenanceWindow: w}, nil
}

// DeleteSiteWindow answers DELETE …/maintenance-window: the site's PKCs
// may start an upgrade any time again.
func (s *Service) DeleteSiteWindow(ctx context.Context, p svcapi.Principal, site string) error {
	if err := p.RequireFleetAdmin(); err != nil {
		return err
	}
	site = strings.ToLower(site)
	err := s.st.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		none := api.Errorf(http.StatusNotFound, api.CodeNotFound, "site %s has no maintenance window", site)
		r, err := tx.ResourceGet(ctx, resource.KindSiteWindow, site)
		if errors.Is(err, store.ErrNotFound) {
			return none
		} else if err != nil {
			return err
		}
		if w, err := resource.Decode[resource.Window](r.Spec); err != nil || w == (resource.Window{}) {
			return cmp.Or(err, error(none))
		}
		// Kept, emptied: a window set again later follows its history.
		_, err = tx.ResourceUpdateSpec(ctx, store.UpdateSpecParams{Kind: resource.KindSiteWindow, ID: site, Spec: resource.Encode(resource.Window{})})
		return err
	})
	if err == nil {
		s.setSiteWindow(site, nil)
	}
	return err
}

func (s *Service) setSiteWindow(site string, w *resource.Window) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if w == nil {
		delete(s.siteWindows, site)
	} else {
		s.siteWindows[site] = *w
	}
}

// takeOrganization takes an organization's maintenance window into the
// view.
func (s *Service) takeOrganization(ctx context.Context, tx store.Tx, org string) error {
	r, err := store.ObservedResource(ctx, tx, orgDesired, org)
	if err != nil {
		return err
	}
	spec, err := resource.Decode[resource.OrganizationSpec](r.Spec)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if spec.MaintenanceWindow == nil || r.Deleted() {
		delete(s.orgWindows, org)
	} else {
		s.orgWindows[org] = *spec.MaintenanceWindow
	}
	return nil
}

// loadSiteWindows reads the sites' windows into the view.
func (s *Service) loadSiteWindows(ctx context.Context, tx store.Tx) error {
	return store.EachResource(ctx, tx, resource.KindSiteWindow, func(r store.Resource) error {
		w, err := resource.Decode[resource.Window](r.Spec)
		if err == nil && w != (resource.Window{}) {
			s.setSiteWindow(r.ID, &w)
		}
		return err
	})
}
