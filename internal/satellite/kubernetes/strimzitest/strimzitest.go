// Package strimzitest plays Strimzi's part in tests, where its Java
// operator cannot run: it watches the kafka.strimzi.io objects of a real
// API server and writes their status the way Strimzi 1.2.0 does, and it
// runs a real Kafka-protocol broker (franz-go's kfake, TLS and SCRAM) for
// each Kafka, so that what a driver sets through the Admin API is real.
//
// What it follows of Strimzi (strimzi-kafka-operator at 1.2.0):
//   - node ids: one set per cluster, shared by its pools; a new node takes
//     the lowest unused id of the pool's strimzi.io/next-node-ids, else the
//     lowest unused, a removed one is taken from the pool's
//     strimzi.io/remove-node-ids, else the highest
//     (cluster-operator/.../model/nodepools/NodeIdAssignor.java);
//   - a broker cannot be removed while it holds partition replicas
//     (KafkaClusterCreator.brokerRemovalCheck): Strimzi then reverts the
//     scale-down and adds a Warning condition ScaleDownPreventionCheck to
//     a Ready Kafka. Here a broker holds replicas until a remove-brokers
//     KafkaRebalance naming it is Ready;
//   - Kafka status: NotReady (reason and message) or Ready, with
//     observedGeneration, kafkaNodePools and listeners' bootstrapServers
//     (KafkaAssemblyOperator, KafkaListenersReconciler);
//   - KafkaRebalance: a condition named after its state, PendingProposal,
//     ProposalReady, then with strimzi.io/rebalance-auto-approval
//     Rebalancing and Ready; strimzi.io/rebalance: refresh asks for a new
//     proposal and is removed once acted on; NotReady without the strimzi.io/cluster
//     label, its Kafka, or the Kafka's cruiseControl
//     (KafkaRebalanceAssemblyOperator);
//   - KafkaUser: Ready once its password Secret exists (the User
//     Operator); the superusers of the brokers are the Kafka's
//     authorization.superUsers.
//
// It also plays what a real cluster does for the Deployments and
// LoadBalancer Services a driver makes beside Strimzi's objects: a
// Deployment's pods become ready (status.readyReplicas), and a
// LoadBalancer Service gets an address (status.loadBalancer.ingress,
// NAME.NAMESPACE.lb.example), unless paused with HoldPods.
//
// It shares no code with the driver it tests.
package strimzitest

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"

	"github.com/mothership-dev/mothership/internal/pki"
)

var (
	kafkas     = schema.GroupVersionResource{Group: "kafka.strimzi.io", Version: "v1", Resource: "kafkas"}
	pools      = schema.GroupVersionResource{Group: "kafka.strimzi.io", Version: "v1", Resource: "kafkanodepools"}
	rebalances = schema.GroupVersionResource{Group: "kafka.strimzi.io", Version: "v1", Resource: "kafkarebalances"}
	users      = schema.GroupVersionResource{Group: "kafka.strimzi.io", Version: "v1", Resource: "kafkausers"}
	secrets    = schema.GroupVersionResource{Version: "v1", Resource: "secrets"}
	claims     = schema.GroupVersionResource{Version: "v1", Resource: "persistentvolumeclaims"}
	deploys    = schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}
	services   = schema.GroupVersionResource{Version: "v1", Resource: "services"}
)

// rebalanceSteps is the order of a rebalance's states.
var rebalanceSteps = []string{"PendingProposal", "ProposalReady", "Rebalancing", "Ready"}

// Operator is the stand-in for Strimzi.
type Operator struct {
	client dynamic.Interface
	ca     *pki.CA

	mu            sync.Mutex
	notReady      map[string][2]string // ns/kafka → reason, message
	failRebalance bool
	brokers       map[string]*kfake.Cluster // ns/kafka
	refused       int
	lowered       []string // pools whose replicas went down: "ns/pool from→to"
	seen          map[string]int64
	claimed       map[string]bool
	paused        bool
	holdPods      bool
}

// HoldPods keeps Deployments' pods from becoming ready while hold is true.
func (o *Operator) HoldPods(hold bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.holdPods = hold
}

// reconcileWorkloads plays the Deployment controller, the kubelet and a
// cloud's load balancer.
func (o *Operator) reconcileWorkloads(ctx context.Context) error {
	o.mu.Lock()
	hold := o.holdPods
	o.mu.Unlock()
	ds, err := o.list(ctx, deploys)
	if err != nil {
		return err
	}
	for i := range ds {
		d := &ds[i]
		replicas, _, _ := unstructured.NestedInt64(d.Object, "spec", "replicas")
		ready := replicas
		if hold {
			ready = 0
		}
		status := map[string]any{"observedGeneration": d.GetGeneration(), "replicas": replicas,
			"readyReplicas": ready, "availableReplicas": ready, "updatedReplicas": replicas}
		if err := o.setStatus(ctx, deploys, d, status); err != nil {
			return err
		}
	}
	ss, err := o.list(ctx, services)
	if err != nil {
		return err
	}
	for i := range ss {
		svc := &ss[i]
		if t, _, _ := unstructured.NestedString(svc.Object, "spec", "type"); t != "LoadBalancer" {
			continue
		}
		status := map[string]any{"loadBalancer": map[string]any{"ingress": []any{
			map[string]any{"hostname": svc.GetName() + "." + svc.GetNamespace() + ".lb.example"}}}}
		if err := o.setStatus(ctx, services, svc, status); err != nil {
			return err
		}
	}
	return nil
}

// Start runs the operator against the API server of cfg (an
// administrator's) until the test ends.
func Start(tb testing.TB, cfg *rest.Config) *Operator {
	tb.Helper()
	client, err := dynamic.NewForConfig(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	ca, err := pki.NewCA("strimzitest cluster CA")
	if err != nil {
		tb.Fatal(err)
	}
	o := &Operator{client: client, ca: ca, notReady: map[string][2]string{}, brokers: map[string]*kfake.Cluster{}, seen: map[string]int64{}, claimed: map[string]bool{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			o.mu.Lock()
			paused := o.paused
			o.mu.Unlock()
			if !paused {
				if err := o.reconcile(ctx); err != nil && ctx.Err() == nil {
					tb.Logf("strimzitest: %v", err)
				}
			}
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	tb.Cleanup(func() {
		cancel()
		<-done
		o.mu.Lock()
		defer o.mu.Unlock()
		for _, c := range o.brokers {
			c.Close()
		}
	})
	return o
}

// FailKafka makes the Kafka ns/name NotReady with reason and message;
// an empty reason heals it.
func (o *Operator) FailKafka(ns, name, reason, message string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if reason == "" {
		delete(o.notReady, ns+"/"+name)
		return
	}
	o.notReady[ns+"/"+name] = [2]string{reason, message}
}

// FailRebalances makes every rebalance not yet Ready end NotReady.
func (o *Operator) FailRebalances(fail bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.failRebalance = fail
}

// Pause stops (true) or resumes the operator, as if Strimzi were busy.
func (o *Operator) Pause(p bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.paused = p
}

// Refused is how many scale-downs the operator refused because the
// brokers still held partitions.
func (o *Operator) Refused() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.refused
}

// Lowered lists the pools whose spec.replicas was seen going down.
func (o *Operator) Lowered() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.lowered)
}

// Brokers is the broker of the Kafka ns/name, once it runs.
func (o *Operator) Brokers(ns, name string) *kfake.Cluster {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.brokers[ns+"/"+name]
}

// CA is the cluster CA the brokers' certificates come from.
func (o *Operator) CA() []byte { return o.ca.CertPEM }

func (o *Operator) list(ctx context.Context, gvr schema.GroupVersionResource) ([]unstructured.Unstructured, error) {
	l, err := o.client.Resource(gvr).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", gvr.Resource, err)
	}
	return l.Items, nil
}

func (o *Operator) reconcile(ctx context.Context) error {
	ks, err := o.list(ctx, kafkas)
	if err != nil {
		return err
	}
	ps, err := o.list(ctx, pools)
	if err != nil {
		return err
	}
	rs, err := o.list(ctx, rebalances)
	if err != nil {
		return err
	}
	us, err := o.list(ctx, users)
	if err != nil {
		return err
	}
	byKafka := map[string]*unstructured.Unstructured{}
	for i := range ks {
		byKafka[ks[i].GetNamespace()+"/"+ks[i].GetName()] = &ks[i]
	}
	// Brokers emptied by a Ready remove-brokers rebalance, per cluster.
	emptied := map[string][]int64{}
	for _, r := range rs {
		key := r.GetNamespace() + "/" + r.GetLabels()["strimzi.io/cluster"]
		mode, _, _ := unstructured.NestedString(r.Object, "spec", "mode")
		if mode == "remove-brokers" && state(&r) == "Ready" {
			emptied[key] = append(emptied[key], int64s(r.Object, "spec", "brokers")...)
		}
	}
	warnings := map[string]string{}
	clusters := map[string][]*unstructured.Unstructured{}
	for i := range ps {
		key := ps[i].GetNamespace() + "/" + ps[i].GetLabels()["strimzi.io/cluster"]
		clusters[key] = append(clusters[key], &ps[i])
	}
	for key, cps := range clusters {
		slices.SortFunc(cps, func(a, b *unstructured.Unstructured) int { return strings.Compare(a.GetName(), b.GetName()) })
		used := map[int64]bool{}
		for _, p := range cps {
			for _, id := range int64s(p.Object, "status", "nodeIds") {
				used[id] = true
			}
		}
		for _, p := range cps {
			o.watchReplicas(p)
			if w, err := o.reconcilePool(ctx, p, used, emptied[key]); err != nil {
				return err
			} else if w != "" {
				warnings[key] = w
			}
		}
	}
	for key, k := range byKafka {
		if err := o.reconcileKafka(ctx, k, clusters[key], warnings[key]); err != nil {
			return err
		}
	}
	for i := range rs {
		if err := o.reconcileRebalance(ctx, &rs[i], byKafka); err != nil {
			return err
		}
	}
	for i := range us {
		if err := o.reconcileUser(ctx, &us[i]); err != nil {
			return err
		}
	}
	return o.reconcileWorkloads(ctx)
}

// watchReplicas records a pool's spec.replicas going down.
func (o *Operator) watchReplicas(p *unstructured.Unstructured) {
	replicas, _, _ := unstructured.NestedInt64(p.Object, "spec", "replicas")
	key := p.GetNamespace() + "/" + p.GetName()
	o.mu.Lock()
	defer o.mu.Unlock()
	if before, ok := o.seen[key]; ok && replicas < before {
		o.lowered = append(o.lowered, fmt.Sprintf("%s %d→%d", key, before, replicas))
	}
	o.seen[key] = replicas
}

// reconcilePool assigns node ids and writes the pool's status; it returns
// the Warning it raised on the Kafka, if any.
func (o *Operator) reconcilePool(ctx context.Context, p *unstructured.Unstructured, used map[int64]bool, emptied []int64) (string, error) {
	replicas, _, _ := unstructured.NestedInt64(p.Object, "spec", "replicas")
	ids := int64s(p.Object, "status", "nodeIds")
	roles, _, _ := unstructured.NestedStringSlice(p.Object, "spec", "roles")
	warning := ""
	switch {
	case int64(len(ids)) < replicas:
		// First from strimzi.io/next-node-ids, then the lowest unused.
		for _, next := range idRange(p.GetAnnotations()["strimzi.io/next-node-ids"]) {
			if int64(len(ids)) < replicas && !used[next] {
				used[next] = true
				ids = append(ids, next)
			}
		}
		for next := int64(0); int64(len(ids)) < replicas; next++ {
			if !used[next] {
				used[next] = true
				ids = append(ids, next)
			}
		}
	case int64(len(ids)) > replicas:
		var remove []int64
		if ann := p.GetAnnotations()["strimzi.io/remove-node-ids"]; ann != "" {
			for _, s := range strings.Split(strings.Trim(ann, "[] "), ",") {
				var n int64
				if _, err := fmt.Sscan(strings.TrimSpace(s), &n); err == nil && slices.Contains(ids, n) {
					remove = append(remove, n)
				}
			}
		}
		sorted := slices.Sorted(slices.Values(ids))
		for i := len(sorted) - 1; int64(len(ids)-len(remove)) > replicas && i >= 0; i-- {
			if !slices.Contains(remove, sorted[i]) {
				remove = append(remove, sorted[i])
			}
		}
		remove = remove[:int64(len(ids))-replicas]
		if slices.Contains(roles, "broker") && !all(remove, emptied) {
			o.mu.Lock()
			o.refused++
			o.mu.Unlock()
			warning = fmt.Sprintf("Reverting scale-down of KafkaNodePool %s by changing number of replicas to %d", p.GetName(), len(ids))
			break
		}
		ids = slices.DeleteFunc(ids, func(n int64) bool { return slices.Contains(remove, n) })
	}
	slices.Sort(ids)
	for _, id := range ids {
		if err := o.claim(ctx, p, id); err != nil {
			return "", err
		}
	}
	status := map[string]any{"replicas": int64(len(ids)), "nodeIds": anys(ids), "roles": anyStrings(roles), "observedGeneration": p.GetGeneration()}
	return warning, o.setStatus(ctx, pools, p, status)
}

// claim makes the volume claim of a node, as Strimzi does for
// persistent-claim storage: never deleted with deleteClaim false, labelled
// with the pool's template labels.
func (o *Operator) claim(ctx context.Context, p *unstructured.Unstructured, id int64) error {
	cluster := p.GetLabels()["strimzi.io/cluster"]
	name := fmt.Sprintf("data-%s-%s-%d", cluster, p.GetName(), id)
	o.mu.Lock()
	done := o.claimed[p.GetNamespace()+"/"+name]
	o.mu.Unlock()
	if done {
		return nil
	}
	labels := map[string]any{"strimzi.io/cluster": cluster, "strimzi.io/pool-name": p.GetName(),
		"app.kubernetes.io/managed-by": "strimzi-cluster-operator"}
	tmpl, _, _ := unstructured.NestedStringMap(p.Object, "spec", "template", "persistentVolumeClaim", "metadata", "labels")
	for k, v := range tmpl {
		labels[k] = v
	}
	size, _, _ := unstructured.NestedString(p.Object, "spec", "storage", "size")
	pvc := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "PersistentVolumeClaim",
		"metadata": map[string]any{"name": name, "namespace": p.GetNamespace(), "labels": labels},
		"spec": map[string]any{"accessModes": []any{"ReadWriteOnce"},
			"resources": map[string]any{"requests": map[string]any{"storage": size}}},
	}}
	_, err := o.client.Resource(claims).Namespace(p.GetNamespace()).Create(ctx, pvc, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("claim %s: %w", name, err)
	}
	o.mu.Lock()
	o.claimed[p.GetNamespace()+"/"+name] = true
	o.mu.Unlock()
	return nil
}

func (o *Operator) reconcileKafka(ctx context.Context, k *unstructured.Unstructured, cps []*unstructured.Unstructured, warning string) error {
	key := k.GetNamespace() + "/" + k.GetName()
	status := map[string]any{"observedGeneration": k.GetGeneration()}
	o.mu.Lock()
	fail, failing := o.notReady[key]
	o.mu.Unlock()
	settled, hasController, hasBroker := len(cps) > 0, false, false
	var names []any
	for _, p := range cps {
		names = append(names, map[string]any{"name": p.GetName()})
		roles, _, _ := unstructured.NestedStringSlice(p.Object, "spec", "roles")
		hasController = hasController || slices.Contains(roles, "controller")
		hasBroker = hasBroker || slices.Contains(roles, "broker")
		replicas, _, _ := unstructured.NestedInt64(p.Object, "spec", "replicas")
		observed, _, _ := unstructured.NestedInt64(p.Object, "status", "observedGeneration")
		if observed != p.GetGeneration() || (int64(len(int64s(p.Object, "status", "nodeIds"))) != replicas && warning == "") {
			settled = false
		}
	}
	switch {
	case failing:
		status["conditions"] = []any{condition("NotReady", fail[0], fail[1])}
	case !hasController || !hasBroker:
		status["conditions"] = []any{condition("NotReady", "InvalidResourceException", "No KafkaNodePools found for Kafka cluster "+k.GetName())}
	case !settled:
		status["conditions"] = []any{condition("NotReady", "Creating", "Kafka cluster is being deployed")}
	default:
		internal, err := o.runBrokers(ctx, k)
		if err != nil {
			status["conditions"] = []any{condition("NotReady", "BrokersNotStarted", err.Error())}
			break
		}
		conds := []any{condition("Ready", "", "")}
		if warning != "" {
			conds = append(conds, condition("Warning", "ScaleDownPreventionCheck", warning))
		}
		status["conditions"] = conds
		status["kafkaNodePools"] = names
		// Strimzi reports the versions the brokers run once rolled
		// (KafkaReconciler's status update from the version change).
		status["kafkaVersion"], status["kafkaMetadataVersion"] = runningVersions(k)
		// Each listener of the spec: the internal one is the broker's.
		var listeners []any
		specListeners, _, _ := unstructured.NestedSlice(k.Object, "spec", "kafka", "listeners")
		for _, l := range specListeners {
			name, _ := l.(map[string]any)["name"].(string)
			addr := ExternalBootstrap(k.GetNamespace(), k.GetName())
			if name == "internal" {
				addr = internal
			}
			listeners = append(listeners, map[string]any{"name": name, "bootstrapServers": addr})
		}
		status["listeners"] = listeners
	}
	return o.setStatus(ctx, kafkas, k, status)
}

// runningVersions are the Kafka and metadata versions of a Kafka's spec,
// defaulted as Strimzi 1.2.0 defaults them (its newest version, and the
// metadata version of the Kafka version).
func runningVersions(k *unstructured.Unstructured) (string, string) {
	version, _, _ := unstructured.NestedString(k.Object, "spec", "kafka", "version")
	if version == "" {
		version = "4.3.1"
	}
	metadata, _, _ := unstructured.NestedString(k.Object, "spec", "kafka", "metadataVersion")
	if metadata == "" {
		major, rest, _ := strings.Cut(version, ".")
		minor, _, _ := strings.Cut(rest, ".")
		metadata = major + "." + minor + "-IV0"
	}
	return version, metadata
}

// ExternalBootstrap is the address the operator reports for a Kafka's
// listeners other than "internal", as a load balancer's would be.
func ExternalBootstrap(ns, name string) string {
	return name + "-kafka-external-bootstrap." + ns + ".lb.example:9094"
}

// runBrokers runs the Kafka's broker once its superusers' passwords
// exist, and publishes the cluster CA as Strimzi does; it returns the
// internal listener's address.
func (o *Operator) runBrokers(ctx context.Context, k *unstructured.Unstructured) (string, error) {
	key := k.GetNamespace() + "/" + k.GetName()
	o.mu.Lock()
	c := o.brokers[key]
	o.mu.Unlock()
	if c != nil {
		return c.ListenAddrs()[0], nil
	}
	supers, _, _ := unstructured.NestedStringSlice(k.Object, "spec", "kafka", "authorization", "superUsers")
	if len(supers) == 0 {
		return "", fmt.Errorf("no superuser to run the brokers with")
	}
	password, err := o.userPassword(ctx, k.GetNamespace(), supers[0])
	if err != nil {
		return "", err
	}
	pair, err := o.ca.Issue("127.0.0.1", "localhost")
	if err != nil {
		return "", err
	}
	cert, err := pair.TLSCertificate()
	if err != nil {
		return "", err
	}
	opts := []kfake.Opt{kfake.NumBrokers(1), kfake.EnableSASL(), kfake.EnableACLs(),
		kfake.Superuser("SCRAM-SHA-512", supers[0], password),
		kfake.TLS(&tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})}
	if auto, _, _ := unstructured.NestedBool(k.Object, "spec", "kafka", "config", "auto.create.topics.enable"); auto {
		opts = append(opts, kfake.AllowAutoTopicCreation())
	}
	c, err = kfake.NewCluster(opts...)
	if err != nil {
		return "", err
	}
	ca := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "Secret",
		"metadata": map[string]any{"name": k.GetName() + "-cluster-ca-cert", "namespace": k.GetNamespace(),
			"labels": map[string]any{"strimzi.io/cluster": k.GetName()}},
		"data": map[string]any{"ca.crt": base64.StdEncoding.EncodeToString(o.ca.CertPEM)},
	}}
	if _, err := o.client.Resource(secrets).Namespace(k.GetNamespace()).Create(ctx, ca, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		c.Close()
		return "", fmt.Errorf("cluster CA secret: %w", err)
	}
	o.mu.Lock()
	o.brokers[key] = c
	o.mu.Unlock()
	return c.ListenAddrs()[0], nil
}

// userPassword is the password of a SCRAM KafkaUser, from its Secret.
func (o *Operator) userPassword(ctx context.Context, ns, user string) (string, error) {
	u, err := o.client.Resource(users).Namespace(ns).Get(ctx, user, metav1.GetOptions{})
	if err != nil {
		return "", fmt.Errorf("superuser %s: %w", user, err)
	}
	name, _, _ := unstructured.NestedString(u.Object, "spec", "authentication", "password", "valueFrom", "secretKeyRef", "name")
	field, _, _ := unstructured.NestedString(u.Object, "spec", "authentication", "password", "valueFrom", "secretKeyRef", "key")
	s, err := o.client.Resource(secrets).Namespace(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return "", fmt.Errorf("superuser %s's secret %s: %w", user, name, err)
	}
	data, _, _ := unstructured.NestedStringMap(s.Object, "data")
	pw, err := base64.StdEncoding.DecodeString(data[field])
	if err != nil || len(pw) == 0 {
		return "", fmt.Errorf("superuser %s's secret %s has no %q", user, name, field)
	}
	return string(pw), nil
}

func (o *Operator) reconcileRebalance(ctx context.Context, r *unstructured.Unstructured, byKafka map[string]*unstructured.Unstructured) error {
	if r.GetAnnotations()["strimzi.io/rebalance"] == "refresh" {
		// Acted on, the annotation goes, and a new proposal is asked for.
		a := r.GetAnnotations()
		delete(a, "strimzi.io/rebalance")
		c := r.DeepCopy()
		c.SetAnnotations(a)
		u, err := o.client.Resource(rebalances).Namespace(r.GetNamespace()).Update(ctx, c, metav1.UpdateOptions{})
		if err != nil {
			if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
				return nil
			}
			return fmt.Errorf("refresh of %s/%s: %w", r.GetNamespace(), r.GetName(), err)
		}
		return o.setStatus(ctx, rebalances, u, map[string]any{"observedGeneration": u.GetGeneration(),
			"conditions": []any{condition("PendingProposal", "", "")}})
	}
	cluster := r.GetLabels()["strimzi.io/cluster"]
	k := byKafka[r.GetNamespace()+"/"+cluster]
	current := state(r)
	var cond map[string]any
	switch {
	case cluster == "":
		cond = condition("NotReady", "InvalidResourceException", "Resource lacks label 'strimzi.io/cluster': No cluster related to a possible rebalance.")
	case k == nil:
		cond = condition("NotReady", "NoSuchResourceException", "Kafka resource '"+cluster+"' identified by label 'strimzi.io/cluster' does not exist")
	case !has(k, "spec", "cruiseControl"):
		cond = condition("NotReady", "InvalidResourceException", "Kafka resource lacks 'cruiseControl' declaration")
	case current == "Ready" || current == "NotReady":
		return nil
	default:
		o.mu.Lock()
		fail := o.failRebalance
		o.mu.Unlock()
		next := rebalanceSteps[0]
		if i := slices.Index(rebalanceSteps, current); i >= 0 && i+1 < len(rebalanceSteps) {
			next = rebalanceSteps[i+1]
		}
		if next == "Rebalancing" && r.GetAnnotations()["strimzi.io/rebalance-auto-approval"] != "true" {
			return nil // waits for an approval
		}
		if fail && next == "Ready" {
			cond = condition("NotReady", "CruiseControlRestException", "Error processing POST request '/remove_broker' due to: 'not enough brokers'")
		} else {
			cond = condition(next, "", "")
		}
	}
	return o.setStatus(ctx, rebalances, r, map[string]any{"observedGeneration": r.GetGeneration(), "conditions": []any{cond}})
}

func (o *Operator) reconcileUser(ctx context.Context, u *unstructured.Unstructured) error {
	status := map[string]any{"observedGeneration": u.GetGeneration(), "username": u.GetName()}
	if _, err := o.userPassword(ctx, u.GetNamespace(), u.GetName()); err != nil {
		status["conditions"] = []any{condition("NotReady", "InvalidResourceException", err.Error())}
	} else {
		status["conditions"] = []any{condition("Ready", "", "")}
	}
	return o.setStatus(ctx, users, u, status)
}

// setStatus writes status unless it is what the object has (conditions
// compared without their time).
func (o *Operator) setStatus(ctx context.Context, gvr schema.GroupVersionResource, u *unstructured.Unstructured, status map[string]any) error {
	old, _, _ := unstructured.NestedMap(u.Object, "status")
	if equalStatus(old, status) {
		return nil
	}
	c := u.DeepCopy()
	c.Object["status"] = status
	if _, err := o.client.Resource(gvr).Namespace(u.GetNamespace()).UpdateStatus(ctx, c, metav1.UpdateOptions{}); err != nil &&
		!apierrors.IsConflict(err) && !apierrors.IsNotFound(err) {
		return fmt.Errorf("status of %s %s/%s: %w", u.GetKind(), u.GetNamespace(), u.GetName(), err)
	}
	return nil
}

func equalStatus(old, status map[string]any) bool {
	strip := func(m map[string]any) map[string]any {
		m = maps.Clone(m)
		if conds, ok := m["conditions"].([]any); ok {
			out := make([]any, len(conds))
			for i, c := range conds {
				cm := maps.Clone(c.(map[string]any))
				delete(cm, "lastTransitionTime")
				out[i] = cm
			}
			m["conditions"] = out
		}
		return m
	}
	return fmt.Sprint(strip(old)) == fmt.Sprint(strip(status))
}

func condition(t, reason, message string) map[string]any {
	c := map[string]any{"type": t, "status": "True", "lastTransitionTime": time.Now().UTC().Format(time.RFC3339)}
	if reason != "" {
		c["reason"] = reason
	}
	if message != "" {
		c["message"] = message
	}
	return c
}

func state(r *unstructured.Unstructured) string {
	conds, _, _ := unstructured.NestedSlice(r.Object, "status", "conditions")
	for _, c := range conds {
		if m, ok := c.(map[string]any); ok && m["status"] == "True" && m["type"] != "Warning" {
			s, _ := m["type"].(string)
			return s
		}
	}
	return ""
}

// idRange reads a node id range as Strimzi writes it: "[0, 1, 10-15]".
func idRange(s string) []int64 {
	var out []int64
	for _, part := range strings.Split(strings.Trim(s, "[] "), ",") {
		part = strings.TrimSpace(part)
		var from, to int64
		if n, _ := fmt.Sscanf(part, "%d-%d", &from, &to); n == 2 {
			for i := from; i <= to; i++ {
				out = append(out, i)
			}
		} else if n, _ := fmt.Sscanf(part, "%d", &from); n == 1 {
			out = append(out, from)
		}
	}
	return out
}

func has(u *unstructured.Unstructured, path ...string) bool {
	_, ok, _ := unstructured.NestedFieldNoCopy(u.Object, path...)
	return ok
}

func int64s(obj map[string]any, path ...string) []int64 {
	v, _, _ := unstructured.NestedSlice(obj, path...)
	var out []int64
	for _, x := range v {
		switch n := x.(type) {
		case int64:
			out = append(out, n)
		case float64:
			out = append(out, int64(n))
		}
	}
	return out
}

func all(small, big []int64) bool {
	for _, n := range small {
		if !slices.Contains(big, n) {
			return false
		}
	}
	return true
}

func anys(ids []int64) []any {
	out := make([]any, len(ids))
	for i, n := range ids {
		out[i] = n
	}
	return out
}

func anyStrings(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}
