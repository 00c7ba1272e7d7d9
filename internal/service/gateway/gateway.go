// Package gateway is the public API's front door (layer 4): it
// authenticates every request with an API key (HTTP Basic), routes it to
// the service that owns the resource, and writes every answer and error in
// the public API's shapes. It owns no resource and starts last, so a
// request never reaches a service whose layers below are down.
package gateway

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mothership-dev/mothership/internal/api"
	"github.com/mothership-dev/mothership/internal/resource"
	"github.com/mothership-dev/mothership/internal/runtime/trace"
	"github.com/mothership-dev/mothership/internal/service/audit"
	"github.com/mothership-dev/mothership/internal/service/gateway/console"
	"github.com/mothership-dev/mothership/internal/service/iam"
	"github.com/mothership-dev/mothership/internal/service/kafka"
	"github.com/mothership-dev/mothership/internal/service/network"
	"github.com/mothership-dev/mothership/internal/service/svcapi"
	syncsvc "github.com/mothership-dev/mothership/internal/service/sync"
)

// Name and Layer place the service in the layer cake.
const (
	Name  = "gateway"
	Layer = 4
)

// IAM is what the gateway asks of the iam service: *iam.Service in one
// process, *iam.Client across processes.
type IAM interface {
	Authenticate(ctx context.Context, key, secret, from string) (svcapi.Principal, error)
	CreateEnvironment(ctx context.Context, p svcapi.Principal, in api.EnvironmentCreate) (api.Environment, error)
	GetOrganization(ctx context.Context, p svcapi.Principal, id string) (api.Organization, error)
	ListOrganizations(ctx context.Context, p svcapi.Principal, page svcapi.Page) (api.List[api.Organization], error)
	UpdateOrganization(ctx context.Context, p svcapi.Principal, id string, in api.OrganizationUpdate) (api.Organization, error)
	GetEnvironment(ctx context.Context, p svcapi.Principal, id string) (api.Environment, error)
	EnvironmentExists(ctx context.Context, org, id string) (bool, error)
	ListEnvironments(ctx context.Context, p svcapi.Principal, page svcapi.Page) (api.List[api.Environment], error)
	DeleteEnvironment(ctx context.Context, p svcapi.Principal, id string) error
	UpdateEnvironment(ctx context.Context, p svcapi.Principal, id string, in api.EnvironmentUpdate) (api.Environment, error)
	CreateAPIKey(ctx context.Context, p svcapi.Principal, in api.APIKeyCreate) (api.APIKey, error)
	GetAPIKey(ctx context.Context, p svcapi.Principal, id string) (api.APIKey, error)
	ListAPIKeys(ctx context.Context, p svcapi.Principal, page svcapi.Page) (api.List[api.APIKey], error)
	DeleteAPIKey(ctx context.Context, p svcapi.Principal, id string) error
	UpdateAPIKey(ctx context.Context, p svcapi.Principal, id string, in api.APIKeyUpdate) (api.APIKey, error)
	GetUser(ctx context.Context, p svcapi.Principal, id string) (api.User, error)
	ListUsers(ctx context.Context, p svcapi.Principal, page svcapi.Page) (api.List[api.User], error)
	CreateServiceAccount(ctx context.Context, p svcapi.Principal, in api.ServiceAccountCreate) (api.ServiceAccount, error)
	GetServiceAccount(ctx context.Context, p svcapi.Principal, id string) (api.ServiceAccount, error)
	ListServiceAccounts(ctx context.Context, p svcapi.Principal, page svcapi.Page) (api.List[api.ServiceAccount], error)
	DeleteServiceAccount(ctx context.Context, p svcapi.Principal, id string) error
	UpdateServiceAccount(ctx context.Context, p svcapi.Principal, id string, in api.ServiceAccountUpdate) (api.ServiceAccount, error)
	CreateRoleBinding(ctx context.Context, p svcapi.Principal, in api.RoleBindingCreate) (api.RoleBinding, error)
	GetRoleBinding(ctx context.Context, p svcapi.Principal, id string) (api.RoleBinding, error)
	ListRoleBindings(ctx context.Context, p svcapi.Principal, page svcapi.Page) (api.List[api.RoleBinding], error)
	DeleteRoleBinding(ctx context.Context, p svcapi.Principal, id string) error
}

// Kafka is what the gateway asks of the kafka service.
type Kafka interface {
	CreateCluster(ctx context.Context, p svcapi.Principal, in api.ClusterCreate) (api.Cluster, error)
	GetCluster(ctx context.Context, p svcapi.Principal, id string) (api.Cluster, error)
	ListClusters(ctx context.Context, p svcapi.Principal, env string, page svcapi.Page) (api.List[api.Cluster], error)
	UpdateCluster(ctx context.Context, p svcapi.Principal, id string, in api.ClusterUpdate) (api.Cluster, error)
	DeleteCluster(ctx context.Context, p svcapi.Principal, id string) error
	RestoreCluster(ctx context.Context, p svcapi.Principal, id string) (api.Cluster, error)
	ClusterOnNetwork(ctx context.Context, org, network string) (string, error)
}

// Network is what the gateway asks of the network service.
type Network interface {
	CreateNetwork(ctx context.Context, p svcapi.Principal, in api.NetworkCreate) (api.Network, error)
	GetNetwork(ctx context.Context, p svcapi.Principal, id string) (api.Network, error)
	ListNetworks(ctx context.Context, p svcapi.Principal, env string, page svcapi.Page) (api.List[api.Network], error)
	DeleteNetwork(ctx context.Context, p svcapi.Principal, id string) error
}

// Sync is what the gateway asks of the sync service: which sites take
// clusters, and the operators' changes of sites.
type Sync interface {
	SitesServed(ctx context.Context) ([]resource.Site, error)
	// SiteLinks is each site's satellite link, for the operators.
	SiteLinks(ctx context.Context) ([]syncsvc.SiteLink, error)
	AddSite(ctx context.Context, site resource.Site, by string) (syncsvc.SiteAdded, error)
	CordonSite(ctx context.Context, site resource.Site, cordoned bool, by string) (syncsvc.SiteLink, error)
	RetireSite(ctx context.Context, site resource.Site, by string) error
}

// Audit is what the gateway asks of the audit service.
type Audit interface {
	Record(ctx context.Context, q audit.Request) error
	Events(ctx context.Context, p svcapi.Principal, subject string, page svcapi.Page) (api.List[api.AuditEvent], error)
	Journeys(ctx context.Context, p svcapi.Principal, subject string) (api.JourneyList, error)
}

// Each service and its client serve the gateway alike.
var (
	_ IAM     = (*iam.Service)(nil)
	_ IAM     = (*iam.Client)(nil)
	_ Kafka   = (*kafka.Service)(nil)
	_ Kafka   = (*kafka.Client)(nil)
	_ Network = (*network.Service)(nil)
	_ Network = (*network.Client)(nil)
	_ Audit   = (*audit.Service)(nil)
	_ Audit   = (*audit.Client)(nil)
	_ Sync    = (*syncsvc.Service)(nil)
	_ Sync    = (*syncsvc.Client)(nil)
)

// Config configures the gateway.
type Config struct {
	IAM     IAM
	Kafka   Kafka
	Network Network
	// Audit records every mutating request, allowed or denied.
	Audit Audit
	// Sync lists the regions served (api.RegionsPath).
	Sync Sync
	// Fleet is the operators' view of the installation.
	Fleet Fleet
	// Billing answers the costs and keeps the price book.
	Billing Billing
	// OpenAPI is the document served at /openapi.json.
	OpenAPI []byte
	// ClusterCA is the PEM certificate of the CA the clusters' endpoints
	// chain to, served at api.CAPath; none when they serve plaintext.
	ClusterCA []byte
	// PublicURL is the API's base URL as its clients reach it
	// (https://api.example.com), which the links in answers (metadata.self,
	// related, the pages) start with; empty: the scheme and host each
	// request came to.
	PublicURL string
	// RatePerSecond and RateBurst bound each API key's requests (defaults
	// 20 per second, bursts of 100).
	RatePerSecond float64
	RateBurst     int
	Logger        *slog.Logger
	Registerer    prometheus.Registerer
}

// Gateway serves the public API.
type Gateway struct {
	cfg      Config
	log      *slog.Logger
	routes   []Route
	limits   *limiters
	owners   *limiters
	anon     *anonymous
	mux      *http.ServeMux
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	// linkers are the link replacers by base URL (see linkerFor).
	linkers  sync.Map
	nLinkers atomic.Int64
}

// Route is one method and path pattern of the API.
type Route struct {
	Method  string
	Pattern string
	// Public routes need no API key.
	Public bool
	// Need is the action the route performs: the gateway refuses a caller
	// none of whose roles could permit it, and the owning service checks
	// the precise scope again.
	Need svcapi.Action
	// List routes answer any authenticated caller with what it may see,
	// an empty list without roles: the owning service filters. Clients
	// poll lists to learn a new key works (Confluent's Terraform
	// provider polls the environments for 20 minutes).
	List bool
	// Fleet routes are the operators': 404 to anyone but a FleetAdmin.
	Fleet   bool
	handler func(w http.ResponseWriter, r *http.Request, p svcapi.Principal) error
}

// New returns the gateway.
func New(cfg Config) (*Gateway, error) {
	if cfg.IAM == nil || cfg.Kafka == nil || cfg.Network == nil || cfg.Audit == nil || cfg.Sync == nil || cfg.Fleet == nil {
		return nil, errors.New("gateway: IAM, Kafka, Network, Audit, Sync and Fleet are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	cfg.RatePerSecond = cmp.Or(cfg.RatePerSecond, 20)
	cfg.RateBurst = cmp.Or(cfg.RateBurst, 100)
	g := &Gateway{cfg: cfg, log: cfg.Logger.With("service", Name), mux: http.NewServeMux(), limits: newLimiters(cfg.RatePerSecond, cfg.RateBurst),
		owners: newLimiters(2*cfg.RatePerSecond, 2*cfg.RateBurst), anon: newAnonymous(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mothership_api_requests_total",
			Help: "Public API requests by route and status code."}, []string{"method", "route", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "mothership_api_request_seconds",
			Help: "Public API request latency.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}, []string{"method", "route"}),
	}
	if cfg.Registerer != nil {
		for _, c := range []prometheus.Collector{g.requests, g.latency} {
			if err := cfg.Registerer.Register(c); err != nil {
				return nil, err
			}
		}
	}
	g.routes = g.table()
	byPattern := map[string][]Route{}
	var patterns []string
	for _, rt := range g.routes {
		if _, ok := byPattern[rt.Pattern]; !ok {
			patterns = append(patterns, rt.Pattern)
		}
		byPattern[rt.Pattern] = append(byPattern[rt.Pattern], rt)
	}
	for _, pattern := range patterns {
		g.mux.Handle(pattern, g.dispatch(byPattern[pattern]))
	}
	// The web console: pages over this very route table, as the
	// signed-in key.
	g.mux.Handle(console.Prefix, console.New(console.Config{API: http.HandlerFunc(g.ServeHTTP), Logger: g.log}))
	g.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w, code: api.CodeNotFound}
		api.WriteError(sw, api.Errorf(http.StatusNotFound, api.CodeNotFound, "no API route %s %s", r.Method, truncate(r.URL.Path)))
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			g.audit(r, Route{Method: r.Method, Pattern: "(no route)"}, svcapi.Principal{}, sw, time.Now())
		}
	})
	return g, nil
}

// Routes lists every route of the API, for tests and the OpenAPI check.
func (g *Gateway) Routes() []Route { return slices.Clone(g.routes) }

// ServeHTTP implements http.Handler.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) { g.mux.ServeHTTP(w, r) }

// dispatch serves the routes of one pattern, choosing by method.
func (g *Gateway) dispatch(routes []Route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := slices.IndexFunc(routes, func(rt Route) bool { return rt.Method == r.Method })
		if i < 0 {
			var allowed []string
			for _, rt := range routes {
				allowed = append(allowed, rt.Method)
			}
			w.Header().Set("Allow", strings.Join(allowed, ", "))
			sw := &statusWriter{ResponseWriter: w, code: api.CodeMethodNotAllowed}
			api.WriteError(sw, api.Errorf(http.StatusMethodNotAllowed, api.CodeMethodNotAllowed, "%s is not allowed on %s; use %s",
				r.Method, truncate(r.URL.Path), strings.Join(allowed, ", ")))
			if r.Method != http.MethodGet && r.Method != http.MethodHead {
				// Refused before any route: recorded all the same.
				g.audit(r, Route{Method: r.Method, Pattern: routes[0].Pattern}, svcapi.Principal{}, sw, time.Now())
			}
			return
		}
		g.serve(w, r, routes[i])
	})
}

// statusWriter remembers the status and error code, for metrics and the
// audit log, and makes the links of JSON answers absolute URLs.
type statusWriter struct {
	http.ResponseWriter
	status int
	code   string
	// base is the API's URL, and links the replacements that put it
	// before each link path.
	base  string
	links *strings.Replacer
}

// linkKeys are the fields of an answer that hold a link: the services
// write paths, and Confluent's documents, which clients follow, absolute
// URLs.
var linkKeys = []string{"self", "related", "first", "last", "prev", "next"}

// linker returns what makes the links of an answer absolute under base.
// In encoded JSON, `"self":"/` can only be a key and the start of its
// value, since every quote inside a string is escaped; base is a URL with
// no character JSON escapes.
func linker(base string) *strings.Replacer {
	var pairs []string
	for _, k := range linkKeys {
		pairs = append(pairs, `"`+k+`":"/`, `"`+k+`":"`+base+`/`)
	}
	return strings.NewReplacer(pairs...)
}

// maxLinkers bounds the replacers kept: a base comes from a request's
// Host, which a client chooses.
const maxLinkers = 64

// linkerFor returns the replacer of base, built once: building one costs
// five times what using it does (BenchmarkLinks).
func (g *Gateway) linkerFor(base string) *strings.Replacer {
	if r, ok := g.linkers.Load(base); ok {
		return r.(*strings.Replacer)
	}
	r := linker(base)
	if g.nLinkers.Add(1) <= maxLinkers {
		g.linkers.Store(base, r)
	}
	return r
}

// publicBase is the base URL of the links in the answer to r.
func (g *Gateway) publicBase(r *http.Request) string {
	if g.cfg.PublicURL != "" {
		return strings.TrimRight(g.cfg.PublicURL, "/")
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	host := r.Host
	if strings.ContainsAny(host, "\"<>\\ ") || host == "" {
		host = "localhost"
	}
	return scheme + "://" + host
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	if loc := w.Header().Get("Location"); strings.HasPrefix(loc, "/") && w.base != "" {
		w.Header().Set("Location", w.base+loc)
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if w.links != nil && strings.HasPrefix(w.Header().Get("Content-Type"), "application/json") {
		// One Write is one whole answer (api.WriteJSON encodes at once).
		if _, err := w.links.WriteString(w.ResponseWriter, string(b)); err != nil {
			return 0, err
		}
		return len(b), nil
	}
	return w.ResponseWriter.Write(b)
}

func (g *Gateway) serve(w http.ResponseWriter, r *http.Request, rt Route) {
	start := time.Now()
	// A change carries the request's trace (the client's, or a new one)
	// through every hop; the answer names it, to follow it later
	// (GET /audit/v1/journeys).
	r = r.WithContext(trace.FromRequest(r))
	if r.Method != http.MethodGet {
		trace.Inject(r.Context(), w.Header())
	}
	base := g.publicBase(r)
	sw := &statusWriter{ResponseWriter: w, base: base, links: g.linkerFor(base)}
	var p svcapi.Principal // set once authenticated; read by the audit
	defer func() {
		if v := recover(); v != nil {
			g.log.ErrorContext(r.Context(), "handler panicked", "method", r.Method, "path", r.URL.Path, "panic", v)
			if sw.status == 0 {
				api.WriteError(sw, api.AsError(nil))
			}
		}
		g.requests.WithLabelValues(rt.Method, rt.Pattern, strconv.Itoa(sw.status)).Inc()
		g.latency.WithLabelValues(rt.Method, rt.Pattern).Observe(time.Since(start).Seconds())
		if r.Method != http.MethodGet {
			g.audit(r, rt, p, sw, start)
		}
	}()
	r.Body = http.MaxBytesReader(sw, r.Body, api.MaxBodyBytes+1)
	if !rt.Public {
		var err error
		if p, err = g.authenticate(r.Context(), r); err != nil {
			g.fail(sw, r, err)
			return
		}
		// A key's bucket, and its owner's: minting keys buys no budget.
		if !g.limits.allow(sw, p.KeyID, true) || !g.owners.allow(sw, p.Owner, false) {
			return
		}
		if id := r.PathValue("id"); id != "" && !validID(id) {
			g.fail(sw, r, api.Errorf(http.StatusNotFound, api.CodeNotFound, "no resource has the id %q", truncate(id)))
			return
		}
		if rt.Fleet && !p.FleetAdmin() {
			// As if the route did not exist: a tenant learns nothing of
			// the fleet.
			g.fail(sw, r, api.Errorf(http.StatusNotFound, api.CodeNotFound, "no route for %s %s", r.Method, r.URL.Path))
			return
		}
		if !rt.List && !rt.Fleet && !p.MayAttempt(rt.Need) {
			g.fail(sw, r, api.Errorf(http.StatusForbidden, api.CodeForbidden, "%s has no role that may %s here; ask an OrganizationAdmin for a role binding", p.Owner, rt.Need))
			return
		}
	}
	if err := rt.handler(sw, r, p); err != nil {
		g.fail(sw, r, err)
	}
}

func (g *Gateway) fail(w http.ResponseWriter, r *http.Request, err error) {
	e := api.AsError(err)
	if sw, ok := w.(*statusWriter); ok {
		sw.code = e.Code
	}
	if e.Status >= 500 {
		g.log.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	if e.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="mothership"`)
	}
	api.WriteError(w, e)
}

// authenticate checks the API key of the request. A cluster-scoped key is
// a Kafka credential: it does not manage the control plane.
func (g *Gateway) authenticate(ctx context.Context, r *http.Request) (svcapi.Principal, error) {
	key, secret, ok := r.BasicAuth()
	if !ok {
		return svcapi.Principal{}, api.Errorf(http.StatusUnauthorized, api.CodeUnauthorized,
			"this API needs an API key and secret with HTTP Basic authentication")
	}
	from, _, _ := net.SplitHostPort(r.RemoteAddr)
	p, err := g.cfg.IAM.Authenticate(ctx, key, secret, from)
	if err != nil {
		return p, err
	}
	if p.Resource != "" {
		return p, api.Errorf(http.StatusUnauthorized, api.CodeUnauthorized,
			"API key %s is scoped to cluster %s: use it with Kafka clients; the control plane needs a cloud API key", p.KeyID, p.Resource)
	}
	return p, nil
}

// audit records a mutating request, allowed or denied. The subject is the
// resource of the path, or the one a creation made.
func (g *Gateway) audit(r *http.Request, rt Route, p svcapi.Principal, sw *statusWriter, at time.Time) {
	// Only what has the shape of an id goes into a record's id and key
	// fields: a hostile path or user name must not make the record fail,
	// and a secret sent as the user name must not be kept.
	key, _, _ := r.BasicAuth()
	if !iam.ValidKeyID(key) {
		key = ""
	}
	subject := r.PathValue("id")
	if loc := sw.Header().Get("Location"); subject == "" && loc != "" {
		subject = loc[strings.LastIndex(loc, "/")+1:]
	}
	if subject != "" && !validID(subject) {
		subject = "invalid-id"
	}
	suppressed := 0
	if p.Owner == "" {
		from, _, _ := net.SplitHostPort(r.RemoteAddr)
		var ok bool
		if ok, suppressed = g.anon.admit(from); !ok {
			return
		}
	}
	err := g.cfg.Audit.Record(context.WithoutCancel(r.Context()), audit.Request{Principal: p, KeyID: key, Method: r.Method, Path: truncate(r.URL.Path),
		Route: rt.Pattern, Subject: subject, Status: sw.status, Code: sw.code, At: at, Suppressed: suppressed})
	if err != nil {
		g.log.ErrorContext(r.Context(), "audit record lost", "method", r.Method, "path", r.URL.Path, "err", err)
	}
}

// idPattern is the shape of every resource id the API hands out.
var idPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9-]{0,63}$`)

func validID(id string) bool { return idPattern.MatchString(id) }

// truncate bounds what a hostile request can make us echo or store.
func truncate(s string) string {
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return strings.ToValidUTF8(s, "?")
}
