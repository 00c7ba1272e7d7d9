// Package svcapi holds what the services' public APIs share: the mapping of
// stored resources and store errors to the REST API's shapes, pagination
// tokens, and the caller's identity.
package svcapi

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/mothership-dev/mothership/internal/api"
	"github.com/mothership-dev/mothership/internal/resource"
	"github.com/mothership-dev/mothership/internal/runtime/store"
)

// Principal is an authenticated caller, as the gateway established it.
type Principal struct {
	// KeyID is the API key the caller presented.
	KeyID string
	// Owner is the user or service account the key acts as.
	Owner string
	// Organization scopes everything the caller can see.
	Organization string
	// Resource is the key's scope: empty for a control-plane key, an LKC id
	// for a cluster key.
	Resource string
	// Bindings are the owner's roles, resolved when the key was checked.
	Bindings []Binding
}

// Metadata returns the envelope metadata of r.
func Metadata(r store.Resource, self string) api.Metadata {
	created, updated := r.CreatedAt, r.UpdatedAt
	return api.Metadata{Self: self, ResourceName: CRN(r),
		CreatedAt: &created, UpdatedAt: &updated, DeletedAt: r.DeletedAt}
}

// CRN is r's resource name, in Confluent Cloud's shape and consistent
// with the role bindings' scopes (Scope.CRN): an environment is
// organization=O/environment=E, a cluster
// organization=O/environment=E/cloud-cluster=lkc-x/kafka=lkc-x (clients
// such as Confluent's Terraform provider cut it at /kafka= for the scope
// of the cluster's role bindings).
func CRN(r store.Resource) string {
	org := Scope{Org: r.Organization}
	switch r.Kind {
	case resource.KindEnvironment:
		return EnvironmentRef(r.Organization, r.ID).ResourceName
	case resource.KindLKC:
		return ClusterRef(r.Organization, r.Environment, r.ID).ResourceName
	case resource.KindNetwork:
		return NetworkRef(r.Organization, r.Environment, r.ID).ResourceName
	case resource.KindServiceAcct, resource.KindUser:
		return PrincipalRef(r.Organization, r.ID).ResourceName
	case resource.KindAPIKey:
		return org.CRN() + "/api-key=" + r.ID
	case resource.KindRoleBinding:
		return org.CRN() + "/role-binding=" + r.ID
	}
	return org.CRN() + "/" + r.Kind + "=" + r.ID
}

// EnvironmentRef refers to an environment, as answers show it.
func EnvironmentRef(org, env string) api.ObjectReference {
	return api.ObjectReference{ID: env, APIVersion: "org/v2", Kind: "Environment",
		Related: api.EnvironmentsPath + "/" + env, ResourceName: Scope{Org: org, Env: env}.CRN()}
}

// ClusterRef refers to a Kafka cluster of env; its resource name is
// unknown without its environment.
func ClusterRef(org, env, id string) api.ObjectReference {
	ref := api.ObjectReference{ID: id, APIVersion: "cmk/v2", Kind: "Cluster", Environment: env, Related: api.ClustersPath + "/" + id}
	if env != "" {
		ref.ResourceName = Scope{Org: org, Env: env, Cluster: id}.CRN() + "/kafka=" + id
	}
	return ref
}

// NetworkRef refers to a network of env.
func NetworkRef(org, env, id string) api.ObjectReference {
	return api.ObjectReference{ID: id, APIVersion: "networking/v1", Kind: "Network", Environment: env,
		Related: api.NetworksPath + "/" + id, ResourceName: Scope{Org: org, Env: env}.CRN() + "/network=" + id}
}

// PrincipalRef refers to a user (u-…) or a service account (sa-…).
func PrincipalRef(org, id string) api.ObjectReference {
	if strings.HasPrefix(id, "sa-") {
		return api.ObjectReference{ID: id, APIVersion: "iam/v2", Kind: "ServiceAccount",
			Related: api.ServiceAccountsPath + "/" + id, ResourceName: Scope{Org: org}.CRN() + "/service-account=" + id}
	}
	return api.ObjectReference{ID: id, APIVersion: "iam/v2", Kind: "User",
		Related: api.UsersPath + "/" + id, ResourceName: Scope{Org: org}.CRN() + "/user=" + id}
}

// StoreError maps a store error about kind/id to the API's errors; an
// unexpected one is wrapped and becomes a 500 at the gateway.
func StoreError(kind, id string, err error) error {
	var apiErr *api.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &apiErr):
		return err
	case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrDeleted):
		return api.NotFound(kind, id)
	case errors.Is(err, store.ErrAlreadyExists):
		return api.Errorf(http.StatusConflict, api.CodeAlreadyExists, "%s %q already exists", kind, id)
	case errors.Is(err, store.ErrGenerationChanged):
		return api.Errorf(http.StatusConflict, api.CodeConflict, "%s %q changed meanwhile; read it again and retry", kind, id)
	}
	return fmt.Errorf("%s %s: %w", kind, id, err)
}

// Page is a parsed page request.
type Page struct {
	Size  int
	After string
}

// DefaultPageSize and MaxPageSize bound list pages, as the public API does.
const (
	DefaultPageSize = 10
	MaxPageSize     = 100
)

// ParsePage parses the page_size and page_token query parameters.
func ParsePage(size, token string) (Page, error) {
	p := Page{Size: DefaultPageSize}
	if size != "" {
		n, err := strconv.Atoi(size)
		if err != nil || n < 1 || n > MaxPageSize {
			e := api.Errorf(http.StatusBadRequest, api.CodeBadRequest, "page_size must be an integer from 1 to %d", MaxPageSize)
			e.Parameter = "page_size"
			return p, e
		}
		p.Size = n
	}
	if token != "" {
		after, err := base64.RawURLEncoding.DecodeString(token)
		if err != nil || len(after) == 0 || len(after) > 255 || !utf8.Valid(after) || strings.ContainsRune(string(after), 0) {
			e := api.Errorf(http.StatusBadRequest, api.CodeBadRequest, "page_token is not one this API returned")
			e.Parameter = "page_token"
			return p, e
		}
		p.After = string(after)
	}
	return p, nil
}

// List runs a page of p over kind in tx, scoped to the organization (and
// environment if set), and returns the page and the next page token.
//
// visible, when set, keeps only what the caller may see; pages are filled
// from the visible resources alone, so neither the items nor the page
// links reveal the others.
func List(ctx context.Context, tx store.Tx, kind, org, env string, p Page, visible func(store.Resource) bool) ([]store.Resource, string, error) {
	var out []store.Resource
	after := p.After
	for len(out) <= p.Size {
		rs, err := tx.ResourceList(ctx, store.ListParams{Kind: kind, Organization: org, Environment: env, AfterID: after, Limit: p.Size + 1})
		if err != nil {
			return nil, "", fmt.Errorf("list %s: %w", kind, err)
		}
		for _, r := range rs {
			if visible == nil || visible(r) {
				out = append(out, r)
			}
		}
		if len(rs) <= p.Size {
			break
		}
		after = rs[len(rs)-1].ID
	}
	next := ""
	if len(out) > p.Size {
		out = out[:p.Size]
		next = base64.RawURLEncoding.EncodeToString([]byte(out[len(out)-1].ID))
	}
	return out, next, nil
}

// ListMeta returns the metadata of a list page of path; filter holds the
// query parameters that narrowed the list (environment=…), kept in the
// page links so that the next page lists the same thing.
func ListMeta(path string, filter url.Values, page Page, next string) api.ListMeta {
	q := url.Values{}
	for k, v := range filter {
		if len(v) > 0 && v[0] != "" {
			q[k] = v
		}
	}
	q.Set("page_size", strconv.Itoa(page.Size))
	m := api.ListMeta{First: path + "?" + q.Encode()}
	if next != "" {
		q.Set("page_token", next)
		m.Next = path + "?" + q.Encode()
	}
	return m
}

// ValidateDisplayName checks a display name: 1 to 64 characters, no
// leading or trailing space, no control characters.
func ValidateDisplayName(pointer, name string) error {
	if name == "" || utf8.RuneCountInString(name) > 64 || strings.TrimSpace(name) != name ||
		!utf8.ValidString(name) || strings.IndexFunc(name, unicode.IsControl) >= 0 {
		return api.Invalid(pointer, "display_name must be 1 to 64 characters, without control characters or leading and trailing spaces")
	}
	return nil
}

// Own returns org's live resource kind/id. Another organization's resource
// is ErrNotFound: to a caller it does not exist, so its id leaks nothing.
func Own(ctx context.Context, tx store.Tx, kind, org, id string) (store.Resource, error) {
	r, err := tx.ResourceGet(ctx, kind, id)
	if err == nil && r.Organization != org {
		return store.Resource{}, store.ErrNotFound
	}
	return r, err
}

// MaxHeld bounds the ids AllIn returns: enough to name what keeps an
// environment from being deleted.
const MaxHeld = 100

// AllIn returns the ids of the live resources of kind in org's
// environment env, at most MaxHeld of them.
func AllIn(ctx context.Context, st store.Store, kind, org, env string) ([]string, error) {
	var ids []string
	err := st.View(ctx, func(ctx context.Context, tx store.Tx) error {
		rs, err := tx.ResourceList(ctx, store.ListParams{Kind: kind, Organization: org, Environment: env, Limit: MaxHeld})
		for _, r := range rs {
			ids = append(ids, r.ID)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("%s in %s: %w", kind, env, err)
	}
	return ids, nil
}

// Token encodes a page token for the id a page ended at ("" for none).
func Token(afterID string) string {
	if afterID == "" {
		return ""
	}
	return base64.RawURLEncoding.EncodeToString([]byte(afterID))
}

// ListQuery is one page of a list route: what to read, and how the answer
// names itself.
type ListQuery struct {
	// APIVersion and ListKind name the answer ("cmk/v2", "ClusterList").
	APIVersion, ListKind string
	// Kind, Org and Env select the resources; Env may be empty.
	Kind, Org, Env string
	// Path and Filter make the page links.
	Path   string
	Filter url.Values
	Page   Page
	// Visible keeps only what the caller may read; nil keeps everything.
	Visible func(store.Resource) bool
}

// ListPage reads one page of q from st and renders it: the one list
// every service's API serves.
func ListPage[T any](ctx context.Context, st store.Store, q ListQuery, render func(store.Resource) (T, error)) (api.List[T], error) {
	out := api.List[T]{APIVersion: q.APIVersion, Kind: q.ListKind, Data: []T{}}
	err := st.View(ctx, func(ctx context.Context, tx store.Tx) error {
		rs, next, err := List(ctx, tx, q.Kind, q.Org, q.Env, q.Page, q.Visible)
		if err != nil {
			return err
		}
		for _, r := range rs {
			v, err := render(r)
			if err != nil {
				return err
			}
			out.Data = append(out.Data, v)
		}
		out.Metadata = ListMeta(q.Path, q.Filter, q.Page, next)
		return nil
	})
	return out, err
}

// FreshID returns a new id for kind, drawn by draw, that no resource of st
// holds, live or deleted. Ids are short, as the public API's are (lkc-xxxxxx: 36^6), so
// at fleet scale a random one is taken now and then (at 100,000 clusters
// about once per 45,000 creations): one is drawn again rather than
// answering a create with a conflict.
func FreshID(ctx context.Context, st store.Store, kind string, draw func() string) (string, error) {
	for range 8 {
		id := draw()
		err := st.View(ctx, func(ctx context.Context, tx store.Tx) error {
			_, err := tx.ResourceGetAny(ctx, kind, id)
			return err
		})
		if errors.Is(err, store.ErrNotFound) {
			return id, nil
		}
		if err != nil {
			return "", fmt.Errorf("%s: new id: %w", kind, err)
		}
	}
	return "", fmt.Errorf("%s: no free id after 8 draws", kind)
}

// Window reads a maintenance window the API was given, at pointer: nil
// for {} (none), else the window, with every mistake at its field.
func Window(pointer string, w api.MaintenanceWindow) (*resource.Window, []*api.Error) {
	if w == (api.MaintenanceWindow{}) {
		return nil, nil
	}
	rw := resource.Window{Day: strings.ToUpper(w.Day), StartTime: w.StartTime, Duration: w.Duration}
	bad := rw.Validate()
	var errs []*api.Error
	for _, field := range []string{"day", "start_time", "duration"} {
		if msg, ok := bad[field]; ok {
			errs = append(errs, api.Invalid(pointer+"/"+field, "%s", msg))
		}
	}
	return &rw, errs
}

// APIWindow is a window as the API shows it.
func APIWindow(w *resource.Window) *api.MaintenanceWindow {
	if w == nil {
		return nil
	}
	return &api.MaintenanceWindow{Day: w.Day, StartTime: w.StartTime, Duration: w.Duration}
}
