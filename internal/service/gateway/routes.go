package gateway

import (
	"context"
	"net/http"
	"strings"

	"github.com/mothership-dev/mothership/internal/api"
	"github.com/mothership-dev/mothership/internal/service/audit"
	"github.com/mothership-dev/mothership/internal/service/iam"
	"github.com/mothership-dev/mothership/internal/service/kafka"
	"github.com/mothership-dev/mothership/internal/service/network"
	"github.com/mothership-dev/mothership/internal/service/svcapi"
)

// table is every route of the public API.
func (g *Gateway) table() []Route {
	id := func(r *http.Request) string { return r.PathValue("id") }
	routes := []Route{
		{Method: http.MethodGet, Pattern: "/openapi.json", Public: true, handler: g.openAPI},
		{Method: http.MethodGet, Pattern: api.CAPath, Public: true, handler: g.clusterCA},

		listOf(api.OrganizationsPath, svcapi.Read, g.cfg.IAM.ListOrganizations),
		byID(api.OrganizationsPath, svcapi.Read, g.cfg.IAM.GetOrganization),
		update(api.OrganizationsPath, svcapi.Admin, g.cfg.IAM.UpdateOrganization),

		creation(iam.EnvironmentsPath, svcapi.Admin, http.StatusCreated, g.cfg.IAM.CreateEnvironment),
		listOf(iam.EnvironmentsPath, svcapi.Read, g.cfg.IAM.ListEnvironments),
		byID(iam.EnvironmentsPath, svcapi.Read, g.cfg.IAM.GetEnvironment),
		update(iam.EnvironmentsPath, svcapi.Admin, g.cfg.IAM.UpdateEnvironment),
		deleteByID(iam.EnvironmentsPath, svcapi.Admin, g.cfg.IAM.DeleteEnvironment),

		creation(kafka.ClustersPath, svcapi.Write, http.StatusAccepted, g.cfg.Kafka.CreateCluster),
		listInEnvironment(kafka.ClustersPath, g.cfg.IAM.EnvironmentExists, g.cfg.Kafka.ListClusters),
		byID(kafka.ClustersPath, svcapi.Read, g.cfg.Kafka.GetCluster),
		update(kafka.ClustersPath, svcapi.Write, g.cfg.Kafka.UpdateCluster),
		deleteByID(kafka.ClustersPath, svcapi.Write, g.cfg.Kafka.DeleteCluster),
		// The organization's admin brings back a cluster deleted within
		// its retention (kafka checks the role: an operator may too).
		{Method: http.MethodPost, Pattern: kafka.ClustersPath + "/{id}/restore", Need: svcapi.Admin, handler: g.restoreCluster},

		{Method: http.MethodPost, Pattern: network.NetworksPath, Need: svcapi.Write, handler: func(w http.ResponseWriter, r *http.Request, p svcapi.Principal) error {
			var in api.NetworkCreate
			if e := api.Decode(r.Body, &in); e != nil {
				return e
			}
			// The environment is checked here, where iam is below: network
			// sits at layer 0 and calls nothing above it.
			if in.Spec.Environment != nil && in.Spec.Environment.ID != "" {
				ok, err := g.cfg.IAM.EnvironmentExists(r.Context(), p.Organization, in.Spec.Environment.ID)
				if err != nil {
					return err
				}
				if !ok {
					return api.Invalid("/spec/environment/id", "environment %q not found", in.Spec.Environment.ID)
				}
			}
			out, err := g.cfg.Network.CreateNetwork(r.Context(), p, in)
			return created(w, err, http.StatusAccepted, out.Metadata.Self, out)
		}},
		listInEnvironment(network.NetworksPath, g.cfg.IAM.EnvironmentExists, g.cfg.Network.ListNetworks),
		byID(network.NetworksPath, svcapi.Read, g.cfg.Network.GetNetwork),
		{Method: http.MethodDelete, Pattern: network.NetworksPath + "/{id}", Need: svcapi.Write, handler: func(w http.ResponseWriter, r *http.Request, p svcapi.Principal) error {
			// A network in use stays; kafka (above network) is asked here.
			if c, err := g.cfg.Kafka.ClusterOnNetwork(r.Context(), p.Organization, id(r)); err != nil {
				return err
			} else if c != "" {
				return api.Errorf(http.StatusConflict, api.CodeConflict, "network %s is used by cluster %s; delete the cluster first", id(r), c)
			}
			return noContent(w, g.cfg.Network.DeleteNetwork(r.Context(), p, id(r)))
		}},

		creation(iam.APIKeysPath, svcapi.Read, http.StatusAccepted, g.cfg.IAM.CreateAPIKey),
		listOf(iam.APIKeysPath, svcapi.Read, g.cfg.IAM.ListAPIKeys),
		byID(iam.APIKeysPath, svcapi.Read, g.cfg.IAM.GetAPIKey),
		update(iam.APIKeysPath, svcapi.Read, g.cfg.IAM.UpdateAPIKey),
		deleteByID(iam.APIKeysPath, svcapi.Read, g.cfg.IAM.DeleteAPIKey),

		listOf(iam.UsersPath, svcapi.Read, g.cfg.IAM.ListUsers),
		byID(iam.UsersPath, svcapi.Read, g.cfg.IAM.GetUser),

		creation(iam.ServiceAccountsPath, svcapi.Admin, http.StatusCreated, g.cfg.IAM.CreateServiceAccount),
		listOf(iam.ServiceAccountsPath, svcapi.Read, g.cfg.IAM.ListServiceAccounts),
		byID(iam.ServiceAccountsPath, svcapi.Read, g.cfg.IAM.GetServiceAccount),
		update(iam.ServiceAccountsPath, svcapi.Admin, g.cfg.IAM.UpdateServiceAccount),
		deleteByID(iam.ServiceAccountsPath, svcapi.Admin, g.cfg.IAM.DeleteServiceAccount),

		creation(iam.RoleBindingsPath, svcapi.Admin, http.StatusCreated, g.cfg.IAM.CreateRoleBinding),
		listOf(iam.RoleBindingsPath, svcapi.Admin, g.cfg.IAM.ListRoleBindings),
		byID(iam.RoleBindingsPath, svcapi.Admin, g.cfg.IAM.GetRoleBinding),
		deleteByID(iam.RoleBindingsPath, svcapi.Admin, g.cfg.IAM.DeleteRoleBinding),

		{Method: http.MethodGet, Pattern: api.RegionsPath, Need: svcapi.Read, handler: g.regions},

		{Method: http.MethodGet, Pattern: audit.EventsPath, Need: svcapi.Read, handler: func(w http.ResponseWriter, r *http.Request, p svcapi.Principal) error {
			page, err := pageOf(r)
			if err != nil {
				return err
			}
			subject, err := idParam(r, "subject")
			if err != nil {
				return err
			}
			return ok(w)(g.cfg.Audit.Events(r.Context(), p, subject, page))
		}},
		{Method: http.MethodGet, Pattern: audit.JourneysPath, Need: svcapi.Read, handler: func(w http.ResponseWriter, r *http.Request, p svcapi.Principal) error {
			subject, err := idParam(r, "subject")
			if err != nil {
				return err
			}
			return ok(w)(g.cfg.Audit.Journeys(r.Context(), p, subject))
		}},
	}
	return append(append(append(routes, g.fleetRoutes()...), g.upgradeOps()...), g.billingRoutes()...)
}

// restoreCluster serves POST …/clusters/{id}/restore, the tenant's and
// the operators'.
func (g *Gateway) restoreCluster(w http.ResponseWriter, r *http.Request, p svcapi.Principal) error {
	out, err := g.cfg.Kafka.RestoreCluster(r.Context(), p, r.PathValue("id"))
	return created(w, err, http.StatusAccepted, out.Metadata.Self, out)
}

// byID serves GET pattern/{id}.
func byID[T any](pattern string, need svcapi.Action, get func(context.Context, svcapi.Principal, string) (T, error)) Route {
	return Route{Method: http.MethodGet, Pattern: pattern + "/{id}", Need: need, handler: func(w http.ResponseWriter, r *http.Request, p svcapi.Principal) error {
		return ok(w)(get(r.Context(), p, r.PathValue("id")))
	}}
}

// update serves PATCH pattern/{id}: the body decoded strictly, the
// resource as it is now in the answer.
func update[In, Out any](pattern string, need svcapi.Action, fn func(context.Context, svcapi.Principal, string, In) (Out, error)) Route {
	return Route{Method: http.MethodPatch, Pattern: pattern + "/{id}", Need: need, handler: func(w http.ResponseWriter, r *http.Request, p svcapi.Principal) error {
		var in In
		if e := api.Decode(r.Body, &in); e != nil {
			return e
		}
		return ok(w)(fn(r.Context(), p, r.PathValue("id"), in))
	}}
}

// deleteByID serves DELETE pattern/{id}.
func deleteByID(pattern string, need svcapi.Action, del func(context.Context, svcapi.Principal, string) error) Route {
	return Route{Method: http.MethodDelete, Pattern: pattern + "/{id}", Need: need, handler: func(w http.ResponseWriter, r *http.Request, p svcapi.Principal) error {
		return noContent(w, del(r.Context(), p, r.PathValue("id")))
	}}
}

// listOf serves GET pattern, a paged list.
func listOf[T any](pattern string, need svcapi.Action, list func(context.Context, svcapi.Principal, svcapi.Page) (T, error)) Route {
	return Route{Method: http.MethodGet, Pattern: pattern, Need: need, List: true, handler: func(w http.ResponseWriter, r *http.Request, p svcapi.Principal) error {
		page, err := pageOf(r)
		if err != nil {
			return err
		}
		return ok(w)(list(r.Context(), p, page))
	}}
}

// listInEnvironment serves GET pattern, a paged list that an environment
// query parameter may narrow; an environment that does not exist is a
// 404, not an empty list.
func listInEnvironment[T any](pattern string, exists func(ctx context.Context, org, env string) (bool, error),
	list func(context.Context, svcapi.Principal, string, svcapi.Page) (T, error)) Route {
	return Route{Method: http.MethodGet, Pattern: pattern, Need: svcapi.Read, List: true, handler: func(w http.ResponseWriter, r *http.Request, p svcapi.Principal) error {
		page, err := pageOf(r)
		if err != nil {
			return err
		}
		env, err := idParam(r, "environment")
		if err != nil {
			return err
		}
		if env != "" {
			found, err := exists(r.Context(), p.Organization, env)
			if err != nil {
				return err
			}
			if !found {
				return api.NotFound("environment", env)
			}
		}
		return ok(w)(list(r.Context(), p, env, page))
	}}
}

// selfLinked is every created resource: its metadata says where it is.
type selfLinked interface{ SelfLink() string }

// creation serves POST pattern: the body decoded strictly, the answer
// with its Location.
func creation[In any, Out selfLinked](pattern string, need svcapi.Action, status int, create func(context.Context, svcapi.Principal, In) (Out, error)) Route {
	return Route{Method: http.MethodPost, Pattern: pattern, Need: need, handler: func(w http.ResponseWriter, r *http.Request, p svcapi.Principal) error {
		var in In
		if e := api.Decode(r.Body, &in); e != nil {
			return e
		}
		out, err := create(r.Context(), p, in)
		if err != nil {
			return err
		}
		return created(w, nil, status, out.SelfLink(), out)
	}}
}

func (g *Gateway) openAPI(w http.ResponseWriter, _ *http.Request, _ svcapi.Principal) error {
	w.Header().Set("Content-Type", "application/json")
	_, err := w.Write(g.cfg.OpenAPI)
	return err
}

// regions lists the served sites as the regions clusters may be created
// in, in the API's spelling of clouds.
func (g *Gateway) regions(w http.ResponseWriter, r *http.Request, _ svcapi.Principal) error {
	sites, err := g.cfg.Sync.SitesServed(r.Context())
	if err != nil {
		return err
	}
	out := api.RegionList{APIVersion: "mothership/v1", Kind: "RegionList", Data: make([]api.Region, 0, len(sites))}
	for _, s := range sites {
		out.Data = append(out.Data, api.Region{Cloud: strings.ToUpper(s.Cloud), RegionID: s.Region})
	}
	api.WriteJSON(w, http.StatusOK, out)
	return nil
}

func (g *Gateway) clusterCA(w http.ResponseWriter, _ *http.Request, _ svcapi.Principal) error {
	if len(g.cfg.ClusterCA) == 0 {
		return api.Errorf(http.StatusNotFound, api.CodeNotFound,
			"this installation's clusters serve SASL_PLAINTEXT, without TLS: there is no CA to trust")
	}
	w.Header().Set("Content-Type", "application/x-pem-file")
	_, err := w.Write(g.cfg.ClusterCA)
	return err
}

// idParam reads a query parameter that names a resource; one that cannot
// be an id is refused rather than looked up.
func idParam(r *http.Request, name string) (string, error) {
	v := r.URL.Query().Get(name)
	if v != "" && !validID(v) {
		e := api.Errorf(http.StatusBadRequest, api.CodeBadRequest, "%s must be a resource id, like env-abc123 or lkc-abc123", name)
		e.Parameter = name
		return "", e
	}
	return v, nil
}

func pageOf(r *http.Request) (svcapi.Page, error) {
	q := r.URL.Query()
	return svcapi.ParsePage(q.Get("page_size"), q.Get("page_token"))
}

// ok writes a value or returns the error that came with it.
func ok(w http.ResponseWriter) func(any, error) error {
	return func(v any, err error) error {
		if err != nil {
			return err
		}
		api.WriteJSON(w, http.StatusOK, v)
		return nil
	}
}

// created writes an accepted creation with its Location.
func created(w http.ResponseWriter, err error, status int, location string, v any) error {
	if err != nil {
		return err
	}
	w.Header().Set("Location", location)
	api.WriteJSON(w, status, v)
	return nil
}

func noContent(w http.ResponseWriter, err error) error {
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
