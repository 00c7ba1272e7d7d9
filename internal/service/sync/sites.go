package sync

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/mothership-dev/mothership/internal/resource"
	"github.com/mothership-dev/mothership/internal/runtime/store"
)

// SiteLink is a site as the operators see it: its satellite's link to
// sync, and how far the satellite is behind the site's bundle.
type SiteLink struct {
	Site string `json:"site"`
	// Connected says a satellite of the site holds a bundle stream open
	// now; LastSeen is when one last streamed or reported (zero: not
	// since sync started).
	Connected bool       `json:"connected"`
	LastSeen  *time.Time `json:"last_seen,omitempty"`
	// Bundle is the site's bundle version, Acknowledged the newest one the
	// satellite said it holds (its stream's start or its report), and
	// Behind the difference.
	Bundle       int64 `json:"bundle"`
	Acknowledged int64 `json:"acknowledged"`
	Behind       int64 `json:"behind"`
}

// linkState is what sync remembers of a site's satellite link, in memory:
// a restarted sync learns it again at the satellite's next stream or
// report.
type linkState struct {
	streams      int
	lastSeen     time.Time
	acknowledged int64
}

// seen records that site's satellite holds bundle version acked (a
// stream's start, a sent bundle, a report); streams moves the count of
// open streams.
func (s *Service) seen(site resource.Site, acked int64, streams int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.links == nil {
		s.links = map[string]*linkState{}
	}
	l := s.links[site.String()]
	if l == nil {
		l = &linkState{}
		s.links[site.String()] = l
	}
	l.streams += streams
	l.lastSeen = time.Now()
	l.acknowledged = max(l.acknowledged, acked)
}

// SiteLinks lists every enrolled site with its satellite's link.
func (s *Service) SiteLinks(ctx context.Context) ([]SiteLink, error) {
	sites, err := s.SitesServed(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]SiteLink, 0, len(sites))
	err = s.st.View(ctx, func(ctx context.Context, tx store.Tx) error {
		for _, site := range sites {
			v, err := siteVersion(ctx, tx, site)
			if err != nil {
				return fmt.Errorf("site %s: %w", site, err)
			}
			link := SiteLink{Site: site.String(), Bundle: v}
			s.mu.Lock()
			if l := s.links[site.String()]; l != nil {
				seen := l.lastSeen
				link.Connected, link.LastSeen, link.Acknowledged = l.streams > 0, &seen, l.acknowledged
			}
			s.mu.Unlock()
			link.Behind = max(link.Bundle-link.Acknowledged, 0)
			out = append(out, link)
		}
		return nil
	})
	slices.SortFunc(out, func(a, b SiteLink) int { return strings.Compare(a.Site, b.Site) })
	return out, err
}
