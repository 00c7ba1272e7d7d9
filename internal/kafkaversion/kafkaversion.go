// Package kafkaversion is the catalog of the Kafka versions Mothership can
// run: which releases each data-plane driver declares, the KRaft metadata
// version each one finalizes to, and their order. The control plane offers
// and validates versions from it; each driver runs only its own.
package kafkaversion

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
)

// Drivers, as sites name them.
const (
	Embedded   = "embedded"
	Kubernetes = "kubernetes"
	Simulated  = "simulated"
)

// Default is the version new clusters get until an operator sets another:
// the newest one both real drivers run.
const Default = "4.3.0"

// Release is one Kafka version and the metadata version it finalizes to.
type Release struct {
	Version  string `json:"version"`
	Metadata string `json:"metadata_version"`
}

// The releases each driver runs, oldest first. The embedded driver's are
// real protocol ceilings (kfake capped at franz-go's kversion tables of
// the release); the Kubernetes driver's are the supported versions of
// Strimzi 1.2.0's kafka-versions.yaml. The simulated driver runs any.
var byDriver = map[string][]Release{
	Embedded: {
		{"3.9.0", "3.9"}, {"4.0.0", "4.0"}, {"4.1.0", "4.1-IV1"}, {"4.2.0", "4.2-IV1"}, {"4.3.0", "4.3-IV0"},
	},
	Kubernetes: {
		{"4.2.0", "4.2-IV1"}, {"4.2.1", "4.2-IV1"}, {"4.3.0", "4.3-IV0"}, {"4.3.1", "4.3-IV0"},
	},
}

// Entry is one version of the catalog and the drivers that run it.
type Entry struct {
	Version  string   `json:"version"`
	Metadata string   `json:"metadata_version"`
	Drivers  []string `json:"drivers"`
}

// Catalog lists every version some driver runs, oldest first.
func Catalog() []Entry {
	seen := map[string]*Entry{}
	for _, driver := range []string{Embedded, Kubernetes} {
		for _, r := range byDriver[driver] {
			e, ok := seen[r.Version]
			if !ok {
				e = &Entry{Version: r.Version, Metadata: r.Metadata}
				seen[r.Version] = e
			}
			e.Drivers = append(e.Drivers, driver)
		}
	}
	out := make([]Entry, 0, len(seen))
	for _, e := range seen {
		e.Drivers = append(e.Drivers, Simulated)
		out = append(out, *e)
	}
	slices.SortFunc(out, func(a, b Entry) int { return Compare(a.Version, b.Version) })
	return out
}

// Known reports whether some driver runs v.
func Known(v string) bool {
	_, ok := Lookup(v)
	return ok
}

// Lookup returns the release of v, from any driver.
func Lookup(v string) (Release, bool) {
	for _, rs := range byDriver {
		for _, r := range rs {
			if r.Version == v {
				return r, true
			}
		}
	}
	return Release{}, false
}

// Releases returns what driver runs, oldest first (the simulated driver:
// every known version).
func Releases(driver string) []Release {
	if driver == Simulated {
		var out []Release
		for _, e := range Catalog() {
			out = append(out, Release{Version: e.Version, Metadata: e.Metadata})
		}
		return out
	}
	return slices.Clone(byDriver[driver])
}

// Runs reports whether driver runs v.
func Runs(driver, v string) bool {
	return slices.ContainsFunc(Releases(driver), func(r Release) bool { return r.Version == v })
}

// Newest is the newest version driver runs: what a PKC with no version
// asked for gets.
func Newest(driver string) Release {
	rs := Releases(driver)
	return rs[len(rs)-1]
}

// Compare orders versions ("4.10.0" after "4.9.1"), and metadata versions
// by their release, then their feature level ("4.0" before "4.1" before
// "4.1-IV1"); -1, 0 or +1.
func Compare(a, b string) int {
	ra, iva, _ := strings.Cut(a, "-IV")
	rb, ivb, _ := strings.Cut(b, "-IV")
	pa, pb := parts(ra), parts(rb)
	for i := range max(len(pa), len(pb)) {
		var x, y int
		if i < len(pa) {
			x = pa[i]
		}
		if i < len(pb) {
			y = pb[i]
		}
		if c := cmp.Compare(x, y); c != 0 {
			return c
		}
	}
	x, _ := strconv.Atoi(iva)
	y, _ := strconv.Atoi(ivb)
	return cmp.Compare(x, y)
}

// MetadataRelease is the release a metadata version belongs to ("4.1-IV1"
// → "4.1"): a broker older than it cannot read the metadata.
func MetadataRelease(metadata string) string {
	r, _, _ := strings.Cut(metadata, "-")
	return r
}

func parts(v string) []int {
	var out []int
	for _, f := range strings.Split(v, ".") {
		n, _ := strconv.Atoi(f)
		out = append(out, n)
	}
	return out
}
