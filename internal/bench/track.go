package bench

import (
	"encoding/json"
	"strings"
	"sync"
	"time"

	"github.com/mothership-dev/mothership/internal/resource"
	"github.com/mothership-dev/mothership/internal/runtime/event"
	"github.com/mothership-dev/mothership/internal/runtime/store"
)

// The hops a change is timed through, from the moment the API accepted it.
const (
	HopAPI         = "api"         // request sent → accepted (the API's own latency)
	HopRelay       = "relay"       // kafka's commit → its event on Kafka
	HopPKC         = "pkc"         // accepted → pkc's desired state carries the change
	HopSatellite   = "satellite"   // accepted → the satellite holds the desired state (end to end)
	HopProvisioned = "provisioned" // accepted → status PROVISIONED (or gone) at the change's generation
)

// Hops lists the hops in order.
var Hops = []string{HopAPI, HopRelay, HopPKC, HopSatellite, HopProvisioned}

type op string

const (
	opCreate op = "create"
	opResize op = "resize"
	opRename op = "rename"
	// opUpgrade is Basic → Standard: the tenant stays where it is.
	opUpgrade op = "upgrade"
	opDelete  op = "delete"
)

// change is one change being timed.
type change struct {
	op   op
	lkc  string // empty for a create until its event or answer names it
	name string // a create's display name, unique in a run
	// generation is the LKC's generation after the change (known before
	// it is sent: the bench is the only writer); 0 for a delete.
	generation int64
	cku        int // the size the data plane must hold (create, resize)
	sent       time.Time
	accepted   time.Time // the API's answer came back
	// committed is when kafka committed the change (its event's time):
	// the moment the API accepted it, which the hops count from.
	committed time.Time
	relay     time.Duration
	// seen holds, per hop, when the change passed it.
	seen map[string]time.Time
	done bool
	// blind is set when the satellites are out of sight (a control plane
	// the bench did not start): the change ends at PROVISIONED, or for a
	// delete at its event.
	blind bool
}

// dataPlane reports whether the change reaches the satellite: a rename or
// an upgrade changes nothing a Kafka cluster holds.
func (c *change) dataPlane() bool { return c.op != opRename && c.op != opUpgrade }

// complete reports whether c passed its last hop: PROVISIONED at its
// generation, or for a delete the satellite letting the tenant go.
func (c *change) complete() bool {
	_, prov := c.seen[HopProvisioned]
	_, sat := c.seen[HopSatellite]
	switch {
	case c.accepted.IsZero():
		return false
	case c.blind:
		return prov
	case c.op == opDelete:
		return sat
	case c.dataPlane():
		return prov && sat
	}
	return prov
}

// tracker matches what each hop shows (events on Kafka, the simulated
// satellites' applies) against the changes in flight. A hop may show a
// change before the API's answer is back; it is kept and timed once the
// answer is.
type tracker struct {
	mu      sync.Mutex
	pending map[string]*change // by LKC: one change in flight per cluster
	creates map[string]*change // by display name, until the LKC id is known
	host    map[string]string  // LKC → PKC, as the PKCs' specs say
	done    []*change
	blind   bool // see change.blind
}

func newTracker() *tracker {
	return &tracker{pending: map[string]*change{}, creates: map[string]*change{}, host: map[string]string{}}
}

// reserve marks c's cluster busy before its request is sent; false if it
// has a change in flight.
func (t *tracker) reserve(c *change) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	c.seen, c.blind = map[string]time.Time{}, t.blind
	if c.op == opCreate {
		t.creates[c.name] = c
		return true
	}
	if _, ok := t.pending[c.lkc]; ok {
		return false
	}
	t.pending[c.lkc] = c
	return true
}

// busy reports whether lkc has a change in flight.
func (t *tracker) busy(lkc string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	_, ok := t.pending[lkc]
	return ok
}

// takeDone returns the changes completed so far and forgets them.
func (t *tracker) takeDone() []*change {
	t.mu.Lock()
	defer t.mu.Unlock()
	done := t.done
	t.done = nil
	return done
}

// release forgets a change whose request was refused.
func (t *tracker) release(c *change) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.creates, c.name)
	if t.pending[c.lkc] == c {
		delete(t.pending, c.lkc)
	}
}

// inFlight returns how many changes are not complete.
func (t *tracker) inFlight() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.pending) + len(t.creates)
}

// bind names a create's cluster. Called with t.mu held.
func (t *tracker) bind(c *change, lkc string) {
	if c.lkc != "" {
		return
	}
	c.lkc = lkc
	delete(t.creates, c.name)
	t.pending[lkc] = c
}

// answered records the API's answer.
func (t *tracker) answered(c *change, lkc string, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if c.op == opCreate {
		t.bind(c, lkc)
	}
	c.accepted = at
	c.seen[HopAPI] = at
	t.finish(c)
}

// mark records that c passed hop at (the first time only). Called with
// t.mu held.
func (t *tracker) mark(c *change, hop string, at time.Time) {
	if _, ok := c.seen[hop]; ok || c.done {
		return
	}
	c.seen[hop] = at
	t.finish(c)
}

func (t *tracker) finish(c *change) {
	if c.done || !c.complete() {
		return
	}
	c.done = true
	delete(t.pending, c.lkc)
	t.done = append(t.done, c)
}

// lkcEvent takes an event of the LKC topics, received at.
func (t *tracker) lkcEvent(topic string, ev event.Event, at time.Time) {
	var r store.Resource
	if json.Unmarshal(ev.Data, &r) != nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	c := t.pending[r.ID]
	if c == nil && r.Generation == 1 && topic == event.Topic(resource.KindLKC, event.Desired) {
		var spec resource.LKCSpec
		if json.Unmarshal(r.Spec, &spec) == nil {
			if c = t.creates[spec.DisplayName]; c != nil {
				t.bind(c, r.ID)
			}
		}
	}
	if c == nil {
		return
	}
	switch topic {
	case event.Topic(resource.KindLKC, event.Desired):
		if (c.op == opDelete && r.Deleted()) || (c.op != opDelete && r.Generation >= c.generation) {
			if c.relay == 0 {
				c.relay = max(at.Sub(ev.Time), time.Microsecond)
				c.committed = ev.Time
			}
			if c.blind && c.op == opDelete {
				t.mark(c, HopProvisioned, at)
			}
		}
	case event.Topic(resource.KindLKC, event.Status):
		if c.op != opDelete && r.Status.Phase == "PROVISIONED" && r.Status.ObservedGeneration >= c.generation {
			t.mark(c, HopProvisioned, at)
		}
	}
}

// pkcSpec takes a PKC's desired state, from its topic (hop pkc) or from a
// satellite's driver (hop satellite); deleted means the PKC is gone (or
// stopped, kept for a restore), as is a tenant kept for one.
func (t *tracker) pkcSpec(hop, pkc string, spec resource.PKCSpec, deleted bool, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if hop == HopPKC && !deleted {
		for lkc := range spec.Tenants {
			t.host[lkc] = pkc
		}
	}
	if !deleted {
		for lkc, tenant := range spec.Tenants {
			if c := t.pending[lkc]; c != nil && tenant.RetainedUntil == nil && (c.op == opCreate || c.op == opResize) && (!spec.Dedicated || tenant.CKU == c.cku) {
				t.mark(c, hop, at)
			}
		}
	}
	for lkc, c := range t.pending {
		if c.op != opDelete || t.host[lkc] != pkc {
			continue
		}
		if tenant, ok := spec.Tenants[lkc]; deleted || !ok || tenant.RetainedUntil != nil {
			t.mark(c, hop, at)
		}
	}
}

// stuck describes the changes still in flight: how many of each kind,
// and which hops they have passed.
func (t *tracker) stuck() map[string]int {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := map[string]int{}
	describe := func(c *change) {
		var hops []string
		for _, h := range Hops {
			if _, ok := c.seen[h]; ok {
				hops = append(hops, h)
			}
		}
		out[string(c.op)+" past "+strings.Join(hops, ",")]++
	}
	for _, c := range t.pending {
		describe(c)
	}
	for _, c := range t.creates {
		describe(c)
	}
	return out
}
