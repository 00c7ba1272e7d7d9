// Package fleet is the operators' service (layer 3, beside the frontends):
// the view of every cluster and PKC of every organization, filtered and
// counted, for the people who run thousands of clusters at a time; the
// installation's Kafka versions; and upgrade campaigns. It observes the
// state the services that own clusters (kafka) and PKCs (pkc) publish,
// keeps the newest of each in its own database, and answers from a model
// in memory rebuilt from that database at start, so that a filtered query
// over 100,000 clusters reads no other service and no disk. It owns the
// version settings, the campaigns and their per-PKC assignments, which
// the pkc service follows: it never writes a PKC.
package fleet

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	json "github.com/segmentio/encoding/json"

	"github.com/mothership-dev/mothership/internal/resource"
	"github.com/mothership-dev/mothership/internal/runtime/event"
	"github.com/mothership-dev/mothership/internal/runtime/host"
	"github.com/mothership-dev/mothership/internal/runtime/store"
)

// Name and Layer place the service in the layer cake: a frontend of the
// operators, above pkc, which follows its campaigns.
const (
	Name  = "fleet"
	Layer = 3
)

var (
	lkcDesired = event.Topic(resource.KindLKC, event.Desired)
	lkcStatus  = event.Topic(resource.KindLKC, event.Status)
	pkcDesired = event.Topic(resource.KindPKC, event.Desired)
	pkcStatus  = event.Topic(resource.KindPKC, event.Status)
	// orgDesired brings the organizations' maintenance windows.
	orgDesired = event.Topic(resource.KindOrganization, event.Desired)
	topics     = []string{lkcDesired, lkcStatus, pkcDesired, pkcStatus, orgDesired}
)

// DefaultTick is how often unfinished campaigns are looked at for a soak
// that ended or a PKC stuck in its upgrade.
const DefaultTick = time.Second

// DefaultStuckAfter is how long a resource may leave a generation
// unobserved before the view calls it stuck.
const DefaultStuckAfter = 15 * time.Minute

// Config configures the service.
type Config struct {
	// StuckAfter is how long an accepted generation may stay unobserved
	// before the resource counts as stuck (default DefaultStuckAfter).
	StuckAfter time.Duration
	// Tick is how often unfinished campaigns are looked at (default
	// DefaultTick).
	Tick time.Duration
	// Now returns the current time; tests may move it.
	Now        func() time.Time
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Service is the fleet service.
type Service struct {
	cfg Config
	log *slog.Logger
	st  store.Store

	loaded atomic.Bool
	mu     sync.RWMutex
	// The rows are replaced whole, never changed in place, so a query
	// may keep a pointer after it let go of the lock.
	lkcs map[string]*Cluster
	pkcs map[string]*PKC
	// paused says who paused each paused cluster or PKC, and why.
	paused map[string]string
	// siteWindows are the sites' maintenance windows, by site.
	siteWindows map[string]resource.Window
	// orgWindows are the organizations' maintenance windows, by
	// organization.
	orgWindows map[string]resource.Window
	// upkeepAfter is the campaign the upkeep looked at last; only the
	// upkeep uses it.
	upkeepAfter string
}

// New returns the service; Host declares it to the runtime.
func New(cfg Config) *Service {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	cfg.StuckAfter = cmp.Or(cfg.StuckAfter, DefaultStuckAfter)
	cfg.Tick = cmp.Or(cfg.Tick, DefaultTick)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Service{cfg: cfg, log: cfg.Logger.With("service", Name), lkcs: map[string]*Cluster{}, pkcs: map[string]*PKC{}, paused: map[string]string{}, siteWindows: map[string]resource.Window{},
		orgWindows: map[string]resource.Window{}}
	if cfg.Registerer != nil {
		for kind, count := range map[string]func() float64{
			resource.KindLKC: func() float64 { return float64(s.Summarize().StuckClusters) },
			resource.KindPKC: func() float64 { return float64(s.Summarize().StuckPKCs) },
		} {
			g := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "mothership_fleet_stuck_resources",
				Help:        "Resources whose accepted generation has stayed unobserved longer than the limit, by kind.",
				ConstLabels: prometheus.Labels{"kind": kind}}, count)
			if err := cfg.Registerer.Register(g); err != nil {
				s.log.Warn("fleet: stuck gauge not registered", "kind", kind, "err", err)
			}
		}
		if err := cfg.Registerer.Register(stuckByLayer{s}); err != nil {
			s.log.Warn("fleet: stuck-by-layer gauge not registered", "err", err)
		}
	}
	return s
}

// Host declares the service: it follows the clusters and PKCs, and owns
// the version settings and the campaigns.
func (s *Service) Host() host.Service {
	return host.Service{
		Name:           Name,
		Layer:          Layer,
		Owns:           []string{resource.KindVersions, resource.KindUpgrade, resource.KindPKCUpgrade, resource.KindPause, resource.KindSiteWindow},
		ReactsTo:       topics,
		Reconcile:      s.reconcile,
		Upkeep:         s.upkeep,
		UpkeepInterval: s.cfg.Tick,
		Attach: func(st store.Store) {
			s.st = st
			// What was observed before a restart is served again as soon
			// as it is read back; the reactor brings the rest.
			go func() {
				if err := s.Load(context.Background()); err != nil {
					s.log.Error("fleet: the view is not loaded; it fills as events arrive", "err", err)
				}
			}()
		},
	}
}

// Cluster is a cluster (LKC) as the fleet view shows it.
type Cluster struct {
	ID           string `json:"id"`
	Organization string `json:"organization"`
	Environment  string `json:"environment"`
	DisplayName  string `json:"display_name"`
	// SKU is the cluster's type: Basic, Standard or Dedicated.
	SKU    string `json:"sku"`
	CKU    int    `json:"cku,omitempty"`
	Cloud  string `json:"cloud"`
	Region string `json:"region"`
	// Site is cloud/region, as sites are named.
	Site string `json:"site"`
	PKC  string `json:"pkc,omitempty"`
	// Version is the Kafka version its PKC runs.
	Version            string `json:"version,omitempty"`
	Phase              string `json:"phase"`
	Reason             string `json:"reason,omitempty"`
	Generation         int64  `json:"generation"`
	ObservedGeneration int64  `json:"observed_generation"`
	Deleted            bool   `json:"deleted,omitempty"`
	// DeletedAt and PurgeAt are set for a deleted cluster kept for its
	// retention: until PurgeAt it can be restored.
	DeletedAt *time.Time `json:"deleted_at,omitempty"`
	PurgeAt   *time.Time `json:"purge_at,omitempty"`
	// AcceptedAt is when the current generation was accepted, and Stuck
	// says it has stayed unobserved longer than the limit.
	AcceptedAt time.Time `json:"accepted_at"`
	Stuck      bool      `json:"stuck"`
	// StuckLayer names the lowest layer that has not caught up, while
	// stuck: pkc, capacity, satellite, or paused.
	StuckLayer string `json:"stuck_layer,omitempty"`
	// Paused says who paused it (or its PKC) and why.
	Paused string `json:"paused,omitempty"`
	// MaintenanceWindow and KafkaVersionPin are its tenant's, for an
	// operator's upgrade.
	MaintenanceWindow *resource.Window `json:"maintenance_window,omitempty"`
	KafkaVersionPin   string           `json:"kafka_version_pin,omitempty"`
	version           int64
	// ownerStuck is the STUCK condition the cluster's owner wrote.
	ownerStuck *store.Stuck
	// purged: its retention ended, it leaves the view.
	purged bool
	// keys are the lower-case values the filters compare: organization,
	// site, SKU, phase.
	keys [4]string
}

// PKC is a physical cluster as the fleet view shows it.
type PKC struct {
	ID        string `json:"id"`
	Site      string `json:"site"`
	Dedicated bool   `json:"dedicated"`
	Brokers   int    `json:"brokers"`
	// Spec and Status carry the version asked for and the one running.
	Spec struct {
		Version string `json:"version,omitempty"`
	} `json:"spec"`
	Status struct {
		Version            string `json:"version,omitempty"`
		Phase              string `json:"phase"`
		Reason             string `json:"reason,omitempty"`
		ObservedGeneration int64  `json:"observed_generation"`
	} `json:"status"`
	Generation int64     `json:"generation"`
	LKCs       []string  `json:"lkcs"`
	Deleted    bool      `json:"deleted,omitempty"`
	AcceptedAt time.Time `json:"accepted_at"`
	Stuck      bool      `json:"stuck"`
	// StuckLayer names the lowest layer that has not caught up, while
	// stuck.
	StuckLayer string `json:"stuck_layer,omitempty"`
	// Paused says who paused it and why.
	Paused  string `json:"paused,omitempty"`
	version int64
	// ownerStuck is the STUCK condition the PKC's owner wrote.
	ownerStuck *store.Stuck
	purged     bool
	// updatedAt is when its state last changed, status included.
	updatedAt time.Time
}

// observed is the newest state of a subject over the desired and status
// topics of its kind (each event carries the whole resource), and when
// its current generation was accepted: the time of its newest desired
// state, which status changes (on the status topic) do not move.
type observed struct {
	r          store.Resource
	acceptedAt time.Time
}

// newest reads subject once from each of its kind's topics.
func newest(ctx context.Context, tx store.Tx, subject, desired, status string) (observed, bool, error) {
	var o observed
	found := false
	for _, t := range []string{desired, status} {
		r, err := store.ObservedResource(ctx, tx, t, subject)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return o, false, err
		}
		if t == desired {
			o.acceptedAt = r.UpdatedAt
		}
		if !found || r.Version > o.r.Version {
			o.r, found = r, true
		}
	}
	if p := o.r.Status.PendingSince; p != nil {
		// The store's own timing of the wait: since the last progress.
		o.acceptedAt = *p
	}
	return o, found, nil
}

// reconcile takes the newest state of a cluster or PKC into the model, and
// a PKC's into the campaign that holds it.
func (s *Service) reconcile(ctx context.Context, tx store.Tx, subject string) error {
	return s.take(ctx, tx, subject, true)
}

// take takes the newest state of subject into the model; react moves the
// campaigns on it too (a load from the database does not).
func (s *Service) take(ctx context.Context, tx store.Tx, subject string, react bool) error {
	if strings.HasPrefix(subject, "org-") {
		return s.takeOrganization(ctx, tx, subject)
	}
	if strings.HasPrefix(subject, "pkc-") {
		o, ok, err := newest(ctx, tx, subject, pkcDesired, pkcStatus)
		if err != nil || !ok {
			return err
		}
		p, err := toPKC(o.r)
		if err != nil {
			return err
		}
		p.AcceptedAt = o.acceptedAt
		s.putPKC(p)
		if !react {
			return nil
		}
		return s.onPKC(ctx, tx, o)
	}
	o, ok, err := newest(ctx, tx, subject, lkcDesired, lkcStatus)
	if err != nil || !ok {
		return err
	}
	c, err := toCluster(o.r)
	if err != nil {
		return err
	}
	c.AcceptedAt = o.acceptedAt
	s.putCluster(c)
	return nil
}

// stuck says a resource left a generation unobserved longer than the
// limit at now.
func (s *Service) stuck(now time.Time, generation, observed int64, accepted time.Time) bool {
	return generation > observed && !accepted.IsZero() && now.Sub(accepted) > s.cfg.StuckAfter
}

func toCluster(r store.Resource) (Cluster, error) {
	spec, err := resource.Decode[resource.LKCSpec](r.Spec)
	if err != nil {
		return Cluster{}, fmt.Errorf("cluster %s: %w", r.ID, err)
	}
	var st resource.LKCStatus
	if len(r.Status.Detail) > 0 {
		if err := json.Unmarshal(r.Status.Detail, &st); err != nil {
			return Cluster{}, fmt.Errorf("cluster %s status: %w", r.ID, err)
		}
	}
	return Cluster{ID: r.ID, Organization: r.Organization, Environment: r.Environment, DisplayName: spec.DisplayName, SKU: spec.Type,
		CKU: spec.CKU, Cloud: spec.Cloud, Region: spec.Region, Site: spec.Site().String(), PKC: st.PKC, Phase: r.Status.Phase,
		Reason: r.Status.Reason, Generation: r.Generation, ObservedGeneration: r.Status.ObservedGeneration, Deleted: r.Deleted(),
		DeletedAt: r.DeletedAt, PurgeAt: r.PurgeAt, MaintenanceWindow: spec.MaintenanceWindow, KafkaVersionPin: spec.KafkaVersionPin,
		version: r.Version, ownerStuck: r.Status.Stuck, purged: r.Purged}, nil
}

func toPKC(r store.Resource) (PKC, error) {
	spec, err := resource.Decode[resource.PKCSpec](r.Spec)
	if err != nil {
		return PKC{}, fmt.Errorf("pkc %s: %w", r.ID, err)
	}
	var st resource.PKCStatus
	if len(r.Status.Detail) > 0 {
		if err := json.Unmarshal(r.Status.Detail, &st); err != nil {
			return PKC{}, fmt.Errorf("pkc %s status: %w", r.ID, err)
		}
	}
	p := PKC{ID: r.ID, Site: spec.Site().String(), Dedicated: spec.Dedicated, Brokers: spec.Brokers, Generation: r.Generation,
		LKCs: slices.Sorted(maps.Keys(spec.Tenants)), Deleted: r.Deleted(), version: r.Version, updatedAt: r.UpdatedAt, ownerStuck: r.Status.Stuck,
		purged: r.Purged}
	if p.LKCs == nil {
		p.LKCs = []string{}
	}
	p.Spec.Version = spec.Version
	p.Status.Version, p.Status.Phase, p.Status.Reason, p.Status.ObservedGeneration = st.Version, r.Status.Phase, r.Status.Reason, r.Status.ObservedGeneration
	return p, nil
}

// Observe takes a cluster's or PKC's state into the view as its event
// would (benchmarks fill the view with it, without a database).
func (s *Service) Observe(r store.Resource) error {
	switch r.Kind {
	case resource.KindPKC:
		p, err := toPKC(r)
		if err != nil {
			return err
		}
		p.AcceptedAt = r.UpdatedAt
		s.putPKC(p)
	case resource.KindLKC:
		c, err := toCluster(r)
		if err != nil {
			return err
		}
		c.AcceptedAt = r.UpdatedAt
		s.putCluster(c)
	default:
		return fmt.Errorf("fleet: %s is neither a cluster nor a PKC", r.Kind)
	}
	return nil
}

func (s *Service) putCluster(c Cluster) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.lkcs[c.ID]; ok && old.version >= c.version {
		return
	}
	if c.purged {
		delete(s.lkcs, c.ID) // its retention ended: nothing is left of it
		return
	}
	c.keys = [4]string{strings.ToLower(c.Organization), strings.ToLower(c.Site), strings.ToLower(c.SKU), strings.ToLower(c.Phase)}
	s.lkcs[c.ID] = &c
}

func (s *Service) putPKC(p PKC) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.pkcs[p.ID]; ok && old.version >= p.version {
		return
	}
	if p.purged {
		delete(s.pkcs, p.ID)
		return
	}
	s.pkcs[p.ID] = &p
}

// Load rebuilds the model from the service's database: what was observed
// before a restart is served at once, before the reactor catches up.
func (s *Service) Load(ctx context.Context) error {
	err := s.st.View(ctx, func(ctx context.Context, tx store.Tx) error {
		if err := s.loadPauses(ctx, tx); err != nil {
			return err
		}
		if err := s.loadSiteWindows(ctx, tx); err != nil {
			return err
		}
		seen := map[string]bool{}
		for _, t := range topics {
			subjects, err := tx.ObservedSubjects(ctx, t)
			if err != nil {
				return fmt.Errorf("observed %s: %w", t, err)
			}
			for _, sub := range subjects {
				if seen[sub] {
					continue
				}
				seen[sub] = true
				if err := s.take(ctx, tx, sub, false); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("fleet: load: %w", err)
	}
	s.loaded.Store(true)
	return nil
}

// versionOf is the version a cluster's PKC runs, as the model knows it.
func (s *Service) versionOf(c *Cluster) string {
	if p, ok := s.pkcs[c.PKC]; ok {
		return cmp.Or(p.Status.Version, p.Spec.Version)
	}
	return ""
}
