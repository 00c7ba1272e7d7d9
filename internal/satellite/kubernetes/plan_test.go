package kubernetes

import (
	"fmt"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/mothership-dev/mothership/internal/resource"
)

// The plan's decisions, from what the site reports, without an API server
// (kubernetes_test.go runs them against one).

func spec(brokers int) resource.PKCSpec {
	return resource.PKCSpec{Cloud: "AWS", Region: "us-west-2", Dedicated: true, Brokers: brokers, Zones: []string{"us-west-2a"}}
}

// readyKafka is a Kafka Strimzi reconciled and found Ready, with the
// balanced node ids annotation when balanced is not nil.
func readyKafka(balanced []int) *unstructured.Unstructured {
	k := &unstructured.Unstructured{Object: map[string]any{"metadata": map[string]any{"name": "pkc-1", "generation": int64(1)},
		"status": map[string]any{"observedGeneration": int64(1), "conditions": []any{map[string]any{"type": "Ready", "status": "True"}}}}}
	if balanced != nil {
		k.SetAnnotations(map[string]string{AnnotationBalanced: intList(balanced)})
	}
	return k
}

func livePool(replicas int, ids []int, remove []int) *unstructured.Unstructured {
	p := &unstructured.Unstructured{Object: map[string]any{"metadata": map[string]any{"name": brokerPool},
		"spec": map[string]any{"replicas": int64(replicas)}, "status": map[string]any{"nodeIds": toAny(ids)}}}
	if remove != nil {
		p.SetAnnotations(map[string]string{annotationRemoveNodes: intList(remove)})
	}
	return p
}

func readyRebalance(mode string, ids []int) *unstructured.Unstructured {
	r := rebalanceObject("pkc-1", mode, ids)
	r.Object["status"] = map[string]any{"conditions": []any{map[string]any{"type": "Ready", "status": "True"}}}
	return r
}

func toAny(ids []int) []any {
	out := make([]any, len(ids))
	for i, n := range ids {
		out[i] = int64(n)
	}
	return out
}

func idRange(from, to int) []int {
	var out []int
	for i := from; i <= to; i++ {
		out = append(out, i)
	}
	return out
}

func newPlanDriver() *Driver {
	return &Driver{cfg: Config{Site: Site{ExternalListener: "loadbalancer", StorageGiBPerCKU: 300}}}
}

// rebalances lists the plan's rebalances as "mode [ids]".
func rebalances(p plan) []string {
	var out []string
	for _, r := range p.rebalances {
		mode, _, _ := unstructured.NestedString(r.Object, "spec", "mode")
		b, _, _ := unstructured.NestedSlice(r.Object, "spec", "brokers")
		var ids []int
		for _, v := range b {
			ids = append(ids, int(v.(int64)))
		}
		out = append(out, mode+" "+intList(ids))
	}
	return out
}

func brokerReplicas(t *testing.T, p plan) (int64, string) {
	t.Helper()
	for _, u := range p.pools {
		if u.GetName() == brokerPool {
			r, _, _ := unstructured.NestedInt64(u.Object, "spec", "replicas")
			return r, u.GetAnnotations()[annotationRemoveNodes]
		}
	}
	t.Fatal("no broker pool in the plan")
	return 0, ""
}

func TestPlanShrinkEmptiesTheHighestBrokersBeforeLoweringThePool(t *testing.T) {
	d := newPlanDriver()
	ids := idRange(3, 14)
	l := live{kafka: readyKafka(ids), pools: map[string]*unstructured.Unstructured{brokerPool: livePool(12, ids, nil)},
		rebalances: map[string]*unstructured.Unstructured{}}
	p := d.plan("pkc-1", 2, spec(6), l)
	if got := fmt.Sprint(rebalances(p)); got != "[remove-brokers [9,10,11,12,13,14]]" {
		t.Fatalf("rebalances %s, want remove-brokers of the highest six", got)
	}
	if r, remove := brokerReplicas(t, p); r != 12 || remove != "[9,10,11,12,13,14]" {
		t.Fatalf("pool replicas %d, remove-node-ids %q: want 12 until the rebalance is Ready, and the ids named", r, remove)
	}
	if r := p.realized(2, l, "SASL_SSL://kafka.example:9092", ""); r.Phase == resource.PhaseProvisioned || r.Reason != "REBALANCING" {
		t.Fatalf("realized %+v while the rebalance runs", r)
	}

	// The rebalance is Ready: the pool goes down, naming the same ids.
	l.pools[brokerPool] = livePool(12, ids, idRange(9, 14))
	ready := readyRebalance("remove-brokers", idRange(9, 14))
	l.rebalances[ready.GetName()] = ready
	p = d.plan("pkc-1", 2, spec(6), l)
	if r, remove := brokerReplicas(t, p); r != 6 || remove != "[9,10,11,12,13,14]" {
		t.Fatalf("after the rebalance: pool replicas %d, remove-node-ids %q; want 6 with the ids kept until Strimzi removed them", r, remove)
	}

	// Strimzi removed them: nothing is left to do.
	l.pools[brokerPool] = livePool(6, idRange(3, 8), idRange(9, 14))
	p = d.plan("pkc-1", 2, spec(6), l)
	if r, remove := brokerReplicas(t, p); r != 6 || remove != "" || len(p.rebalances) != 0 {
		t.Fatalf("once removed: replicas %d, remove-node-ids %q, rebalances %v; want 6 and neither", r, remove, rebalances(p))
	}
	if b := p.kafka.GetAnnotations()[AnnotationBalanced]; b != intList(idRange(3, 8)) {
		t.Fatalf("balanced node ids %s, want the six left", b)
	}
}

func TestPlanALargerTargetReplacesAShrink(t *testing.T) {
	d := newPlanDriver()
	ids := idRange(3, 14)
	l := live{kafka: readyKafka(ids), pools: map[string]*unstructured.Unstructured{brokerPool: livePool(12, ids, idRange(9, 14))},
		rebalances: map[string]*unstructured.Unstructured{}}
	p := d.plan("pkc-1", 3, spec(18), l)
	if r, remove := brokerReplicas(t, p); r != 18 || remove != "" || len(p.rebalances) != 0 {
		t.Fatalf("replicas %d, remove-node-ids %q, rebalances %v: want 18 at once, the shrink dropped", r, remove, rebalances(p))
	}
}

func TestPlanNewBrokersGetAnAddBrokersRebalance(t *testing.T) {
	d := newPlanDriver()
	l := live{kafka: readyKafka(idRange(3, 8)), pools: map[string]*unstructured.Unstructured{brokerPool: livePool(12, idRange(3, 14), nil)},
		rebalances: map[string]*unstructured.Unstructured{}}
	p := d.plan("pkc-1", 2, spec(12), l)
	if got := fmt.Sprint(rebalances(p)); got != "[add-brokers [9,10,11,12,13,14]]" {
		t.Fatalf("rebalances %s, want add-brokers of the six new ones", got)
	}
	ready := readyRebalance("add-brokers", idRange(9, 14))
	l.rebalances[ready.GetName()] = ready
	p = d.plan("pkc-1", 2, spec(12), l)
	if len(p.rebalances) != 0 || p.kafka.GetAnnotations()[AnnotationBalanced] != intList(idRange(3, 14)) {
		t.Fatalf("after the rebalance: %v, balanced %s; want none, all twelve balanced", rebalances(p), p.kafka.GetAnnotations()[AnnotationBalanced])
	}
}

func TestContainsIgnoresWhatOthersAdd(t *testing.T) {
	want := map[string]any{"spec": map[string]any{"replicas": int64(3), "roles": []any{"broker"}}}
	have := map[string]any{"spec": map[string]any{"replicas": float64(3), "roles": []any{"broker"}, "template": map[string]any{}},
		"status": map[string]any{"replicas": int64(1)}}
	if !contains(have, want) {
		t.Fatal("a live object with more fields than wanted is not taken as holding them")
	}
	have["spec"].(map[string]any)["replicas"] = int64(1)
	if contains(have, want) {
		t.Fatal("an edited field is taken as unchanged")
	}
}

// TestPlanPoolsWithoutStatusUseTheirRange: before Strimzi writes a pool's
// status (or when something else plays it and writes only the Kafka's),
// its node ids are the first of its range: a raised pool gets its
// add-brokers rebalance for them, and the pools count as at their size.
func TestPlanPoolsWithoutStatusUseTheirRange(t *testing.T) {
	d := newPlanDriver()
	raised := &unstructured.Unstructured{Object: map[string]any{"metadata": map[string]any{"name": brokerPool},
		"spec": map[string]any{"replicas": int64(12)}}}
	l := live{kafka: readyKafka(idRange(poolIDs, poolIDs+5)), pools: map[string]*unstructured.Unstructured{brokerPool: raised},
		rebalances: map[string]*unstructured.Unstructured{}}
	p := d.plan("pkc-1", 2, spec(12), l)
	if got, want := fmt.Sprint(rebalances(p)), fmt.Sprintf("[add-brokers %s]", intList(idRange(poolIDs+6, poolIDs+11))); got != want {
		t.Fatalf("rebalances %s, want %s", got, want)
	}
	for _, u := range p.pools {
		if next := u.GetAnnotations()[annotationNextNodes]; u.GetName() == brokerPool && next != fmt.Sprintf("[%d-%d]", poolIDs, 2*poolIDs-1) {
			t.Fatalf("the broker pool's next-node-ids %q, want its range", next)
		}
	}
	if p.hasKeys || p.kafka.GetAnnotations()[AnnotationHasKeys] != "" {
		t.Fatal("a PKC without keys is marked as having some: the driver would reach for brokers it does not need")
	}
}
