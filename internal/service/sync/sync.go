// Package sync is the delivery service (layer 0): for every site it owns
// the desired configuration bundle its satellite must realize, built from
// the PKC events it sees, and the status the satellite reported back.
// Satellites dial in over HTTP (Handler) with their own credentials and can
// read only their own site's bundle.
package sync

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	gosync "sync"
	"time"

	"github.com/mothership-dev/mothership/internal/api"
	"github.com/mothership-dev/mothership/internal/resource"
	"github.com/mothership-dev/mothership/internal/runtime/event"
	"github.com/mothership-dev/mothership/internal/runtime/host"
	"github.com/mothership-dev/mothership/internal/runtime/reactor"
	"github.com/mothership-dev/mothership/internal/runtime/store"
)

// Name and Layer place the service in the layer cake.
const (
	Name  = "sync"
	Layer = 0
)

var pkcDesired = event.Topic(resource.KindPKC, event.Desired)

// Satellite is a site's agent as sync knows it: the site and the SHA-256 of
// its token.
type Satellite struct {
	Site      resource.Site
	TokenHash string
}

// HashToken returns the hash sync keeps of a satellite token.
func HashToken(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

// Config configures the service.
type Config struct {
	// Satellites are the sites served and their credentials.
	Satellites []Satellite
	Logger     *slog.Logger
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
}

// New returns the service.
func New(cfg Config) *Service {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Service{cfg: cfg, log: cfg.Logger.With("service", Name), changed: map[string]chan struct{}{}}
}

// Host declares the service.
func (s *Service) Host() host.Service {
	return host.Service{
		Name:      Name,
		Layer:     Layer,
		Owns:      []string{resource.KindDelivery},
		ReactsTo:  []string{pkcDesired},
		Reconcile: s.reconcile,
		Attach:    func(st store.Store) { s.st = st },
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

// SiteServed reports whether a satellite serves site.
func (s *Service) SiteServed(_ context.Context, site resource.Site) (bool, error) {
	for _, sat := range s.cfg.Satellites {
		if sat.Site == site {
			return true, nil
		}
	}
	return false, nil
}

// siteOf authenticates a satellite token.
func (s *Service) siteOf(token string) (resource.Site, bool) {
	got := HashToken(token)
	for _, sat := range s.cfg.Satellites {
		if subtle.ConstantTimeCompare([]byte(got), []byte(sat.TokenHash)) == 1 {
			return sat.Site, true
		}
	}
	return resource.Site{}, false
}

// reconcile puts a PKC's newest desired state into its site's bundle, or
// takes it out once deleted.
func (s *Service) reconcile(ctx context.Context, tx store.Tx, key string) error {
	pkc, err := store.ObservedResource(ctx, tx, pkcDesired, key)
	if err != nil {
		return err
	}
	ps, err := resource.Decode[resource.PKCSpec](pkc.Spec)
	if err != nil {
		return err
	}
	site := ps.Site()
	d, spec, err := s.delivery(ctx, tx, site)
	if err != nil {
		return err
	}
	if pkc.Deleted() {
		delete(spec.Resources, pkc.ID)
	} else {
		spec.Resources[pkc.ID] = resource.BundleItem{Kind: resource.KindPKC, Generation: pkc.Generation, Spec: pkc.Spec}
	}
	_, err = tx.ResourceUpdateSpec(ctx, store.UpdateSpecParams{Kind: resource.KindDelivery, ID: d.ID, Spec: resource.Encode(spec)})
	return err
}

// delivery returns the site's delivery, created empty if it is new.
func (s *Service) delivery(ctx context.Context, tx store.Tx, site resource.Site) (store.Resource, resource.DeliverySpec, error) {
	d, err := tx.ResourceGet(ctx, resource.KindDelivery, site.ID())
	if errors.Is(err, store.ErrNotFound) {
		d, err = tx.ResourceCreate(ctx, store.CreateParams{Kind: resource.KindDelivery, ID: site.ID(),
			Spec: resource.Encode(resource.DeliverySpec{Site: site.String(), Resources: map[string]resource.BundleItem{}})})
	}
	if err != nil {
		return d, resource.DeliverySpec{}, fmt.Errorf("delivery %s: %w", site, err)
	}
	spec, err := resource.Decode[resource.DeliverySpec](d.Spec)
	if spec.Resources == nil {
		spec.Resources = map[string]resource.BundleItem{}
	}
	return d, spec, err
}

// Bundle returns the site's bundle once its version is above after, or,
// when wait ends first, ok false and only the current version (the bundle
// is not decoded for a satellite that holds it already).
func (s *Service) Bundle(ctx context.Context, site resource.Site, after int64, wait time.Duration) (resource.Bundle, bool, error) {
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		changed := s.wait(site.ID())
		var b resource.Bundle
		err := s.st.View(ctx, func(ctx context.Context, tx store.Tx) error {
			d, err := tx.ResourceGet(ctx, resource.KindDelivery, site.ID())
			if errors.Is(err, store.ErrNotFound) {
				b = resource.Bundle{Site: site.String(), Resources: map[string]resource.BundleItem{}}
				return nil
			}
			if err != nil {
				return err
			}
			b = resource.Bundle{Site: site.String(), Version: d.Generation}
			if d.Generation <= after {
				return nil // nothing newer: no need to decode it
			}
			spec, err := resource.Decode[resource.DeliverySpec](d.Spec)
			b.Resources = spec.Resources
			return err
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

// Report records what a site's satellite realized, as the delivery's
// status.
func (s *Service) Report(ctx context.Context, site resource.Site, rep resource.Report) error {
	if rep.Version < 0 {
		return api.Invalid("/version", "version is a bundle version, at least 0")
	}
	err := s.st.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		d, _, err := s.delivery(ctx, tx, site)
		if err != nil {
			return err
		}
		if rep.Version > d.Generation {
			// A satellite ahead of sync (sync restored from an older
			// backup): its report describes a bundle sync never sent.
			return api.Errorf(http.StatusConflict, api.CodeConflict,
				"the report is for bundle version %d, but the newest is %d; fetch the bundle again", rep.Version, d.Generation)
		}
		st := store.Status{ObservedGeneration: rep.Version, Phase: resource.PhaseProvisioned,
			Detail: resource.Encode(resource.DeliveryStatus{Version: rep.Version, Resources: rep.Resources})}
		for _, r := range rep.Resources {
			if r.Phase != resource.PhaseProvisioned {
				st.Phase, st.Reason, st.Message = resource.PhaseProvisioning, r.Reason, r.Message
			}
		}
		if rep.Version != d.Generation {
			st.Phase = resource.PhaseProvisioning
		}
		_, err = tx.ResourceSetStatus(ctx, resource.KindDelivery, d.ID, st)
		return err
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
