package controlplane

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/mothership-dev/mothership/internal/resource"
	"github.com/mothership-dev/mothership/internal/runtime/host"
)

// StuckLimits are how long a resource may wait for a change without
// progress before its owner marks it STUCK, by kind; the "" entry is the
// limit of every other kind (default host.DefaultStuckAfter).
type StuckLimits map[string]time.Duration

// ParseStuckLimits reads "15m" (every kind), "lkc=30m,pkc=20m" (those
// kinds), or both ("10m,lkc=30m").
func ParseStuckLimits(v string) (StuckLimits, error) {
	out := StuckLimits{}
	for item := range strings.SplitSeq(v, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		kind, d, ok := strings.Cut(item, "=")
		if !ok {
			kind, d = "", item
		}
		if kind != "" && !slices.Contains(resource.Kinds, kind) {
			return nil, fmt.Errorf("stuck limit %q: no kind %q (lkc, pkc, capacity, network, delivery)", item, kind)
		}
		limit, err := time.ParseDuration(d)
		if err != nil || limit <= 0 {
			return nil, fmt.Errorf("stuck limit %q: want a positive duration such as 15m", item)
		}
		out[kind] = limit
	}
	return out, nil
}

// For returns the limit of kind.
func (l StuckLimits) For(kind string) time.Duration {
	if d, ok := l[kind]; ok {
		return d
	}
	if d, ok := l[""]; ok {
		return d
	}
	return host.DefaultStuckAfter
}

// apply sets the limits on the service's stuck watch, if it has one.
func (l StuckLimits) apply(svc *host.Service) {
	if svc.Stuck == nil || len(svc.Stuck.Kinds) == 0 {
		return
	}
	w := *svc.Stuck
	w.After = l.For(w.Kinds[0])
	svc.Stuck = &w
}
