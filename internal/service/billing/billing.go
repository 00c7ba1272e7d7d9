// Package billing is the billing service (layer 3): from the clusters'
// events it records each cluster's billable history (its usage resource:
// live or not, and its realized size, from the time its owner recorded
// each change), keeps the operators' price book, and answers the costs of
// an organization for any span as hourly or daily lines, computed from
// that history on each request, so that recomputing gives the same
// lines. It calls no one.
package billing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	json "github.com/segmentio/encoding/json"

	"github.com/mothership-dev/mothership/internal/resource"
	"github.com/mothership-dev/mothership/internal/runtime/event"
	"github.com/mothership-dev/mothership/internal/runtime/host"
	"github.com/mothership-dev/mothership/internal/runtime/store"
)

// Name and Layer place the service in the layer cake.
const (
	Name  = "billing"
	Layer = 3
)

var (
	lkcDesired = event.Topic(resource.KindLKC, event.Desired)
	lkcStatus  = event.Topic(resource.KindLKC, event.Status)
	// meterDesired is the satellites' metered buckets, through sync.
	meterDesired = event.Topic(resource.KindMeter, event.Desired)
)

// Config configures the service.
type Config struct {
	// Now is the clock that ends the current hour's accrual (default
	// time.Now).
	Now func() time.Time
	// Prices are the price book in force until an operator sets one
	// (default DefaultPrices).
	Prices []resource.Price
	Logger *slog.Logger
}

// Line types and units of the lines, in Confluent's words.
const (
	LineCKUs      = "KAFKA_NUM_CKUS"
	LineBase      = "KAFKA_BASE"
	LineWrite     = "KAFKA_NETWORK_WRITE"
	LineRead      = "KAFKA_NETWORK_READ"
	LineStorage   = "KAFKA_STORAGE"
	LinePartition = "KAFKA_PARTITION"
	UnitCKU       = "CKU-hour"
	UnitHour      = "Hour"
	UnitGB        = "GB"
	UnitGBHour    = "GB-hour"
	UnitPartition = "Partition-hour"
)

// DefaultPrices is the price book of a new installation, in US dollars:
// a Dedicated CKU-hour $2.00, a Standard cluster-hour $1.50, a Basic one
// free, a GB produced or fetched $0.05, a GB stored for an hour $0.0001
// (about $0.07 a month), partitions included.
var DefaultPrices = []resource.Price{
	{LineType: LineWrite, UnitMicros: 50_000},
	{LineType: LineRead, UnitMicros: 50_000},
	{LineType: LineStorage, UnitMicros: 100},
	{LineType: LinePartition, UnitMicros: 0},
	{LineType: LineCKUs, SKU: resource.TypeDedicated, UnitMicros: 2_000_000},
	{LineType: LineBase, SKU: resource.TypeStandard, UnitMicros: 1_500_000},
	{LineType: LineBase, SKU: resource.TypeBasic, UnitMicros: 0},
}

// Service is the billing service.
type Service struct {
	cfg Config
	log *slog.Logger
	st  store.Store
}

// New returns the service.
func New(cfg Config) *Service {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Prices == nil {
		cfg.Prices = DefaultPrices
	}
	return &Service{cfg: cfg, log: cfg.Logger.With("service", Name)}
}

// Host declares the service: it owns usage histories and the price book,
// and hears every event of the clusters, none coalesced, so that each
// change of size is billed from its own time.
func (s *Service) Host() host.Service {
	return host.Service{
		Name:     Name,
		Layer:    Layer,
		Owns:     []string{resource.KindUsage, resource.KindPriceBook, resource.KindMeteredHour},
		ReactsTo: []string{lkcDesired, lkcStatus, meterDesired},
		OnEvent:  s.onEvent,
		// What Apply reads for each cluster's event, read at once.
		PrefetchEvents: prefetchClusters,
		Attach:         func(st store.Store) { s.st = st },
	}
}

// prefetchClusters reads, one statement each, the versions applied and
// the usage histories of the clusters whose events evs are (Apply's reads).
// A batch with a meter's event reads the histories one by one, as
// ApplyMeter locks its cluster's: the prefetch locks its rows first, in id
// order, and a later lock out of that order could deadlock with another
// batch's (PostgreSQL would abort one).
func prefetchClusters(ctx context.Context, tx store.Tx, evs []store.TopicEvent) error {
	var ids []string
	metered := false
	for _, e := range evs {
		if e.Topic == meterDesired {
			metered = true
		} else {
			ids = append(ids, e.Event.Subject)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	if _, err := tx.IndexGetMany(ctx, ixApplied, ids); err != nil || metered {
		return err
	}
	return tx.ResourcePrefetch(ctx, resource.KindUsage, ids)
}

// Attach gives the service its store outside a host (tests, tools).
func (s *Service) Attach(st store.Store) { s.st = st }

// onEvent records what a cluster's event changes in its billable
// history.
func (s *Service) onEvent(ctx context.Context, tx store.Tx, _ string, ev event.Event) error {
	var r store.Resource
	if err := json.Unmarshal(ev.Data, &r); err != nil {
		return fmt.Errorf("billing: event %s: %w", ev.Subject, err)
	}
	switch r.Kind {
	case resource.KindLKC:
		return s.Apply(ctx, tx, r)
	case resource.KindMeter:
		return s.ApplyMeter(ctx, tx, r)
	}
	return nil
}

// Apply records cluster c's state in its billable history: a new segment
// when it went live (first PROVISIONED), changed its realized size, or
// was deleted (or restored), from the time its owner wrote that state. A
// state not newer than the one applied changes nothing.
func (s *Service) Apply(ctx context.Context, tx store.Tx, c store.Resource) error {
	// The newest version applied, kept beside the history (no event):
	// an older state, another topic's arriving late, changes nothing.
	applied, err := tx.IndexGet(ctx, ixApplied, c.ID)
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return err
	default:
		if v, err := strconv.ParseInt(applied, 10, 64); err == nil && c.Version <= v {
			return nil
		}
	}
	if err := tx.IndexPut(ctx, ixApplied, c.ID, strconv.FormatInt(c.Version, 10)); err != nil {
		return err
	}
	u, err := tx.ResourceGet(ctx, resource.KindUsage, c.ID)
	exists := err == nil
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	var spec resource.UsageSpec
	if exists {
		if spec, err = resource.Decode[resource.UsageSpec](u.Spec); err != nil {
			return err
		}
	}
	ls, err := resource.Decode[resource.LKCSpec](c.Spec)
	if err != nil {
		return err
	}
	st, err := resource.Decode[resource.LKCStatus](c.Status.Detail)
	if err != nil {
		return err
	}
	spec.Organization, spec.Environment, spec.DisplayName = c.Organization, c.Environment, ls.DisplayName
	spec.Type, spec.Cloud, spec.Region = ls.Type, ls.Cloud, ls.Region

	started := len(spec.Segments) > 0
	live := !c.Deleted() && (started || c.Status.Phase == resource.PhaseProvisioned)
	cku := 0
	if ls.Type == resource.TypeDedicated && live {
		cku = st.CKU
	}
	when := c.UpdatedAt
	if c.Deleted() {
		when = *c.DeletedAt
	}
	switch {
	case !started && !live:
		// Nothing to bill yet: not provisioned.
	case !started:
		spec.Segments = append(spec.Segments, resource.UsageSegment{From: when.UTC(), Live: true, CKU: cku})
	default:
		last := spec.Segments[len(spec.Segments)-1]
		if last.Live != live || last.CKU != cku {
			spec.Segments = append(spec.Segments, resource.UsageSegment{From: maxTime(when, last.From).UTC(), Live: live, CKU: cku})
		}
	}
	if !exists && len(spec.Segments) == 0 {
		return nil // nothing billable yet: no history to keep
	}
	if !exists {
		_, err = tx.ResourceCreate(ctx, store.CreateParams{Kind: resource.KindUsage, ID: c.ID, Organization: c.Organization,
			Environment: c.Environment, Spec: resource.Encode(spec)})
		return err
	}
	// An identical spec changes nothing and announces nothing.
	_, err = tx.ResourceUpdateSpec(ctx, store.UpdateSpecParams{Kind: resource.KindUsage, ID: c.ID, Spec: resource.Encode(spec)})
	return err
}

// ixApplied maps a cluster id to the newest version of it applied.
const ixApplied = "billing_applied"

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// ApplyMeter takes a satellite's bucket (full state) as the cluster's
// metered hour, under the cluster's organization; a bucket of a cluster
// billing does not know, or from a site the cluster is not in, is
// dropped (and said in the log).
func (s *Service) ApplyMeter(ctx context.Context, tx store.Tx, m store.Resource) error {
	spec, err := resource.Decode[resource.MeterSpec](m.Spec)
	if err != nil {
		return err
	}
	u, err := tx.ResourceGet(ctx, resource.KindUsage, spec.Cluster)
	if errors.Is(err, store.ErrNotFound) {
		s.log.WarnContext(ctx, "metered usage of a cluster billing never saw live: dropped", "cluster", spec.Cluster, "hour", spec.Hour)
		return nil
	}
	if err != nil {
		return err
	}
	us, err := resource.Decode[resource.UsageSpec](u.Spec)
	if err != nil {
		return err
	}
	if site := (resource.Site{Cloud: us.Cloud, Region: us.Region}).String(); site != spec.Site {
		s.log.WarnContext(ctx, "metered usage from a site the cluster is not in: dropped", "cluster", spec.Cluster, "site", spec.Site, "cluster_site", site)
		return nil
	}
	_, err = tx.ResourceGet(ctx, resource.KindMeteredHour, m.ID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		_, err = tx.ResourceCreate(ctx, store.CreateParams{Kind: resource.KindMeteredHour, ID: m.ID, Organization: u.Organization,
			Environment: u.Environment, Spec: resource.Encode(spec)})
	case err == nil:
		_, err = tx.ResourceUpdateSpec(ctx, store.UpdateSpecParams{Kind: resource.KindMeteredHour, ID: m.ID, Spec: resource.Encode(spec)})
	}
	return err
}
