// Package sync is the delivery service (layer 0): for every PKC it owns
// the delivery its site's satellite must realize, built from the PKC
// events it sees, and as its status what the satellite reported back. A
// satellite reads its site's deliveries as one bundle, versioned by the
// site.
// Satellites dial in over HTTP (Handler) with their own credentials and can
// read only their own site's bundle.
package sync

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strconv"
	gosync "sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	json "github.com/segmentio/encoding/json"

	"github.com/mothership-dev/mothership/internal/api"
	"github.com/mothership-dev/mothership/internal/resource"
	"github.com/mothership-dev/mothership/internal/runtime/event"
	"github.com/mothership-dev/mothership/internal/runtime/host"
	"github.com/mothership-dev/mothership/internal/runtime/reactor"
	"github.com/mothership-dev/mothership/internal/runtime/store"
	"github.com/mothership-dev/mothership/internal/runtime/trace"
)

// Name and Layer place the service in the layer cake.
const (
	Name  = "sync"
	Layer = 0
)

var pkcDesired = event.Topic(resource.KindPKC, event.Desired)

// Satellite is a site the deployment's setup enrolled: the site, the
// SHA-256 of its satellite's token and the public half of its key.
type Satellite struct {
	Site      resource.Site
	TokenHash string
	PublicKey []byte
}

// HashToken returns the hash sync keeps of a satellite token.
func HashToken(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

// Config configures the service.
type Config struct {
	// Satellites are the sites the deployment's setup enrolled, made
	// sync's site resources at start; operators add others at run time
	// (AddSite).
	Satellites []Satellite
	Logger     *slog.Logger
	// Registerer, if set, receives the satellites' link metrics
	// (metrics.go).
	Registerer prometheus.Registerer
}

// Service is the sync service.
type Service struct {
	cfg Config
	log *slog.Logger
	st  store.Store

	mu gosync.Mutex
	// changed has, per site id, a channel closed and replaced when a
	// reaction touching the site's bundle commits: a change of one site
	// wakes only that site's satellite.
	changed map[string]chan struct{}
	// links is each site's satellite link, by site name (sites.go).
	links map[string]*linkState
}

// New returns the service.
func New(cfg Config) *Service {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Service{cfg: cfg, log: cfg.Logger.With("service", Name), changed: map[string]chan struct{}{}}
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(linkCollector{s}); err != nil {
			s.log.Warn("sync: link metrics not registered", "err", err)
		}
	}
	return s
}

// Host declares the service.
func (s *Service) Host() host.Service {
	return host.Service{
		Name:      Name,
		Layer:     Layer,
		Owns:      []string{resource.KindDelivery, resource.KindSite, resource.KindMeter},
		ReactsTo:  []string{pkcDesired},
		Reconcile: s.reconcile,
		Prefetch:  host.PrefetchByKey(resource.KindDelivery), // a PKC's delivery has its id
		Attach:    func(st store.Store) { s.st = st },
		Init:      s.seedSites,
		Stuck:     &host.StuckWatch{Kinds: []string{resource.KindDelivery}, Layer: s.stuckLayer},
		Reactor:   reactor.Config{AfterCommit: s.notify},
	}
}

// notify wakes the satellites of the sites whose PKCs the committed
// events were about.
func (s *Service) notify(applied []event.Event) {
	sites := map[string]bool{}
	for _, ev := range applied {
		var r store.Resource
		if json.Unmarshal(ev.Data, &r) != nil {
			continue
		}
		if ps, err := resource.Decode[resource.PKCSpec](r.Spec); err == nil {
			sites[ps.Site().ID()] = true
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for site := range sites {
		if ch, ok := s.changed[site]; ok {
			close(ch)
			delete(s.changed, site)
		}
	}
}

// wait returns a channel closed when site's bundle may have changed.
func (s *Service) wait(site string) <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch, ok := s.changed[site]
	if !ok {
		ch = make(chan struct{})
		s.changed[site] = ch
	}
	return ch
}

// The service's private indexes (see store.Tx): the live deliveries of a
// site, a site's version, and what changed at which version.
const (
	// ixSite maps site id + "/" + PKC id to the PKC id.
	ixSite = "sync_site"
	// ixVersion maps a site id to its version: the sum of the
	// generations of its deliveries, deleted ones included, so that it
	// grows with every change of any of them and never goes back.
	ixVersion = "sync_site_version"
	// ixChange maps site id + "/" + the version (19 digits) at which a
	// delivery last changed to the PKC id, one entry per delivery (its
	// newest change; ixChanged finds it), so that the deliveries changed
	// since a version are a range of keys.
	ixChange  = "sync_site_change"
	ixChanged = "sync_delivery_change"
	// ixLogSince maps a site id to the version from which ixChange holds
	// every change of the site (the one before its first logged change):
	// a satellite holding an older bundle is sent it whole.
	ixLogSince = "sync_site_log_since"
)

// reconcile puts a PKC's newest desired state into its delivery (created
// when new), or deletes the delivery once the PKC is deleted (kept in the
// bundle while the PKC is retained, restored with it, gone once it is
// purged); the site's version grows by what the delivery's generation did.
func (s *Service) reconcile(ctx context.Context, tx store.Tx, key string) error {
	ev, err := tx.ObservedGet(ctx, pkcDesired, key)
	if err != nil {
		return err
	}
	var pkc store.Resource
	if err := json.Unmarshal(ev.Data, &pkc); err != nil {
		return fmt.Errorf("sync: observed PKC %s: %w", key, err)
	}
	ps, err := resource.Decode[resource.PKCSpec](pkc.Spec)
	if err != nil {
		return err
	}
	site := ps.Site()
	d, err := tx.ResourceGetAny(ctx, resource.KindDelivery, pkc.ID)
	exists := err == nil
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	spec := resource.Encode(resource.DeliverySpec{Site: site.String(),
		Item: resource.BundleItem{Kind: resource.KindPKC, Generation: pkc.Generation, Spec: pkc.Spec,
			// The event's own trace, not this reaction's span: the same
			// PKC generation always makes the same delivery.
			TraceParent: ev.TraceParent}})
	before := d.Generation
	switch {
	case pkc.Purged:
		// Its retention ended: it leaves the bundle, and the satellite
		// deletes its data.
		if !exists {
			return nil
		}
		if !d.Deleted() {
			if _, err := tx.ResourceDelete(ctx, resource.KindDelivery, pkc.ID); err != nil {
				return err
			}
		}
		if d, err = tx.ResourceEndRetention(ctx, resource.KindDelivery, pkc.ID); err != nil {
			return err
		}
		err = tx.IndexDelete(ctx, ixSite, site.ID()+"/"+pkc.ID)
	case pkc.Retained():
		// Deleted but restorable: it stays in the bundle, marked, and
		// the satellite stops serving it and keeps its data.
		if !exists || d.Deleted() {
			return nil
		}
		d, err = tx.ResourceDeleteRetained(ctx, resource.KindDelivery, pkc.ID, *pkc.PurgeAt)
	case pkc.Deleted():
		if !exists || d.Deleted() {
			return nil
		}
		if d, err = tx.ResourceDelete(ctx, resource.KindDelivery, pkc.ID); err != nil {
			return err
		}
		err = tx.IndexDelete(ctx, ixSite, site.ID()+"/"+pkc.ID)
	case !exists:
		if d, err = tx.ResourceCreate(ctx, store.CreateParams{Kind: resource.KindDelivery, ID: pkc.ID, Spec: spec}); err != nil {
			return err
		}
		err = tx.IndexPut(ctx, ixSite, site.ID()+"/"+pkc.ID, pkc.ID)
	case d.Deleted() && !d.Retained():
		return reactor.Terminal(fmt.Errorf("sync: PKC %s is live again, but its delivery was deleted without a retention", pkc.ID))
	case d.Deleted():
		// Restored: the satellite brings it back from the data it kept.
		if _, err = tx.ResourceRestore(ctx, resource.KindDelivery, pkc.ID); err != nil {
			return err
		}
		d, err = tx.ResourceUpdateSpec(ctx, store.UpdateSpecParams{Kind: resource.KindDelivery, ID: pkc.ID, Spec: spec})
	default:
		d, err = tx.ResourceUpdateSpec(ctx, store.UpdateSpecParams{Kind: resource.KindDelivery, ID: pkc.ID, Spec: spec})
	}
	if err != nil {
		return fmt.Errorf("sync: delivery %s: %w", pkc.ID, err)
	}
	if grew := d.Generation - before; grew > 0 {
		// Added, not read and written: reactor workers reconcile
		// deliveries of one site concurrently, and on PostgreSQL a
		// read-then-write loses one of two updates (the version would go
		// back, and a satellite miss what it announced).
		base, err := siteVersion(ctx, tx, site)
		if err != nil {
			return err
		}
		version, err := tx.IndexAdd(ctx, ixVersion, site.ID(), grew, base)
		if err != nil {
			return err
		}
		return logChange(ctx, tx, site, pkc.ID, version, version-grew)
	}
	return nil
}

// changeKey is the ixChange key of a site's version.
func changeKey(site resource.Site, version int64) string {
	return fmt.Sprintf("%s/%019d", site.ID(), version)
}

// logChange notes that delivery id changed at the site's version (the
// site was at before until then), replacing the entry of its change
// before. It runs after the version's IndexAdd, which holds the site's
// version until the transaction ends: versions are logged in the order
// they commit, so a reader that sees a version sees every change below it.
func logChange(ctx context.Context, tx store.Tx, site resource.Site, id string, version, before int64) error {
	old, err := tx.IndexGet(ctx, ixChanged, id)
	switch {
	case err == nil:
		// Logged before, so the site's log has begun.
		if err := tx.IndexDelete(ctx, ixChange, old); err != nil {
			return err
		}
	case !errors.Is(err, store.ErrNotFound):
		return err
	default:
		// The delivery's first logged change: the site's log may begin
		// here, and changes up to before are then not in it.
		if _, err := tx.IndexGet(ctx, ixLogSince, site.ID()); errors.Is(err, store.ErrNotFound) {
			if err := tx.IndexPut(ctx, ixLogSince, site.ID(), strconv.FormatInt(before, 10)); err != nil {
				return err
			}
		} else if err != nil {
			return err
		}
	}
	key := changeKey(site, version)
	if err := tx.IndexPut(ctx, ixChange, key, id); err != nil {
		return err
	}
	return tx.IndexPut(ctx, ixChanged, id, key)
}

// changedSince returns the PKCs whose deliveries changed at the site
// after version after, split into those the site's bundle holds and those
// that left it, and ok false when the log does not reach back to after
// (the bundle must then be sent whole).
func changedSince(ctx context.Context, tx store.Tx, site resource.Site, after int64) (held, removed []string, ok bool, err error) {
	since, err := tx.IndexGet(ctx, ixLogSince, site.ID())
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, false, nil
	}
	if err != nil {
		return nil, nil, false, err
	}
	if n, err := strconv.ParseInt(since, 10, 64); err != nil || after < n {
		return nil, nil, false, nil
	}
	for from := changeKey(site, after); ; {
		page, err := tx.IndexList(ctx, store.IndexListParams{Index: ixChange, Prefix: site.ID() + "/", AfterKey: from, Limit: 500})
		if err != nil {
			return nil, nil, false, err
		}
		// Which of them the bundle still holds, in one read.
		keys := make([]string, len(page))
		for i, e := range page {
			keys[i] = site.ID() + "/" + e.Value
		}
		live, err := tx.IndexGetMany(ctx, ixSite, keys)
		if err != nil {
			return nil, nil, false, err
		}
		for i, e := range page {
			if _, ok := live[keys[i]]; ok {
				held = append(held, e.Value)
			} else {
				removed = append(removed, e.Value)
			}
		}
		if len(page) < 500 {
			return held, removed, true, nil
		}
		from = page[len(page)-1].Key
	}
}

// siteVersion is the site's version (see ixVersion). A site whose
// satellite was served by one delivery per site (before deliveries were
// per PKC) starts from that delivery's generation, so that its version
// never goes back.
func siteVersion(ctx context.Context, tx store.Tx, site resource.Site) (int64, error) {
	v, err := tx.IndexGet(ctx, ixVersion, site.ID())
	if errors.Is(err, store.ErrNotFound) {
		legacy, err := tx.ResourceGetAny(ctx, resource.KindDelivery, site.ID())
		if errors.Is(err, store.ErrNotFound) {
			return 0, nil
		}
		return legacy.Generation, err
	}
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("sync: site %s: version %q: %w", site, v, err)
	}
	return n, nil
}

// reported records what the satellite of site realized of one delivery.
// A resource that is not a live delivery of that site (deleted since, or
// never sent there) is ignored.
func (s *Service) reported(ctx context.Context, tx store.Tx, site resource.Site, id string, r resource.Realized) error {
	d, err := tx.ResourceGet(ctx, resource.KindDelivery, id)
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrDeleted) {
		return nil
	}
	if err != nil {
		return err
	}
	detail := resource.Encode(resource.DeliveryStatus{Realized: r})
	if bytes.Equal(detail, d.Status.Detail) {
		return nil // reported before: nothing to read or write
	}
	spec, err := resource.Decode[resource.DeliverySpec](d.Spec)
	if err != nil {
		return err
	}
	if spec.Site != site.String() {
		return nil
	}
	st := store.Status{ObservedGeneration: d.Status.ObservedGeneration, Phase: resource.PhaseProvisioning,
		Reason: r.Reason, Message: r.Message, Detail: detail}
	if r.Generation >= spec.Item.Generation {
		// The satellite's report of this generation comes back up in
		// its change's trace.
		ctx = trace.Continue(ctx, spec.Item.TraceParent)
		st.ObservedGeneration = d.Generation
		if r.Phase == resource.PhaseProvisioned {
			st.Phase = resource.PhaseProvisioned
		}
	}
	_, err = tx.ResourceSetStatus(ctx, resource.KindDelivery, id, st)
	return err
}

// Bundle returns the site's bundle once its version is above after, or,
// when wait ends first, ok false and only the current version (the bundle
// is not decoded for a satellite that holds it already). With deltas (the
// satellite holds bundle after whole and merges), it is only what changed
// since after (Bundle.Delta) whenever the change log reaches back to it.
func (s *Service) Bundle(ctx context.Context, site resource.Site, after int64, wait time.Duration, deltas bool) (resource.Bundle, bool, error) {
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		changed := s.wait(site.ID())
		b := resource.Bundle{Site: site.String(), Resources: map[string]resource.BundleItem{}}
		err := s.st.View(ctx, func(ctx context.Context, tx store.Tx) error {
			var err error
			if b.Version, err = siteVersion(ctx, tx, site); err != nil || b.Version <= after {
				return err // nothing newer: no need to read it
			}
			var ids []string
			if deltas && after > 0 {
				if ids, b.Removed, b.Delta, err = changedSince(ctx, tx, site, after); err != nil {
					return err
				}
			}
			if !b.Delta {
				entries, err := store.IndexEntries(ctx, tx, ixSite, site.ID()+"/")
				if err != nil {
					return err
				}
				ids = make([]string, len(entries))
				for i, e := range entries {
					ids[i] = e.Value
				}
			}
			// The deliveries in one statement, not one each.
			if err := tx.ResourcePrefetch(ctx, resource.KindDelivery, ids); err != nil {
				return err
			}
			for _, id := range ids {
				d, err := tx.ResourceGetAny(ctx, resource.KindDelivery, id)
				if err != nil {
					return fmt.Errorf("delivery %s: %w", id, err)
				}
				spec, err := resource.Decode[resource.DeliverySpec](d.Spec)
				if err != nil {
					return err
				}
				if d.Retained() {
					spec.Item.RetainedUntil = d.PurgeAt
				}
				b.Resources[id] = spec.Item
			}
			return nil
		})
		if err != nil {
			return b, false, fmt.Errorf("sync: bundle %s: %w", site, err)
		}
		if b.Version > after {
			return b, true, nil
		}
		select {
		case <-ctx.Done():
			return b, false, ctx.Err()
		case <-timer.C:
			return b, false, nil
		case <-changed:
		}
	}
}

// Report records what a site's satellite realized, each PKC's as the
// status of its delivery: only the deliveries whose report changed are
// written, so a report that moves one PKC announces that one alone.
func (s *Service) Report(ctx context.Context, site resource.Site, rep resource.Report) error {
	if rep.Version < 0 {
		return api.Invalid("/version", "version is a bundle version, at least 0")
	}
	err := s.st.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		version, err := siteVersion(ctx, tx, site)
		if err != nil {
			return err
		}
		if rep.Version > version {
			// A satellite ahead of sync (sync restored from an older
			// backup): its report describes a bundle sync never sent.
			return api.Errorf(http.StatusConflict, api.CodeConflict,
				"the report is for bundle version %d, but the newest is %d; fetch the bundle again", rep.Version, version)
		}
		ids := slices.Sorted(maps.Keys(rep.Resources))
		// A report names what changed since the satellite's last one
		// (every PKC of its site now and then): their deliveries are
		// read in one statement, not one each.
		if err := tx.ResourcePrefetch(ctx, resource.KindDelivery, ids); err != nil {
			return err
		}
		for _, id := range ids {
			if err := s.reported(ctx, tx, site, id, rep.Resources[id]); err != nil {
				return err
			}
		}
		return nil
	})
	var apiErr *api.Error
	if errors.As(err, &apiErr) {
		return err
	}
	if err != nil {
		return fmt.Errorf("sync: report %s: %w", site, err)
	}
	return nil
}
