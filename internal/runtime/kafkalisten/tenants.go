package kafkalisten

import (
	"fmt"
	"slices"
	"sync"
	"time"
)

// Tenant is one tenant of a cluster as its front door sees it.
type Tenant struct {
	// ID names the tenant in logs and messages (its LKC).
	ID string `json:"id"`
	// Prefix is what the tenant's topic, group and transactional ids carry
	// on the brokers of a shared cluster; its clients never see it. Empty:
	// the tenant has the whole cluster (a dedicated one), and its clients
	// talk to the brokers directly once authenticated.
	Prefix string `json:"prefix,omitempty"`
	// Keys are the SASL users that sign in as the tenant.
	Keys []string `json:"keys,omitempty"`
	// Owners names the user or service account each key acts as, and
	// ACLsOnly the keys that may do only what the ACLs grant their owner
	// (Kafka REST's ACL calls need both).
	Owners   map[string]string `json:"owners,omitempty"`
	ACLsOnly []string          `json:"acls_only,omitempty"`
	Limits   Limits            `json:"limits"`
}

// Key is what the door knows of one key.
type Key struct {
	// Tenant is the key's tenant (its LKC), Prefix the tenant's.
	Tenant, Prefix string
	// Owner is the principal the key acts as, and ACLsOnly says it may do
	// only what the ACLs grant the owner.
	Owner    string
	ACLsOnly bool
}

// Limits are what the front door holds one tenant of a shared cluster to;
// zero means no limit. Byte rates are for the whole cluster: the door
// sees every broker's traffic (each proxy's, when several run).
type Limits struct {
	Partitions            int   `json:"partitions,omitempty"`
	Topics                int   `json:"topics,omitempty"`
	Connections           int   `json:"connections,omitempty"`
	ProduceBytesPerSecond int64 `json:"produce_bytes_per_second,omitempty"`
	FetchBytesPerSecond   int64 `json:"fetch_bytes_per_second,omitempty"`
}

// Tenants is what a cluster's front door knows of who signs in: for each
// key, its tenant. It is set by whoever sets the cluster's credentials,
// before the broker learns a new key, so that a key is never signed in
// without the door knowing its tenant.
type Tenants struct {
	admin string

	mu    sync.RWMutex
	byKey map[string]*tenantState
	byID  map[string]*tenantState
}

// NewTenants returns an empty directory; admin is the cluster's own
// superuser, which the door lets through unmapped ("": none, as for a
// proxy, which the cluster's own clients do not use).
func NewTenants(admin string) *Tenants {
	return &Tenants{admin: admin, byKey: map[string]*tenantState{}, byID: map[string]*tenantState{}}
}

// Set replaces the tenants. A tenant that stays keeps its counters (its
// connections and byte rates); a key no tenant holds any more is refused
// from now on.
func (t *Tenants) Set(tenants []Tenant) {
	t.mu.Lock()
	defer t.mu.Unlock()
	byKey := map[string]*tenantState{}
	byID := map[string]*tenantState{}
	for _, tn := range tenants {
		st, ok := t.byID[tn.ID]
		if !ok {
			st = &tenantState{}
		}
		st.set(tn)
		byID[tn.ID] = st
		for _, k := range tn.Keys {
			byKey[k] = st
		}
	}
	t.byKey, t.byID = byKey, byID
}

// shared reports whether some tenant's names are mapped: the cluster is
// shared, and its clients are offered only what the door maps.
func (t *Tenants) shared() bool {
	if t == nil {
		return false
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	for _, st := range t.byID {
		if st.tenant().Prefix != "" {
			return true
		}
	}
	return false
}

// lookup returns the tenant of key: nil with ok for the admin (or any key
// when the door has no directory), nil without ok for a key no tenant
// holds.
func (t *Tenants) lookup(key string) (st *tenantState, ok bool) {
	if t == nil || (t.admin != "" && key == t.admin) {
		return nil, true
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	st, ok = t.byKey[key]
	return st, ok
}

// Key returns what the door knows of key.
func (t *Tenants) Key(key string) (Key, bool) {
	t.mu.RLock()
	st, ok := t.byKey[key]
	t.mu.RUnlock()
	if !ok {
		return Key{}, false
	}
	tn := st.tenant()
	return Key{Tenant: tn.ID, Prefix: tn.Prefix, Owner: tn.Owners[key], ACLsOnly: slices.Contains(tn.ACLsOnly, key)}, true
}

// LimitedKeys returns the keys of tenant owned by owner that may do only
// what the ACLs grant it: those an owner's ACL is copied to.
func (t *Tenants) LimitedKeys(tenant, owner string) []string {
	t.mu.RLock()
	st, ok := t.byID[tenant]
	t.mu.RUnlock()
	if !ok {
		return nil
	}
	tn := st.tenant()
	var out []string
	for _, k := range tn.ACLsOnly {
		if tn.Owners[k] == owner {
			out = append(out, k)
		}
	}
	return out
}

// tenantState is a tenant and what the door counts of it.
type tenantState struct {
	mu          sync.Mutex
	t           Tenant
	connections int
	produce     rate
	fetch       rate
	// creating serializes a tenant's topic and partition creations, so
	// that two connections cannot both pass the limit check with the room
	// for one.
	creating sync.Mutex
}

func (s *tenantState) set(t Tenant) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.t = t
	s.produce.setRate(t.Limits.ProduceBytesPerSecond)
	s.fetch.setRate(t.Limits.FetchBytesPerSecond)
}

func (s *tenantState) tenant() Tenant {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.t
}

// errTooManyConnections refuses a sign-in past the tenant's connections.
type errTooManyConnections struct {
	id    string
	limit int
}

func (e errTooManyConnections) Error() string {
	return fmt.Sprintf("Connection limit reached: cluster %s allows %d client connections at once; close some and retry", e.id, e.limit)
}

// connect counts a connection of the tenant, or refuses it past its limit.
func (s *tenantState) connect() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if l := s.t.Limits.Connections; l > 0 && s.connections >= l {
		return errTooManyConnections{id: s.t.ID, limit: l}
	}
	s.connections++
	return nil
}

func (s *tenantState) disconnect() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.connections--
}

// rate is a byte rate quota in Kafka's manner: bytes are always let
// through, and a client past its rate is told how long to wait
// (throttle_time_ms) and is not read from until then. The allowance
// refills at the rate and holds at most one second of it.
type rate struct {
	mu      sync.Mutex
	perSec  float64
	allowed float64
	last    time.Time
}

func (r *rate) setRate(bytesPerSec int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if float64(bytesPerSec) != r.perSec {
		r.perSec = float64(bytesPerSec)
		r.allowed = r.perSec
	}
}

// take counts n bytes at now and returns how long the client must wait.
func (r *rate) take(now time.Time, n int) time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.perSec <= 0 {
		return 0
	}
	if !r.last.IsZero() {
		r.allowed = min(r.perSec, r.allowed+now.Sub(r.last).Seconds()*r.perSec)
	}
	r.last = now
	r.allowed -= float64(n)
	if r.allowed >= 0 {
		return 0
	}
	return time.Duration(-r.allowed / r.perSec * float64(time.Second))
}
