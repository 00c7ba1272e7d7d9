// Package controlplane assembles the whole system from its parts: every
// service of the layer cake on the runtime, the public API behind the
// gateway, the satellite link, and (embedded) satellites that dial it. The
// `dev` command and the end-to-end tests run exactly this.
package controlplane

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/renameio/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mothership-dev/mothership/internal/api"
	"github.com/mothership-dev/mothership/internal/cloud/sim"
	"github.com/mothership-dev/mothership/internal/resource"
	"github.com/mothership-dev/mothership/internal/runtime/host"
	"github.com/mothership-dev/mothership/internal/runtime/store"
	"github.com/mothership-dev/mothership/internal/satellite"
	"github.com/mothership-dev/mothership/internal/satellite/embedded"
	"github.com/mothership-dev/mothership/internal/satellite/link"
	"github.com/mothership-dev/mothership/internal/service/audit"
	"github.com/mothership-dev/mothership/internal/service/capacity"
	"github.com/mothership-dev/mothership/internal/service/gateway"
	"github.com/mothership-dev/mothership/internal/service/iam"
	"github.com/mothership-dev/mothership/internal/service/kafka"
	"github.com/mothership-dev/mothership/internal/service/network"
	"github.com/mothership-dev/mothership/internal/service/pkc"
	"github.com/mothership-dev/mothership/internal/service/quota"
	syncsvc "github.com/mothership-dev/mothership/internal/service/sync"
	"github.com/mothership-dev/mothership/internal/sitekey"
)

// DefaultSites are the sites `dev` serves.
var DefaultSites = []resource.Site{{Cloud: "AWS", Region: "us-west-2"}, {Cloud: "GCP", Region: "europe-west1"}}

// AdminCredentialsFile is written in the data dir when the system is first
// started: one line KEY:SECRET, for HTTP Basic.
const AdminCredentialsFile = "admin-credentials"

// Config configures a system.
type Config struct {
	// DataDir holds every database, the satellites' state and the admin
	// credentials.
	DataDir string
	// Listener serves the API, the satellite link, health and metrics.
	Listener net.Listener
	// Kafka reaches the event cluster.
	Kafka []kgo.Opt
	// OpenStore opens a service's own database.
	OpenStore func(ctx context.Context, service string, owns []string) (store.Store, error)
	// Sites get one embedded satellite each (default DefaultSites).
	Sites []resource.Site
	// Cloud tunes the cloud simulator behind capacity and network.
	Cloud sim.Config
	// BrokerStepDelay is how long the embedded driver takes per broker
	// added or removed.
	BrokerStepDelay time.Duration
	// MaxTenants per shared PKC.
	MaxTenants int
	// RatePerSecond and RateBurst bound each API key's requests (gateway
	// defaults when zero).
	RatePerSecond float64
	RateBurst     int
	// Metrics serves /metrics from this gatherer, if set.
	Metrics    http.Handler
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// System is a running control plane with its satellites.
type System struct {
	// URL is the base URL of the API.
	URL string
	// Organization is the organization dev serves.
	Organization string
	// AdminKey and AdminSecret are set when this start created the
	// organization (they are also in DataDir/admin-credentials).
	AdminKey, AdminSecret string

	Fleet *host.Fleet
	// IAM is the identity service, for operators' tasks (a new
	// organization) that have no public route.
	IAM        *iam.Service
	Satellites map[string]*satellite.Agent
	Drivers    map[string]*embedded.Driver

	gateway        *gateway.Gateway
	srv            *http.Server
	cancelRequests context.CancelFunc
	ready          atomic.Bool
}

// Start starts the services bottom layer first, then the API, then the
// satellites. On error everything started is stopped.
func Start(ctx context.Context, cfg Config) (_ *System, err error) {
	if cfg.DataDir == "" || cfg.Listener == nil || cfg.OpenStore == nil || len(cfg.Kafka) == 0 {
		return nil, errors.New("controlplane: DataDir, Listener, OpenStore and Kafka are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if len(cfg.Sites) == 0 {
		cfg.Sites = DefaultSites
	}
	log := cfg.Logger
	s := &System{URL: "http://" + cfg.Listener.Addr().String(), Satellites: map[string]*satellite.Agent{}, Drivers: map[string]*embedded.Driver{}}
	defer func() {
		if err != nil {
			err = errors.Join(err, s.Stop())
		}
	}()

	var sats []syncsvc.Satellite
	tokens := map[resource.Site]string{}
	keys := map[resource.Site]sitekey.PrivateKey{}
	public := map[string][]byte{}
	for _, site := range cfg.Sites {
		dir := filepath.Join(cfg.DataDir, "satellites", siteDir(site))
		token, err := satelliteToken(dir)
		if err != nil {
			return nil, err
		}
		if keys[site], err = sitekey.LoadOrCreate(dir); err != nil {
			return nil, err
		}
		public[site.String()] = keys[site].Public()
		tokens[site] = token
		sats = append(sats, syncsvc.Satellite{Site: site, TokenHash: syncsvc.HashToken(token)})
	}

	cloud := sim.New(cfg.Cloud)
	iamSvc := iam.New(iam.Config{SiteKeys: public, Logger: log})
	quotaSvc := quota.New(quota.Config{Logger: log})
	netSvc := network.New(network.Config{Cloud: cloud, Logger: log})
	syncSvc := syncsvc.New(syncsvc.Config{Satellites: sats, Logger: log})
	kafkaSvc := kafka.New(kafka.Config{Environments: iamSvc, Quotas: quotaSvc, Sites: syncSvc, Networks: netSvc, Logger: log})
	iamSvc.Use(kafkaSvc, netSvc)
	s.IAM = iamSvc
	// The synchronous calls wired above, checked against the layers: a
	// call goes to the same layer or down, never up.
	if err := checkCalls([]call{
		{kafka.Name, kafka.Layer, iam.Name, iam.Layer}, {kafka.Name, kafka.Layer, quota.Name, quota.Layer},
		{kafka.Name, kafka.Layer, syncsvc.Name, syncsvc.Layer}, {kafka.Name, kafka.Layer, network.Name, network.Layer},
		{iam.Name, iam.Layer, kafka.Name, kafka.Layer}, {iam.Name, iam.Layer, network.Name, network.Layer},
		{gateway.Name, gateway.Layer, iam.Name, iam.Layer}, {gateway.Name, gateway.Layer, kafka.Name, kafka.Layer},
		{gateway.Name, gateway.Layer, network.Name, network.Layer}, {gateway.Name, gateway.Layer, audit.Name, audit.Layer},
	}); err != nil {
		return nil, err
	}
	auditSvc := audit.New(audit.Config{Logger: log})
	services := []host.Service{
		auditSvc.Host(), iamSvc.Host(), kafkaSvc.Host(), quotaSvc.Host(),
		pkc.New(pkc.Config{MaxTenants: cfg.MaxTenants, Logger: log}).Host(),
		capacity.New(capacity.Config{Cloud: cloud, Logger: log}).Host(),
		netSvc.Host(), syncSvc.Host(),
	}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !s.ready.Load() {
			http.Error(w, "starting or stopping", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	if cfg.Metrics != nil {
		mux.Handle("GET /metrics", cfg.Metrics)
	}
	var apiHandler atomic.Pointer[http.Handler]
	unavailable := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Retry-After", "1")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"errors":[{"status":"503","code":"unavailable","detail":"the control plane is starting; retry in a moment"}]}` + "\n"))
	})
	mux.Handle("/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h := apiHandler.Load(); h != nil {
			(*h).ServeHTTP(w, r)
			return
		}
		unavailable(w, r)
	}))
	// Requests derive from a context Stop cancels: a satellite's long poll
	// must end at shutdown, which http.Server.Shutdown alone waits for.
	base, cancelRequests := context.WithCancel(context.WithoutCancel(ctx))
	s.cancelRequests = cancelRequests
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, BaseContext: func(net.Listener) context.Context { return base }}
	go func() { _ = s.srv.Serve(cfg.Listener) }()

	s.Fleet, err = host.StartAll(ctx, host.Config{OpenStore: cfg.OpenStore, Kafka: cfg.Kafka, Logger: log, Registerer: cfg.Registerer}, services)
	if err != nil {
		return nil, err
	}
	// A crash between creating the admin's key and saving it would leave
	// an organization no one can log into: a missing file gets a new key.
	path := filepath.Join(cfg.DataDir, AdminCredentialsFile)
	_, statErr := os.Stat(path)
	org, key, secret, err := iamSvc.Bootstrap(ctx, "default", errors.Is(statErr, os.ErrNotExist))
	if err != nil {
		return nil, err
	}
	s.Organization = org
	if key != "" {
		s.AdminKey, s.AdminSecret = key, secret
		if err := renameio.WriteFile(path, []byte(key+":"+secret+"\n"), 0o600); err != nil {
			return nil, fmt.Errorf("controlplane: write %s: %w", path, err)
		}
		log.Info("admin credentials written", "organization", org, "file", path)
	}
	gw, err := gateway.New(gateway.Config{IAM: iamSvc, Kafka: kafkaSvc, Network: netSvc, Audit: auditSvc, OpenAPI: api.OpenAPI,
		RatePerSecond: cfg.RatePerSecond, RateBurst: cfg.RateBurst, Logger: log, Registerer: cfg.Registerer})
	if err != nil {
		return nil, err
	}
	s.gateway = gw
	// The satellite link is served beside the API; in a distributed
	// deployment the sync service serves it on its own address.
	routed := http.NewServeMux()
	routed.Handle(resource.LinkPath, syncSvc.Handler())
	routed.Handle("/", gw)
	var h http.Handler = routed
	apiHandler.Store(&h)

	for _, site := range cfg.Sites {
		dir := filepath.Join(cfg.DataDir, "satellites", siteDir(site))
		var reg prometheus.Registerer
		if cfg.Registerer != nil {
			reg = prometheus.WrapRegistererWith(prometheus.Labels{"site": site.String()}, cfg.Registerer)
		}
		drv, err := embedded.New(embedded.Config{DataDir: filepath.Join(dir, "clusters"), StepDelay: cfg.BrokerStepDelay,
			AutoCreateTopics: true, SiteKey: keys[site], Logger: log.With("satellite", site.String()), Registerer: reg})
		if err != nil {
			return nil, err
		}
		agent, err := satellite.New(satellite.Config{Site: site, DataDir: dir, Driver: drv, Logger: log,
			Link: &link.Client{URL: s.URL, Token: tokens[site], Site: site, Logger: log}})
		if err != nil {
			return nil, err
		}
		if err := agent.Start(ctx); err != nil {
			return nil, err
		}
		s.Satellites[site.String()], s.Drivers[site.String()] = agent, drv
	}
	s.ready.Store(true)
	log.Info("mothership is up", "url", s.URL, "organization", org, "sites", len(cfg.Sites))
	return s, nil
}

// Routes lists the public API's routes, from the router itself.
func (s *System) Routes() []gateway.Route { return s.gateway.Routes() }

// Stop stops the satellites, the API and the services, in that order.
// Safe to call twice.
func (s *System) Stop() error {
	s.ready.Store(false)
	var errs []error
	for _, a := range s.Satellites {
		errs = append(errs, a.Stop())
	}
	if s.srv != nil {
		s.cancelRequests()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		// Requests were cancelled; what still holds Shutdown up is a
		// connection that never sent one (a client that gave up mid-dial),
		// which net/http waits 5s for. Close it.
		if err := s.srv.Shutdown(ctx); errors.Is(err, context.DeadlineExceeded) {
			errs = append(errs, s.srv.Close())
		} else {
			errs = append(errs, err)
		}
	}
	if s.Fleet != nil {
		errs = append(errs, s.Fleet.Stop())
	}
	return errors.Join(errs...)
}

func siteDir(site resource.Site) string {
	return strings.ToLower(site.Cloud) + "-" + site.Region
}

// satelliteToken returns the satellite's token, kept in its directory
// (created on first start).
func satelliteToken(dir string) (string, error) {
	path := filepath.Join(dir, "token")
	b, err := os.ReadFile(path)
	if err == nil && len(strings.TrimSpace(string(b))) > 0 {
		return strings.TrimSpace(string(b)), nil
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("controlplane: satellite token: %w", err)
	}
	raw := make([]byte, 32)
	_, _ = rand.Read(raw) // crypto/rand.Read never fails (Go ≥ 1.24)
	token := hex.EncodeToString(raw)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("controlplane: satellite dir: %w", err)
	}
	if err := os.WriteFile(path, []byte(token+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("controlplane: satellite token: %w", err)
	}
	return token, nil
}

// call is one synchronous dependency between services.
type call struct {
	from      string
	fromLayer int
	to        string
	toLayer   int
}

// checkCalls refuses a call from a service to a higher layer. Imports are
// checked by archtest; calls go through interfaces wired here, so they are
// checked here.
func checkCalls(calls []call) error {
	for _, c := range calls {
		if c.toLayer > c.fromLayer {
			return fmt.Errorf("controlplane: %s (layer %d) must not call %s (layer %d): calls go down or across", c.from, c.fromLayer, c.to, c.toLayer)
		}
	}
	return nil
}
