package kubernetes

import (
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/mothership-dev/mothership/internal/resource"
)

// plan is what the driver wants of one PKC now, derived from its spec and
// from what the site reports (level-triggered: no history is kept but the
// balanced node ids on the Kafka), and what is still under way.
type plan struct {
	kafka      *unstructured.Unstructured
	pools      []*unstructured.Unstructured
	rebalances []*unstructured.Unstructured

	brokerPools []pool
	nodeIDs     []int       // the brokers Strimzi reports
	brokers     []brokerRef // the same, with their pools
	waiting     []string    // what the PKC waits for, first first
	reason      string      // of the first wait
	serving     bool        // the brokers serve: keys can be set
	hasKeys     bool        // the brokers have keys, or are to get some
	failed      error       // what Apply reports as failed, once applied
}

// plan decides the objects of a PKC.
//
// A resize moves partitions as Kafka needs: brokers are added to the pools
// at once, and once Strimzi reports them, an add-brokers KafkaRebalance
// moves partitions onto them. A shrink first empties the brokers that go
// (the highest node ids of each pool, named on the pool with
// strimzi.io/remove-node-ids and in a remove-brokers KafkaRebalance) and
// lowers the pool only when that rebalance is Ready. A new target replaces
// the plan under way: a rebalance no longer wanted is pruned.
func (d *Driver) plan(id string, gen int64, spec resource.PKCSpec, l live) plan {
	p := plan{brokerPools: pools(spec)}
	kafkaReady, why, reason := kafkaReady(l.kafka)
	p.serving = kafkaReady

	type state struct {
		pool
		replicas int   // spec.replicas as it is now
		nodeIDs  []int // status.nodeIds
		removing []int // strimzi.io/remove-node-ids as it is now
	}
	states := make([]state, len(p.brokerPools))
	expanding := false
	for i, bp := range p.brokerPools {
		st := state{pool: bp, replicas: bp.brokers}
		if lp := l.pools[bp.name]; lp != nil {
			st.replicas = int(nested[int64](lp, "spec", "replicas"))
			st.removing, _ = parseIntList(lp.GetAnnotations()[annotationRemoveNodes])
			var reported bool
			if st.nodeIDs, reported = nodeIDs(lp); !reported {
				// Strimzi has not written the pool's status: its ids
				// are the first of its range, as many as it has.
				st.nodeIDs = span(bp.firstID, st.replicas)
			}
		}
		expanding = expanding || bp.brokers > st.replicas
		p.nodeIDs = append(p.nodeIDs, st.nodeIDs...)
		for _, n := range st.nodeIDs {
			p.brokers = append(p.brokers, brokerRef{node: n, pool: st.name})
		}
		states[i] = st
	}
	slices.Sort(p.nodeIDs)
	slices.SortFunc(p.brokers, func(a, b brokerRef) int { return a.node - b.node })

	// The shrink under way, unless a larger target replaced it.
	remove := map[string][]int{}
	var removeAll []int
	if !expanding {
		for _, st := range states {
			excess := st.replicas - st.brokers
			var ids []int
			switch {
			case excess > 0 && len(st.removing) == excess && subset(st.removing, st.nodeIDs):
				ids = st.removing // the plan already named them
			case excess > 0 && len(st.nodeIDs) == st.replicas:
				ids = st.nodeIDs[len(st.nodeIDs)-excess:] // as Strimzi would: the highest
			case excess > 0:
				p.wait("SCALING", fmt.Sprintf("pool %s: waiting for Strimzi to report its %d node ids before removing brokers", st.name, st.replicas))
			case len(st.removing) > 0 && len(st.nodeIDs) > st.brokers:
				ids = st.removing // lowered; Strimzi is removing them
			}
			if len(ids) > 0 {
				remove[st.name] = ids
				removeAll = append(removeAll, ids...)
			}
		}
	}
	var removal *unstructured.Unstructured
	removalReady := false
	if len(removeAll) > 0 {
		removal = rebalanceObject(id, "remove-brokers", removeAll)
		var state string
		removalReady, state = rebalanceState(l.rebalances[removal.GetName()])
		d.retryFailed(&p, removal, l.rebalances[removal.GetName()])
		p.rebalances = append(p.rebalances, removal)
		if !removalReady {
			p.wait("REBALANCING", fmt.Sprintf("moving partitions off brokers %s before they are removed: %s", intList(removeAll), state))
		}
	}

	// The controllers, then the brokers' pools.
	p.pools = append(p.pools, d.poolObject(id, controllerPool, []string{"controller"}, 3, "", 0, nil))
	for _, st := range states {
		replicas := st.brokers
		if ids := remove[st.name]; len(ids) > 0 && st.replicas > st.brokers && !removalReady {
			replicas = st.replicas // lowered only once the rebalance is Ready
		}
		roles := []string{"broker"}
		p.pools = append(p.pools, d.poolObject(id, st.name, roles, replicas, zoneOf(st.pool), st.firstID, remove[st.name]))
		if len(st.nodeIDs) != st.brokers {
			p.wait("SCALING", fmt.Sprintf("pool %s: %d of %d brokers", st.name, len(st.nodeIDs), st.brokers))
		}
	}

	// Which brokers hold partitions: a broker Strimzi reports beyond them
	// is new, and gets an add-brokers rebalance once every pool is at its
	// size. A new cluster is balanced as it comes.
	settled := kafkaReady && len(removeAll) == 0
	for _, st := range states {
		settled = settled && len(st.nodeIDs) == st.brokers && st.replicas == st.brokers
	}
	var balanced []int
	if l.kafka != nil {
		if s, ok := l.kafka.GetAnnotations()[AnnotationBalanced]; ok {
			balanced, _ = parseIntList(s)
			balanced = intersect(balanced, p.nodeIDs)
			if balanced == nil {
				balanced = []int{}
			}
		} else if settled {
			balanced = p.nodeIDs
		}
	}
	if balanced != nil && settled {
		if added := minus(p.nodeIDs, balanced); len(added) > 0 {
			add := rebalanceObject(id, "add-brokers", added)
			ready, state := rebalanceState(l.rebalances[add.GetName()])
			if ready {
				balanced = p.nodeIDs
			} else {
				d.retryFailed(&p, add, l.rebalances[add.GetName()])
				p.rebalances = append(p.rebalances, add)
				p.wait("REBALANCING", fmt.Sprintf("moving partitions onto new brokers %s: %s", intList(added), state))
			}
		}
	}
	p.hasKeys = l.kafka != nil && l.kafka.GetAnnotations()[AnnotationHasKeys] == "true"
	for _, t := range spec.Tenants {
		p.hasKeys = p.hasKeys || len(t.Users) > 0
	}
	p.kafka = d.kafkaObject(id, gen, spec, balanced, p.hasKeys)
	if why != "" {
		p.waitFirst(reason, why)
	}
	return p
}

// retryFailed asks Strimzi for a new proposal (strimzi.io/rebalance:
// refresh) of a rebalance that ended NotReady at least RebalanceRetry ago,
// and makes the plan fail meanwhile, so that the agent comes back with its
// backoff and the reason shows in the cluster's status.
func (d *Driver) retryFailed(p *plan, want, have *unstructured.Unstructured) {
	ok, c := conditionTrue(have, "NotReady")
	if !ok {
		return
	}
	p.failed = fmt.Errorf("Strimzi reports the %s rebalance not ready: %v: %v", nested[string](want, "spec", "mode"), c["reason"], c["message"])
	since, _ := time.Parse(time.RFC3339, fmt.Sprint(c["lastTransitionTime"]))
	if time.Since(since) >= d.cfg.RebalanceRetry {
		setAnnotation(want, annotationRebalance, "refresh")
		p.failed = fmt.Errorf("%w; asking for a new proposal", p.failed)
	}
}

func zoneOf(p pool) string {
	if p.single {
		return ""
	}
	return p.zone
}

func (p *plan) wait(reason, msg string) {
	if len(p.waiting) == 0 {
		p.reason = reason
	}
	p.waiting = append(p.waiting, msg)
}

func (p *plan) waitFirst(reason, msg string) {
	p.waiting = append([]string{msg}, p.waiting...)
	p.reason = reason
}

// realized is what the PKC has realized by what Strimzi reports of it,
// once its objects are applied.
//
// endpoint is the clients' endpoint (the proxy's), or why there is none
// yet.
func (p plan) realized(gen int64, l live, endpoint string, notYet string) resource.Realized {
	waiting, reason := p.waiting, p.reason
	// The Kafka as applied now: Strimzi has reconciled it only when its
	// status observed its generation (kafkaReady checks it).
	if ok, why, r := kafkaReady(l.kafka); !ok && len(waiting) == 0 {
		waiting, reason = []string{why}, r
	}
	if endpoint == "" && len(waiting) == 0 {
		waiting, reason = []string{notYet}, "WAITING_FOR_PROXY"
	}
	realized := resource.PKCRealized{Brokers: len(p.nodeIDs), BootstrapEndpoint: endpoint}
	// The proxy serves Kafka REST v3 on the same address.
	switch addr, tls := strings.CutPrefix(endpoint, "SASL_SSL://"); {
	case tls:
		realized.RESTEndpoint = "https://" + addr
	case endpoint != "":
		realized.RESTEndpoint = "http://" + strings.TrimPrefix(endpoint, "SASL_PLAINTEXT://")
	}
	if l.kafka != nil {
		// What runs, as Strimzi reports it: during an upgrade it differs
		// from the spec until the roll is done.
		realized.Version = nested[string](l.kafka, "status", "kafkaVersion")
		realized.MetadataVersion = nested[string](l.kafka, "status", "kafkaMetadataVersion")
	}
	detail := resource.Encode(realized)
	if len(waiting) > 0 {
		return resource.Realized{Generation: gen - 1, Phase: resource.PhaseProvisioning, Reason: reason,
			Message: strings.Join(waiting, "; "), Detail: detail}
	}
	return resource.Realized{Generation: gen, Phase: resource.PhaseProvisioned, Detail: detail}
}

// kafkaReady reports whether Strimzi reconciled the Kafka as it is now and
// found it Ready; if not, why, and a reason.
func kafkaReady(k *unstructured.Unstructured) (bool, string, string) {
	if k == nil {
		return false, "the Kafka is being created", "WAITING_FOR_STRIMZI"
	}
	if ok, c := conditionTrue(k, "NotReady"); ok {
		return false, fmt.Sprintf("Strimzi reports the Kafka not ready: %s: %s", c["reason"], c["message"]), "STRIMZI_NOT_READY"
	}
	observed := nested[int64](k, "status", "observedGeneration")
	if observed != k.GetGeneration() {
		return false, fmt.Sprintf("waiting for Strimzi to reconcile the Kafka (generation %d, observed %d)", k.GetGeneration(), observed), "WAITING_FOR_STRIMZI"
	}
	if ok, _ := conditionTrue(k, "Ready"); !ok {
		return false, "Strimzi has not reported the Kafka Ready", "WAITING_FOR_STRIMZI"
	}
	return true, "", ""
}

// rebalanceState reports whether a KafkaRebalance is Ready, and its state
// as Strimzi writes it (a condition named after the state).
func rebalanceState(r *unstructured.Unstructured) (bool, string) {
	if r == nil {
		return false, "requested"
	}
	conds, _, _ := unstructured.NestedSlice(r.Object, "status", "conditions")
	for _, c := range conds {
		m, _ := c.(map[string]any)
		if m["status"] != "True" {
			continue
		}
		switch t, _ := m["type"].(string); t {
		case "Ready":
			return true, "Ready"
		case "NotReady":
			return false, fmt.Sprintf("NotReady: %v: %v", m["reason"], m["message"])
		case "Warning":
		default:
			return false, t
		}
	}
	return false, "requested"
}

// conditionTrue finds the condition of type t with status True.
func conditionTrue(u *unstructured.Unstructured, t string) (bool, map[string]any) {
	if u == nil {
		return false, nil
	}
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conds {
		if m, ok := c.(map[string]any); ok && m["type"] == t && m["status"] == "True" {
			return true, m
		}
	}
	return false, nil
}

// listenerBootstrap is a listener's bootstrapServers as Strimzi reports it.
func listenerBootstrap(k *unstructured.Unstructured, name string) string {
	if k == nil {
		return ""
	}
	ls, _, _ := unstructured.NestedSlice(k.Object, "status", "listeners")
	for _, l := range ls {
		if m, ok := l.(map[string]any); ok && m["name"] == name {
			s, _ := m["bootstrapServers"].(string)
			return s
		}
	}
	return ""
}

// nodeIDs are the node ids Strimzi reports for a pool, and whether it
// reports any.
func nodeIDs(pool *unstructured.Unstructured) ([]int, bool) {
	ids, reported, _ := unstructured.NestedSlice(pool.Object, "status", "nodeIds")
	out := make([]int, 0, len(ids))
	for _, v := range ids {
		if n, ok := number(v); ok {
			out = append(out, int(n))
		}
	}
	slices.Sort(out)
	return out, reported
}

// span is n ids from first.
func span(first, n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = first + i
	}
	return out
}

// nested reads a field of type T, or T's zero value.
func nested[T any](u *unstructured.Unstructured, path ...string) T {
	var zero T
	v, ok, _ := unstructured.NestedFieldNoCopy(u.Object, path...)
	if !ok {
		return zero
	}
	if t, ok := v.(T); ok {
		return t
	}
	return zero
}

func subset(small, big []int) bool {
	for _, n := range small {
		if !slices.Contains(big, n) {
			return false
		}
	}
	return true
}

func intersect(a, b []int) []int {
	var out []int
	for _, n := range a {
		if slices.Contains(b, n) {
			out = append(out, n)
		}
	}
	return out
}

func minus(a, b []int) []int {
	var out []int
	for _, n := range a {
		if !slices.Contains(b, n) {
			out = append(out, n)
		}
	}
	return out
}

func decodeBase64(s string) ([]byte, error) { return base64.StdEncoding.DecodeString(s) }
