package fleet

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
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

// page sorts the matches by id and cuts the page.
func page[T any](items []T, id func(T) string, p Page) List[T] {
	slices.SortFunc(items, func(a, b T) int { return strings.Compare(id(a), id(b)) })
	total := len(items)
	start, _ := slices.BinarySearchFunc(items, p.After, func(it T, after string) int {
		if id(it) <= after {
			return -1
		}
		return 1
	})
	if p.After == "" {
		start = 0
	}
	size := min(cmp.Or(p.Size, 100), MaxPageSize)
	out := List[T]{Data: items[start:min(start+size, len(items))], Total: total}
	if start+size < len(items) {
		out.Next = id(out.Data[len(out.Data)-1])
	}
	if out.Data == nil {
		out.Data = []T{}
	}
	return out
}

// Clusters lists the clusters f selects, across every organization.
func (s *Service) Clusters(f Filter, p Page) List[Cluster] {
	s.mu.RLock()
	var out []Cluster
	for _, c := range s.lkcs {
		if c.Deleted && !f.Deleted {
			continue
		}
		c.Version = s.versionOf(c)
		c.Stuck = s.stuck(c.Generation, c.ObservedGeneration, c.AcceptedAt)
		if match(f.Organization, c.Organization) && match(f.Site, c.Site) && match(f.SKU, c.SKU) && match(f.Phase, c.Phase) &&
			match(f.Version, c.Version) && (f.Stuck == nil || *f.Stuck == c.Stuck) {
			out = append(out, c)
		}
	}
	s.mu.RUnlock()
	return page(out, func(c Cluster) string { return c.ID }, p)
}

// sku names a PKC's kind: the SKU of its clusters for a dedicated one,
// "shared" for one that hosts Basic and Standard tenants.
func (s *Service) sku(p PKC) string {
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
	s.mu.RLock()
	var out []PKC
	for _, k := range s.pkcs {
		if k.Deleted && !f.Deleted {
			continue
		}
		k.Stuck = s.stuck(k.Generation, k.Status.ObservedGeneration, k.AcceptedAt)
		if f.Stuck != nil && *f.Stuck != k.Stuck {
			continue
		}
		if !match(f.Site, k.Site) || !match(f.SKU, s.sku(k)) || !match(f.Phase, k.Status.Phase) ||
			!match(f.Version, cmp.Or(k.Status.Version, k.Spec.Version)) {
			continue
		}
		if f.Organization != "" && !slices.ContainsFunc(k.LKCs, func(id string) bool { return s.lkcs[id].Organization == f.Organization }) {
			continue
		}
		out = append(out, k)
	}
	s.mu.RUnlock()
	return page(out, func(k PKC) string { return k.ID }, p)
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
	// Loaded says the model was rebuilt from the database since the
	// start; before, it may miss what was observed earlier.
	Loaded bool `json:"loaded"`
}

// Summarize counts the live PKCs and their clusters by site × version ×
// phase.
func (s *Service) Summarize() Summary {
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
		if s.stuck(k.Generation, k.Status.ObservedGeneration, k.AcceptedAt) {
			out.StuckPKCs++
		}
	}
	for _, c := range s.lkcs {
		if !c.Deleted {
			out.Clusters++
			if s.stuck(c.Generation, c.ObservedGeneration, c.AcceptedAt) {
				out.StuckClusters++
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

// Validate checks a filter's values that have a closed set.
func (f Filter) Validate() error {
	if f.Site != "" && !strings.Contains(f.Site, "/") {
		return fmt.Errorf("site %q: cloud/region, like aws/us-west-2", f.Site)
	}
	return nil
}
