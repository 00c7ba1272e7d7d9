package kafkalisten

import (
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"sync"
	"time"
)

// UsagePath is where a kafka-proxy serves its ProxyUsage, on its clients'
// addresses, to the brokers' superuser only.
const UsagePath = "/mothership/v1/proxy-usage"

// ProxyUsage is what a door carried per tenant since it started:
// cumulative, so that a reader that missed a read loses nothing, and
// Started tells a restart (the counts began again).
type ProxyUsage struct {
	Started time.Time              `json:"started"`
	Tenants map[string]TenantBytes `json:"tenants"`
}

// TenantBytes are the bytes a tenant's clients sent (In) and received
// (Out).
type TenantBytes struct {
	In  int64 `json:"in"`
	Out int64 `json:"out"`
}

// UsageCounter counts a door's ProxyUsage; Add is a FrontDoorConfig.Meter.
type UsageCounter struct {
	mu sync.Mutex
	u  ProxyUsage
}

// NewUsageCounter starts counting at started.
func NewUsageCounter(started time.Time) *UsageCounter {
	return &UsageCounter{u: ProxyUsage{Started: started.UTC(), Tenants: map[string]TenantBytes{}}}
}

// Add counts bytes of tenant.
func (c *UsageCounter) Add(tenant string, in, out int64) {
	c.mu.Lock()
	b := c.u.Tenants[tenant]
	b.In += in
	b.Out += out
	c.u.Tenants[tenant] = b
	c.mu.Unlock()
}

// Snapshot returns the counts so far.
func (c *UsageCounter) Snapshot() ProxyUsage {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := ProxyUsage{Started: c.u.Started, Tenants: make(map[string]TenantBytes, len(c.u.Tenants))}
	for k, v := range c.u.Tenants {
		out.Tenants[k] = v
	}
	return out
}

// Handler serves the snapshot at UsagePath to user with password (HTTP
// basic authentication), and everything else to next.
func (c *UsageCounter) Handler(user, password string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != UsagePath {
			next.ServeHTTP(w, r)
			return
		}
		u, p, ok := r.BasicAuth()
		if !ok || user == "" || subtle.ConstantTimeCompare([]byte(u), []byte(user)) != 1 || subtle.ConstantTimeCompare([]byte(p), []byte(password)) != 1 {
			w.Header().Set("WWW-Authenticate", `Basic realm="kafka-proxy"`)
			http.Error(w, "the proxy's usage is the satellite's to read", http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(c.Snapshot())
	})
}

// UsageSince is what a door carried between two snapshots of it: the
// bytes counted since prev, per tenant, or all of now's when the door
// restarted meanwhile (its counts began again).
func UsageSince(prev, now ProxyUsage) map[string]TenantBytes {
	out := map[string]TenantBytes{}
	restarted := !prev.Started.Equal(now.Started)
	for t, b := range now.Tenants {
		before := prev.Tenants[t]
		if restarted || b.In < before.In || b.Out < before.Out {
			before = TenantBytes{}
		}
		if d := (TenantBytes{In: b.In - before.In, Out: b.Out - before.Out}); d.In > 0 || d.Out > 0 {
			out[t] = d
		}
	}
	return out
}
