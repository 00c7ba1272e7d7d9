package fleet

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// Filter selects clusters or PKCs; an empty field selects every value.
type Filter struct {
	Organization string `json:"organization,omitempty"`
	// Site is cloud/region, as `aws/us-west-2` (case-insensitive).
	Site    string `json:"site,omitempty"`
	SKU     string `json:"sku,omitempty"`
	Phase   string `json:"phase,omitempty"`
	Version string `json:"version,omitempty"`
	// Deleted includes deleted resources still retained.
	Deleted bool `json:"deleted,omitempty"`
	// Stuck, when set, selects the stuck (true) or the others (false).
	Stuck *bool `json:"stuck,omitempty"`
	// Paused, when set, selects the paused (true) or the others (false).
	Paused *bool `json:"paused,omitempty"`
}

// Page is one page of a list: at most Size items after the id After.
type Page struct {
	Size  int    `json:"size"`
	After string `json:"after,omitempty"`
}

// MaxPageSize bounds a page.
const MaxPageSize = 1000

// List is one page of a list; Next is the id to continue after, "" at the
// end.
type List[T any] struct {
	Data  []T    `json:"data"`
	Total int    `json:"total"`
	Next  string `json:"next,omitempty"`
}

func match(want, have string) bool {
	return want == "" || strings.EqualFold(want, have)
}

// matchKeys compares a filter's lower-case values with a row's: the
// query's inner loop, so no case folding there.
func matchKeys(want, have [4]string) bool {
	for i := range want {
		if want[i] != "" && want[i] != have[i] {
			return false
		}
	}
	return true
}

// page sorts the matches by id and cuts the page; fill completes each row
// of it (the fields computed per query, for the page's rows only).
func page[T any](items []*T, id func(*T) string, p Page, fill func(*T)) List[T] {
	slices.SortFunc(items, func(a, b *T) int { return strings.Compare(id(a), id(b)) })
	start := 0
	if p.After != "" {
		start, _ = slices.BinarySearchFunc(items, p.After, func(it *T, after string) int {
			if id(it) <= after {
				return -1
			}
			return 1
		})
	}
	size := min(cmp.Or(p.Size, 100), MaxPageSize)
	end := min(start+size, len(items))
	out := List[T]{Data: make([]T, 0, end-start), Total: len(items)}
	for _, it := range items[start:end] {
		row := *it
		fill(&row)
		out.Data = append(out.Data, row)
	}
	if end < len(items) {
		out.Next = id(items[end-1])
	}
	return out
}

// Clusters lists the clusters f selects, across every organization. The
// cheap tests run first; a cluster's version and stuckness are worked out
// only where the filter asks for them, and for the page.
func (s *Service) Clusters(f Filter, p Page) List[Cluster] {
	now := s.cfg.Now()
	want := [4]string{strings.ToLower(f.Organization), strings.ToLower(f.Site), strings.ToLower(f.SKU), strings.ToLower(f.Phase)}
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []*Cluster
	for _, c := range s.lkcs {
		if (c.Deleted && !f.Deleted) || !matchKeys(want, c.keys) {
			continue
		}
		if (f.Version != "" && !match(f.Version, s.versionOf(c))) ||
			(f.Stuck != nil && *f.Stuck != s.stuck(now, c.Generation, c.ObservedGeneration, c.AcceptedAt)) ||
			(f.Paused != nil && *f.Paused != (s.pausedOf(c.ID, c.PKC) != "")) {
			continue
		}
		out = append(out, c)
	}
	return page(out, func(c *Cluster) string { return c.ID }, p, func(c *Cluster) {
		c.Version = s.versionOf(c)
		c.Stuck = s.stuck(now, c.Generation, c.ObservedGeneration, c.AcceptedAt)
		c.Paused = s.pausedOf(c.ID, c.PKC)
		switch {
		case c.Stuck && c.ownerStuck != nil:
			c.StuckLayer = c.ownerStuck.Layer // its owner's word
		case c.Stuck:
			c.StuckLayer = s.clusterLayer(c)
		}
	})
}

// sku names a PKC's kind: the SKU of its clusters for a dedicated one,
// "shared" for one that hosts Basic and Standard tenants.
func (s *Service) sku(p *PKC) string {
	if !p.Dedicated {
		return "shared"
	}
	for _, id := range p.LKCs {
		if c, ok := s.lkcs[id]; ok {
			return c.SKU
		}
	}
	return "Dedicated"
}

// PKCs lists the PKCs f selects; Organization selects those hosting one
// of its clusters.
func (s *Service) PKCs(f Filter, p Page) List[PKC] {
	now := s.cfg.Now()
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []*PKC
	for _, k := range s.pkcs {
		if (k.Deleted && !f.Deleted) || !match(f.Site, k.Site) || !match(f.Phase, k.Status.Phase) ||
			!match(f.Version, cmp.Or(k.Status.Version, k.Spec.Version)) || !match(f.SKU, s.sku(k)) {
			continue
		}
		if (f.Stuck != nil && *f.Stuck != s.stuck(now, k.Generation, k.Status.ObservedGeneration, k.AcceptedAt)) ||
			(f.Paused != nil && *f.Paused != (s.paused[k.ID] != "")) {
			continue
		}
		if f.Organization != "" && !slices.ContainsFunc(k.LKCs, func(id string) bool {
			c, ok := s.lkcs[id]
			return ok && c.Organization == f.Organization
		}) {
			continue
		}
		out = append(out, k)
	}
	return page(out, func(k *PKC) string { return k.ID }, p, func(k *PKC) {
		k.Stuck = s.stuck(now, k.Generation, k.Status.ObservedGeneration, k.AcceptedAt)
		k.Paused = s.paused[k.ID]
		switch {
		case k.Stuck && k.ownerStuck != nil:
			k.StuckLayer = k.ownerStuck.Layer // its owner's word
		case k.Stuck:
			k.StuckLayer = s.pkcLayer(k)
		}
	})
}

// Count is one cell of the summary.
type Count struct {
	Site    string `json:"site"`
	Version string `json:"version"`
	Phase   string `json:"phase"`
	PKCs    int    `json:"pkcs"`
	LKCs    int    `json:"lkcs"`
}

// Summary counts the live fleet.
type Summary struct {
	PKCs     int     `json:"pkcs"`
	Clusters int     `json:"clusters"`
	Counts   []Count `json:"counts"`
	// StuckPKCs and StuckClusters count the live resources stuck.
	StuckPKCs     int `json:"stuck_pkcs"`
	StuckClusters int `json:"stuck_clusters"`
	// PausedPKCs and PausedClusters count what operators paused.
	PausedPKCs     int `json:"paused_pkcs"`
	PausedClusters int `json:"paused_clusters"`
	// Loaded says the model was rebuilt from the database since the
	// start; before, it may miss what was observed earlier.
	Loaded bool `json:"loaded"`
}

// Summarize counts the live PKCs and their clusters by site × version ×
// phase.
func (s *Service) Summarize() Summary {
	now := s.cfg.Now()
	s.mu.RLock()
	defer s.mu.RUnlock()
	cells := map[[3]string]*Count{}
	out := Summary{Loaded: s.loaded.Load()}
	for _, k := range s.pkcs {
		if k.Deleted {
			continue
		}
		key := [3]string{k.Site, cmp.Or(k.Status.Version, k.Spec.Version), k.Status.Phase}
		c := cells[key]
		if c == nil {
			c = &Count{Site: key[0], Version: key[1], Phase: key[2]}
			cells[key] = c
		}
		c.PKCs++
		c.LKCs += len(k.LKCs)
		out.PKCs++
		if s.stuck(now, k.Generation, k.Status.ObservedGeneration, k.AcceptedAt) {
			out.StuckPKCs++
		}
		if s.paused[k.ID] != "" {
			out.PausedPKCs++
		}
	}
	for _, c := range s.lkcs {
		if !c.Deleted {
			out.Clusters++
			if s.stuck(now, c.Generation, c.ObservedGeneration, c.AcceptedAt) {
				out.StuckClusters++
			}
			if s.pausedOf(c.ID, c.PKC) != "" {
				out.PausedClusters++
			}
		}
	}
	for _, c := range cells {
		out.Counts = append(out.Counts, *c)
	}
	slices.SortFunc(out.Counts, func(a, b Count) int {
		return cmp.Or(strings.Compare(a.Site, b.Site), strings.Compare(a.Version, b.Version), strings.Compare(a.Phase, b.Phase))
	})
	if out.Counts == nil {
		out.Counts = []Count{}
	}
	return out
}

// Layers a stuck resource names: the lowest one that has not caught up.
const (
	LayerPKC       = "pkc"
	LayerCapacity  = "capacity"
	LayerSatellite = "satellite"
	LayerPaused    = "paused"
)

// pkcLayer is the lowest layer a PKC waits for, from the reason its owner
// gives; the caller holds the lock.
func (s *Service) pkcLayer(p *PKC) string {
	switch r := p.Status.Reason; {
	case s.paused[p.ID] != "" || r == "PAUSED":
		return LayerPaused
	case r == "WAITING_FOR_CAPACITY":
		return LayerCapacity
	case r == "WAITING_FOR_SATELLITE", p.Status.Phase == "FAILED":
		return LayerSatellite
	}
	return LayerPKC
}

// clusterLayer is the lowest layer a cluster waits for: its PKC's, while
// the PKC has not caught up; else pkc, which has not yet carried the
// cluster's change. The caller holds the lock.
func (s *Service) clusterLayer(c *Cluster) string {
	if s.pausedOf(c.ID, c.PKC) != "" {
		return LayerPaused
	}
	if p, ok := s.pkcs[c.PKC]; ok && p.Status.ObservedGeneration < p.Generation {
		return s.pkcLayer(p)
	}
	return LayerPKC
}

// stuckByLayer is the gauge of stuck resources by kind and the layer
// they wait for, counted at each scrape.
type stuckByLayer struct{ s *Service }

var stuckByLayerDesc = prometheus.NewDesc("mothership_fleet_stuck_resources_by_layer",
	"Resources whose accepted generation has stayed unobserved longer than the limit, by kind and the lowest layer that has not caught up.",
	[]string{"kind", "layer"}, nil)

// Describe implements prometheus.Collector.
func (g stuckByLayer) Describe(ch chan<- *prometheus.Desc) { ch <- stuckByLayerDesc }

// Collect implements prometheus.Collector: every (kind, layer) pair, so
// that a layer with none stuck reads 0 rather than nothing.
func (g stuckByLayer) Collect(ch chan<- prometheus.Metric) {
	s := g.s
	now := s.cfg.Now()
	counts := map[[2]string]int{}
	s.mu.RLock()
	for _, p := range s.pkcs {
		if !p.Deleted && s.stuck(now, p.Generation, p.Status.ObservedGeneration, p.AcceptedAt) {
			counts[[2]string{"pkc", s.pkcLayer(p)}]++
		}
	}
	for _, c := range s.lkcs {
		if !c.Deleted && s.stuck(now, c.Generation, c.ObservedGeneration, c.AcceptedAt) {
			counts[[2]string{"lkc", s.clusterLayer(c)}]++
		}
	}
	s.mu.RUnlock()
	for _, kind := range []string{"lkc", "pkc"} {
		for _, layer := range []string{LayerPKC, LayerCapacity, LayerSatellite, LayerPaused} {
			ch <- prometheus.MustNewConstMetric(stuckByLayerDesc, prometheus.GaugeValue, float64(counts[[2]string{kind, layer}]), kind, layer)
		}
	}
}

// pausedOf says who paused a cluster, itself or its PKC; the caller
// holds the lock.
func (s *Service) pausedOf(lkc, pkc string) string {
	return cmp.Or(s.paused[lkc], s.paused[pkc])
}

// Validate checks a filter's values that have a closed set.
func (f Filter) Validate() error {
	if f.Site != "" && !strings.Contains(f.Site, "/") {
		return fmt.Errorf("site %q: cloud/region, like aws/us-west-2", f.Site)
	}
	return nil
}
