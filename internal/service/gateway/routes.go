package gateway

import (
	"net/http"

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
	return []Route{
		{Method: http.MethodGet, Pattern: "/openapi.json", Public: true, handler: g.openAPI},

		{Method: http.MethodPost, Pattern: iam.EnvironmentsPath, Need: svcapi.Admin, handler: func(w http.ResponseWriter, r *http.Request, p svcapi.Principal) error {
			var in api.EnvironmentCreate
			if e := api.Decode(r.Body, &in); e != nil {
				return e
			}
			out, err := g.cfg.IAM.CreateEnvironment(r.Context(), p, in)
			return created(w, err, http.StatusCreated, out.Metadata.Self, out)
		}},
		{Method: http.MethodGet, Pattern: iam.EnvironmentsPath, Need: svcapi.Read, handler: func(w http.ResponseWriter, r *http.Request, p svcapi.Principal) error {
			page, err := pageOf(r)
			if err != nil {
				return err
			}
			return ok(w)(g.cfg.IAM.ListEnvironments(r.Context(), p, page))
		}},
		{Method: http.MethodGet, Pattern: iam.EnvironmentsPath + "/{id}", Need: svcapi.Read, handler: func(w http.ResponseWriter, r *http.Request, p svcapi.Principal) error {
			return ok(w)(g.cfg.IAM.GetEnvironment(r.Context(), p, id(r)))
		}},
		{Method: http.MethodDelete, Pattern: iam.EnvironmentsPath + "/{id}", Need: svcapi.Admin, handler: func(w http.ResponseWriter, r *http.Request, p svcapi.Principal) error {
			return noContent(w, g.cfg.IAM.DeleteEnvironment(r.Context(), p, id(r)))
		}},

		{Method: http.MethodPost, Pattern: kafka.ClustersPath, Need: svcapi.Write, handler: func(w http.ResponseWriter, r *http.Request, p svcapi.Principal) error {
			var in api.ClusterCreate
			if e := api.Decode(r.Body, &in); e != nil {
				return e
			}
			out, err := g.cfg.Kafka.CreateCluster(r.Context(), p, in)
			return created(w, err, http.StatusAccepted, out.Metadata.Self, out)
		}},
		{Method: http.MethodGet, Pattern: kafka.ClustersPath, Need: svcapi.Read, handler: func(w http.ResponseWriter, r *http.Request, p svcapi.Principal) error {
			page, err := pageOf(r)
			if err != nil {
				return err
			}
			env, err := idParam(r, "environment")
			if err != nil {
				return err
			}
			return ok(w)(g.cfg.Kafka.ListClusters(r.Context(), p, env, page))
		}},
		{Method: http.MethodGet, Pattern: kafka.ClustersPath + "/{id}", Need: svcapi.Read, handler: func(w http.ResponseWriter, r *http.Request, p svcapi.Principal) error {
			return ok(w)(g.cfg.Kafka.GetCluster(r.Context(), p, id(r)))
		}},
		{Method: http.MethodPatch, Pattern: kafka.ClustersPath + "/{id}", Need: svcapi.Write, handler: func(w http.ResponseWriter, r *http.Request, p svcapi.Principal) error {
			var in api.ClusterUpdate
			if e := api.Decode(r.Body, &in); e != nil {
				return e
			}
			return ok(w)(g.cfg.Kafka.UpdateCluster(r.Context(), p, id(r), in))
		}},
		{Method: http.MethodDelete, Pattern: kafka.ClustersPath + "/{id}", Need: svcapi.Write, handler: func(w http.ResponseWriter, r *http.Request, p svcapi.Principal) error {
			return noContent(w, g.cfg.Kafka.DeleteCluster(r.Context(), p, id(r)))
		}},

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
		{Method: http.MethodGet, Pattern: network.NetworksPath, Need: svcapi.Read, handler: func(w http.ResponseWriter, r *http.Request, p svcapi.Principal) error {
			page, err := pageOf(r)
			if err != nil {
				return err
			}
			env, err := idParam(r, "environment")
			if err != nil {
				return err
			}
			return ok(w)(g.cfg.Network.ListNetworks(r.Context(), p, env, page))
		}},
		{Method: http.MethodGet, Pattern: network.NetworksPath + "/{id}", Need: svcapi.Read, handler: func(w http.ResponseWriter, r *http.Request, p svcapi.Principal) error {
			return ok(w)(g.cfg.Network.GetNetwork(r.Context(), p, id(r)))
		}},
		{Method: http.MethodDelete, Pattern: network.NetworksPath + "/{id}", Need: svcapi.Write, handler: func(w http.ResponseWriter, r *http.Request, p svcapi.Principal) error {
			// A network in use stays; kafka (above network) is asked here.
			if c, err := g.cfg.Kafka.ClusterOnNetwork(r.Context(), p.Organization, id(r)); err != nil {
				return err
			} else if c != "" {
				return api.Errorf(http.StatusConflict, api.CodeConflict, "network %s is used by cluster %s; delete the cluster first", id(r), c)
			}
			return noContent(w, g.cfg.Network.DeleteNetwork(r.Context(), p, id(r)))
		}},

		{Method: http.MethodPost, Pattern: iam.APIKeysPath, Need: svcapi.Read, handler: func(w http.ResponseWriter, r *http.Request, p svcapi.Principal) error {
			var in api.APIKeyCreate
			if e := api.Decode(r.Body, &in); e != nil {
				return e
			}
			out, err := g.cfg.IAM.CreateAPIKey(r.Context(), p, in)
			return created(w, err, http.StatusAccepted, out.Metadata.Self, out)
		}},
		{Method: http.MethodGet, Pattern: iam.APIKeysPath, Need: svcapi.Read, handler: func(w http.ResponseWriter, r *http.Request, p svcapi.Principal) error {
			page, err := pageOf(r)
			if err != nil {
				return err
			}
			return ok(w)(g.cfg.IAM.ListAPIKeys(r.Context(), p, page))
		}},
		{Method: http.MethodGet, Pattern: iam.APIKeysPath + "/{id}", Need: svcapi.Read, handler: func(w http.ResponseWriter, r *http.Request, p svcapi.Principal) error {
			return ok(w)(g.cfg.IAM.GetAPIKey(r.Context(), p, id(r)))
		}},
		{Method: http.MethodDelete, Pattern: iam.APIKeysPath + "/{id}", Need: svcapi.Read, handler: func(w http.ResponseWriter, r *http.Request, p svcapi.Principal) error {
			return noContent(w, g.cfg.IAM.DeleteAPIKey(r.Context(), p, id(r)))
		}},

		{Method: http.MethodGet, Pattern: iam.UsersPath, Need: svcapi.Read, handler: func(w http.ResponseWriter, r *http.Request, p svcapi.Principal) error {
			page, err := pageOf(r)
			if err != nil {
				return err
			}
			return ok(w)(g.cfg.IAM.ListUsers(r.Context(), p, page))
		}},
		{Method: http.MethodGet, Pattern: iam.UsersPath + "/{id}", Need: svcapi.Read, handler: func(w http.ResponseWriter, r *http.Request, p svcapi.Principal) error {
			return ok(w)(g.cfg.IAM.GetUser(r.Context(), p, id(r)))
		}},

		{Method: http.MethodPost, Pattern: iam.ServiceAccountsPath, Need: svcapi.Admin, handler: func(w http.ResponseWriter, r *http.Request, p svcapi.Principal) error {
			var in api.ServiceAccountCreate
			if e := api.Decode(r.Body, &in); e != nil {
				return e
			}
			out, err := g.cfg.IAM.CreateServiceAccount(r.Context(), p, in)
			return created(w, err, http.StatusCreated, out.Metadata.Self, out)
		}},
		{Method: http.MethodGet, Pattern: iam.ServiceAccountsPath, Need: svcapi.Read, handler: func(w http.ResponseWriter, r *http.Request, p svcapi.Principal) error {
			page, err := pageOf(r)
			if err != nil {
				return err
			}
			return ok(w)(g.cfg.IAM.ListServiceAccounts(r.Context(), p, page))
		}},
		{Method: http.MethodGet, Pattern: iam.ServiceAccountsPath + "/{id}", Need: svcapi.Read, handler: func(w http.ResponseWriter, r *http.Request, p svcapi.Principal) error {
			return ok(w)(g.cfg.IAM.GetServiceAccount(r.Context(), p, id(r)))
		}},
		{Method: http.MethodDelete, Pattern: iam.ServiceAccountsPath + "/{id}", Need: svcapi.Admin, handler: func(w http.ResponseWriter, r *http.Request, p svcapi.Principal) error {
			return noContent(w, g.cfg.IAM.DeleteServiceAccount(r.Context(), p, id(r)))
		}},

		{Method: http.MethodPost, Pattern: iam.RoleBindingsPath, Need: svcapi.Admin, handler: func(w http.ResponseWriter, r *http.Request, p svcapi.Principal) error {
			var in api.RoleBindingCreate
			if e := api.Decode(r.Body, &in); e != nil {
				return e
			}
			out, err := g.cfg.IAM.CreateRoleBinding(r.Context(), p, in)
			return created(w, err, http.StatusCreated, out.Metadata.Self, out)
		}},
		{Method: http.MethodGet, Pattern: iam.RoleBindingsPath, Need: svcapi.Admin, handler: func(w http.ResponseWriter, r *http.Request, p svcapi.Principal) error {
			page, err := pageOf(r)
			if err != nil {
				return err
			}
			return ok(w)(g.cfg.IAM.ListRoleBindings(r.Context(), p, page))
		}},
		{Method: http.MethodGet, Pattern: iam.RoleBindingsPath + "/{id}", Need: svcapi.Admin, handler: func(w http.ResponseWriter, r *http.Request, p svcapi.Principal) error {
			return ok(w)(g.cfg.IAM.GetRoleBinding(r.Context(), p, id(r)))
		}},
		{Method: http.MethodDelete, Pattern: iam.RoleBindingsPath + "/{id}", Need: svcapi.Admin, handler: func(w http.ResponseWriter, r *http.Request, p svcapi.Principal) error {
			return noContent(w, g.cfg.IAM.DeleteRoleBinding(r.Context(), p, id(r)))
		}},

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
	}
}

func (g *Gateway) openAPI(w http.ResponseWriter, _ *http.Request, _ svcapi.Principal) error {
	w.Header().Set("Content-Type", "application/json")
	_, err := w.Write(g.cfg.OpenAPI)
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
