package gateway

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/mothership-dev/mothership/internal/api"
	"github.com/mothership-dev/mothership/internal/resource"
	"github.com/mothership-dev/mothership/internal/service/fleet"
	"github.com/mothership-dev/mothership/internal/service/svcapi"
	syncsvc "github.com/mothership-dev/mothership/internal/service/sync"
)

// Fleet is what the gateway asks of the fleet service: the operators' view
// of every organization's clusters and PKCs.
type Fleet interface {
	ListClusters(ctx context.Context, p svcapi.Principal, q fleet.Query) (fleet.List[fleet.Cluster], error)
	ListPKCs(ctx context.Context, p svcapi.Principal, q fleet.Query) (fleet.List[fleet.PKC], error)
	GetSummary(ctx context.Context, p svcapi.Principal) (fleet.Summary, error)
	GetVersions(ctx context.Context, p svcapi.Principal) (fleet.Versions, error)
	SetVersions(ctx context.Context, p svcapi.Principal, in fleet.VersionsUpdate) (fleet.Versions, error)
	CreateUpgrade(ctx context.Context, p svcapi.Principal, in fleet.UpgradeRequest) (fleet.Upgrade, error)
	ListUpgrades(ctx context.Context, p svcapi.Principal) (fleet.UpgradeList, error)
	GetUpgrade(ctx context.Context, p svcapi.Principal, id string) (fleet.Upgrade, error)
	OperateUpgrade(ctx context.Context, p svcapi.Principal, id, op string) (fleet.Upgrade, error)
	CreatePause(ctx context.Context, p svcapi.Principal, in fleet.PauseRequest) (fleet.Pause, error)
	DeletePause(ctx context.Context, p svcapi.Principal, id string) error
	ListPauses(ctx context.Context, p svcapi.Principal) (fleet.PauseList, error)
	SetSiteWindow(ctx context.Context, p svcapi.Principal, site string, w resource.Window) (fleet.SiteWindow, error)
	DeleteSiteWindow(ctx context.Context, p svcapi.Principal, site string) error
}

var (
	_ Fleet = (*fleet.Service)(nil)
	_ Fleet = (*fleet.Client)(nil)
)

// FleetList is a page of the fleet view.
type FleetList[T any] struct {
	APIVersion string            `json:"api_version"`
	Kind       string            `json:"kind"`
	Metadata   FleetListMetadata `json:"metadata"`
	Data       []T               `json:"data"`
}

// FleetListMetadata says where the list goes on and how long it is.
type FleetListMetadata struct {
	Next      string `json:"next,omitempty"`
	TotalSize int    `json:"total_size"`
}

// SitesPath lists the sites with their satellites' links, and adds one;
// SitePath is one of them.
const (
	SitesPath = "/fleet/v1/sites"
	SitePath  = SitesPath + "/{cloud}/{region}"
)

// SiteRequest adds a site.
type SiteRequest struct {
	Cloud  string `json:"cloud"`
	Region string `json:"region"`
}

// FleetSites is every site with its satellite's link.
type FleetSites struct {
	APIVersion string             `json:"api_version"`
	Kind       string             `json:"kind"`
	Data       []syncsvc.SiteLink `json:"data"`
}

// fleetRoutes are the operators' routes: every one answers 404 to anyone
// but a FleetAdmin, whatever its roles in its organization.
func (g *Gateway) fleetRoutes() []Route {
	return []Route{
		{Method: http.MethodGet, Pattern: fleet.ClustersPath, Fleet: true, handler: func(w http.ResponseWriter, r *http.Request, p svcapi.Principal) error {
			q, err := fleetQuery(r)
			if err != nil {
				return err
			}
			l, err := g.cfg.Fleet.ListClusters(r.Context(), p, q)
			return ok(w)(fleetPage(r, "ClusterList", l), err)
		}},
		{Method: http.MethodPost, Pattern: fleet.ClustersPath + "/{id}/restore", Fleet: true, handler: g.restoreCluster},
		{Method: http.MethodGet, Pattern: fleet.PKCsPath, Fleet: true, handler: func(w http.ResponseWriter, r *http.Request, p svcapi.Principal) error {
			q, err := fleetQuery(r)
			if err != nil {
				return err
			}
			l, err := g.cfg.Fleet.ListPKCs(r.Context(), p, q)
			return ok(w)(fleetPage(r, "PKCList", l), err)
		}},
		{Method: http.MethodGet, Pattern: fleet.SummaryPath, Fleet: true, handler: func(w http.ResponseWriter, r *http.Request, p svcapi.Principal) error {
			return ok(w)(g.cfg.Fleet.GetSummary(r.Context(), p))
		}},
		{Method: http.MethodGet, Pattern: fleet.VersionsPath, Fleet: true, handler: func(w http.ResponseWriter, r *http.Request, p svcapi.Principal) error {
			return ok(w)(g.cfg.Fleet.GetVersions(r.Context(), p))
		}},
		{Method: http.MethodPatch, Pattern: fleet.VersionsPath, Fleet: true, handler: func(w http.ResponseWriter, r *http.Request, p svcapi.Principal) error {
			var in fleet.VersionsUpdate
			if e := api.Decode(r.Body, &in); e != nil {
				return e
			}
			return ok(w)(g.cfg.Fleet.SetVersions(r.Context(), p, in))
		}},
		{Method: http.MethodGet, Pattern: fleet.UpgradesPath, Fleet: true, handler: func(w http.ResponseWriter, r *http.Request, p svcapi.Principal) error {
			return ok(w)(g.cfg.Fleet.ListUpgrades(r.Context(), p))
		}},
		{Method: http.MethodPost, Pattern: fleet.UpgradesPath, Fleet: true, handler: func(w http.ResponseWriter, r *http.Request, p svcapi.Principal) error {
			var in fleet.UpgradeRequest
			if e := api.Decode(r.Body, &in); e != nil {
				return e
			}
			out, err := g.cfg.Fleet.CreateUpgrade(r.Context(), p, in)
			return created(w, err, http.StatusAccepted, fleet.UpgradesPath+"/"+out.ID, out)
		}},
		{Method: http.MethodGet, Pattern: fleet.UpgradesPath + "/{id}", Fleet: true, handler: func(w http.ResponseWriter, r *http.Request, p svcapi.Principal) error {
			return ok(w)(g.cfg.Fleet.GetUpgrade(r.Context(), p, r.PathValue("id")))
		}},
		{Method: http.MethodGet, Pattern: fleet.PausesPath, Fleet: true, handler: func(w http.ResponseWriter, r *http.Request, p svcapi.Principal) error {
			return ok(w)(g.cfg.Fleet.ListPauses(r.Context(), p))
		}},
		{Method: http.MethodPost, Pattern: fleet.PausesPath, Fleet: true, handler: func(w http.ResponseWriter, r *http.Request, p svcapi.Principal) error {
			var in fleet.PauseRequest
			if e := api.Decode(r.Body, &in); e != nil {
				return e
			}
			out, err := g.cfg.Fleet.CreatePause(r.Context(), p, in)
			return created(w, err, http.StatusCreated, fleet.PausesPath+"/"+out.Resource, out)
		}},
		{Method: http.MethodDelete, Pattern: fleet.PausesPath + "/{id}", Fleet: true, handler: func(w http.ResponseWriter, r *http.Request, p svcapi.Principal) error {
			return noContent(w, g.cfg.Fleet.DeletePause(r.Context(), p, r.PathValue("id")))
		}},
		{Method: http.MethodPut, Pattern: fleet.SiteWindowPath, Fleet: true, handler: func(w http.ResponseWriter, r *http.Request, p svcapi.Principal) error {
			site, err := g.knownSite(r)
			if err != nil {
				return err
			}
			var in struct {
				MaintenanceWindow resource.Window `json:"maintenance_window"`
			}
			if e := api.Decode(r.Body, &in); e != nil {
				return e
			}
			return ok(w)(g.cfg.Fleet.SetSiteWindow(r.Context(), p, site.Site, in.MaintenanceWindow))
		}},
		{Method: http.MethodDelete, Pattern: fleet.SiteWindowPath, Fleet: true, handler: func(w http.ResponseWriter, r *http.Request, p svcapi.Principal) error {
			site, err := g.knownSite(r)
			if err != nil {
				return err
			}
			return noContent(w, g.cfg.Fleet.DeleteSiteWindow(r.Context(), p, site.Site))
		}},
		// The sites are few and their links are sync's own, partly in
		// memory: asked of sync at once.
		{Method: http.MethodGet, Pattern: SitesPath, Fleet: true, handler: func(w http.ResponseWriter, r *http.Request, _ svcapi.Principal) error {
			links, err := g.cfg.Sync.SiteLinks(r.Context())
			return ok(w)(FleetSites{APIVersion: "fleet/v1", Kind: "SiteList", Data: links}, err)
		}},
		{Method: http.MethodPost, Pattern: SitesPath, Fleet: true, handler: func(w http.ResponseWriter, r *http.Request, p svcapi.Principal) error {
			var in SiteRequest
			if e := api.Decode(r.Body, &in); e != nil {
				return e
			}
			out, err := g.cfg.Sync.AddSite(r.Context(), resource.Site{Cloud: in.Cloud, Region: in.Region}, p.Owner)
			return created(w, err, http.StatusCreated, SitesPath+"/"+out.Site, out)
		}},
		{Method: http.MethodGet, Pattern: SitePath, Fleet: true, handler: func(w http.ResponseWriter, r *http.Request, _ svcapi.Principal) error {
			link, err := g.knownSite(r)
			return ok(w)(link, err)
		}},
		{Method: http.MethodDelete, Pattern: SitePath, Fleet: true, handler: func(w http.ResponseWriter, r *http.Request, p svcapi.Principal) error {
			link, err := g.knownSite(r)
			if err != nil {
				return err
			}
			site, _ := resource.ParseSite(link.Site)
			return noContent(w, g.cfg.Sync.RetireSite(r.Context(), site, p.Owner))
		}},
		g.cordonRoute("cordon", true),
		g.cordonRoute("uncordon", false),
	}
}

// cordonRoute cordons a site, or opens it again.
func (g *Gateway) cordonRoute(op string, cordoned bool) Route {
	return Route{Method: http.MethodPost, Pattern: SitePath + "/" + op, Fleet: true, handler: func(w http.ResponseWriter, r *http.Request, p svcapi.Principal) error {
		link, err := g.knownSite(r)
		if err != nil {
			return err
		}
		site, _ := resource.ParseSite(link.Site)
		return ok(w)(g.cfg.Sync.CordonSite(r.Context(), site, cordoned, p.Owner))
	}}
}

// knownSite reads the site of a path's {cloud} and {region}: one sync
// knows (retired ones are gone), with its link.
func (g *Gateway) knownSite(r *http.Request) (syncsvc.SiteLink, error) {
	site := resource.Site{Cloud: strings.ToUpper(r.PathValue("cloud")), Region: strings.ToLower(r.PathValue("region"))}
	links, err := g.cfg.Sync.SiteLinks(r.Context())
	if err != nil {
		return syncsvc.SiteLink{}, err
	}
	i := slices.IndexFunc(links, func(l syncsvc.SiteLink) bool { return l.Site == site.String() })
	if i < 0 {
		return syncsvc.SiteLink{}, api.Errorf(http.StatusNotFound, api.CodeNotFound, "there is no site %s (GET %s lists them)", truncate(site.String()), SitesPath)
	}
	return links[i], nil
}

// upgradeOps are the operations on a campaign, a route each.
func (g *Gateway) upgradeOps() []Route {
	var out []Route
	for _, op := range fleet.Ops {
		out = append(out, Route{Method: http.MethodPost, Pattern: fleet.UpgradesPath + "/{id}/" + op, Fleet: true,
			handler: func(w http.ResponseWriter, r *http.Request, p svcapi.Principal) error {
				return ok(w)(g.cfg.Fleet.OperateUpgrade(r.Context(), p, r.PathValue("id"), op))
			}})
	}
	return out
}

// fleetQuery reads a fleet list's filter and page from the query.
func fleetQuery(r *http.Request) (fleet.Query, error) {
	v := r.URL.Query()
	q := fleet.Query{Filter: fleet.Filter{Organization: v.Get("organization"), Site: v.Get("site"), SKU: v.Get("sku"),
		Phase: v.Get("phase"), Version: v.Get("version")}}
	var err error
	if q.Filter.Stuck, err = boolParam(v, "stuck"); err != nil {
		return q, err
	}
	if q.Filter.Paused, err = boolParam(v, "paused"); err != nil {
		return q, err
	}
	deleted, err := boolParam(v, "deleted")
	if err != nil {
		return q, err
	}
	q.Filter.Deleted = deleted != nil && *deleted
	if err := q.Filter.Validate(); err != nil {
		return q, badParam("site", "%v", err)
	}
	page, err := svcapi.ParsePage("", v.Get("page_token"))
	if err != nil {
		return q, err
	}
	q.Page = fleet.Page{After: page.After}
	q.Page.Size, err = intParam(v, "page_size", 100, 1, fleet.MaxPageSize)
	return q, err
}

// badParam is a 400 at a query parameter.
func badParam(name, format string, args ...any) *api.Error {
	e := api.Errorf(http.StatusBadRequest, api.CodeBadRequest, format, args...)
	e.Parameter = name
	return e
}

// boolParam reads a query parameter that is true or false; nil when
// absent.
func boolParam(v url.Values, name string) (*bool, error) {
	s := v.Get(name)
	if s == "" {
		return nil, nil
	}
	b, err := strconv.ParseBool(s)
	if err != nil {
		return nil, badParam(name, "%s must be true or false", name)
	}
	return &b, nil
}

// intParam reads an integer query parameter from lo to hi; def when
// absent.
func intParam(v url.Values, name string, def, lo, hi int) (int, error) {
	s := v.Get(name)
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < lo || n > hi {
		return 0, badParam(name, "%s must be an integer from %d to %d", name, lo, hi)
	}
	return n, nil
}

// fleetPage renders a page, its next page as the same query further on.
func fleetPage[T any](r *http.Request, kind string, l fleet.List[T]) FleetList[T] {
	out := FleetList[T]{APIVersion: "fleet/v1", Kind: kind, Metadata: FleetListMetadata{TotalSize: l.Total}, Data: l.Data}
	if l.Next != "" {
		v := url.Values{}
		for k, vs := range r.URL.Query() {
			v[k] = vs
		}
		v.Set("page_token", svcapi.Token(l.Next))
		out.Metadata.Next = r.URL.Path + "?" + v.Encode()
	}
	return out
}
