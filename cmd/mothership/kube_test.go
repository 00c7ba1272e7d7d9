package main

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/mothership-dev/mothership/internal/api"
	"github.com/mothership-dev/mothership/internal/satellite/kubernetes"
	"github.com/mothership-dev/mothership/internal/satellite/kubernetes/kubetest"
)

// TestDevOnKubernetes runs `mothership dev --kubeconfig FILE` against a bare
// API server with Strimzi's CRDs, as a new user with a Kubernetes cluster
// would: a Dedicated 2 CKU cluster appears as a Kafka with node pools of 6
// brokers in a namespace labelled with the PKC's id; once something writes
// Strimzi's Ready status, the Kafka proxy's ready pods and its load
// balancer's address, and not before, it is PROVISIONED with that
// endpoint; 4 CKU raises the pools to 12 and asks for
// an add-brokers KafkaRebalance; a delete removes the Kafka.
func TestDevOnKubernetes(t *testing.T) {
	env := kubetest.Start(t)
	admin, err := dynamic.NewForConfig(env.Admin)
	if err != nil {
		t.Fatal(err)
	}
	kafkas := schema.GroupVersionResource{Group: "kafka.strimzi.io", Version: "v1", Resource: "kafkas"}
	pools := schema.GroupVersionResource{Group: "kafka.strimzi.io", Version: "v1", Resource: "kafkanodepools"}
	rebalances := schema.GroupVersionResource{Group: "kafka.strimzi.io", Version: "v1", Resource: "kafkarebalances"}
	namespaces := schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}

	dir, listen, kafkaListen := t.TempDir(), freeAddr(t), freeAddr(t)
	dev := startProcess(t, "dev", "dev --data-dir "+dir+" --listen "+listen+" --kafka-listen "+kafkaListen+" --kubeconfig "+env.KubeconfigFile(t), nil)
	waitHTTP(t, "http://"+listen+"/readyz", dev)
	creds, err := os.ReadFile(filepath.Join(dir, "admin-credentials"))
	if err != nil {
		t.Fatal(err)
	}
	user, pw, _ := strings.Cut(strings.TrimSpace(string(creds)), ":")
	c := &client{t: t, base: "http://" + listen, user: user, pw: pw}
	var e api.Environment
	if code := c.do("POST", "/org/v2/environments", map[string]any{"display_name": "prod"}, &e); code != http.StatusCreated {
		t.Fatalf("create environment: %d", code)
	}
	var lkc api.Cluster
	if code := c.do("POST", "/cmk/v2/clusters", map[string]any{"spec": map[string]any{"display_name": "orders", "cloud": "AWS",
		"region": "us-west-2", "config": map[string]any{"kind": "Dedicated", "cku": 2}, "environment": map[string]any{"id": e.ID}}}, &lkc); code != http.StatusAccepted {
		t.Fatalf("create cluster: %d", code)
	}

	// The one Kafka dev's aws satellite made.
	var k *unstructured.Unstructured
	brokers := func(ns string) int64 {
		l, err := admin.Resource(pools).Namespace(ns).List(t.Context(), metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var n int64
		for _, p := range l.Items {
			roles, _, _ := unstructured.NestedStringSlice(p.Object, "spec", "roles")
			if slices.Contains(roles, "broker") {
				r, _, _ := unstructured.NestedInt64(p.Object, "spec", "replicas")
				n += r
			}
		}
		return n
	}
	waitUntil(t, "a Kafka with pools of 6 brokers", func() (bool, string) {
		l, err := admin.Resource(kafkas).List(t.Context(), metav1.ListOptions{LabelSelector: kubernetes.LabelSite + "=aws.us-west-2"})
		if err != nil || len(l.Items) != 1 {
			return false, fmt.Sprintf("%v, %v", l, err)
		}
		k = &l.Items[0]
		return brokers(k.GetNamespace()) == 6, fmt.Sprintf("%d brokers", brokers(k.GetNamespace()))
	})
	pkc, ns := k.GetName(), k.GetNamespace()
	if n, err := admin.Resource(namespaces).Get(t.Context(), ns, metav1.GetOptions{}); err != nil || n.GetLabels()[kubernetes.LabelPKC] != pkc {
		t.Fatalf("namespace %s: %v (%v), want it labelled with %s", ns, n, err, pkc)
	}
	time.Sleep(time.Second)
	if c.do("GET", "/cmk/v2/clusters/"+lkc.ID, nil, &lkc); lkc.Status != nil && lkc.Status.Phase == "PROVISIONED" {
		t.Fatal("PROVISIONED before anything said the Kafka is Ready")
	}

	k.Object["status"] = map[string]any{"observedGeneration": k.GetGeneration(),
		"conditions": []any{map[string]any{"type": "Ready", "status": "True"}},
		"listeners":  []any{map[string]any{"name": "internal", "bootstrapServers": "orders-kafka-bootstrap.kafka.svc:9093"}}}
	if _, err := admin.Resource(kafkas).Namespace(ns).UpdateStatus(t.Context(), k, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Clients reach the brokers through the cluster's Kafka proxy: its
	// pods become ready and its load balancer gets an address.
	deployments := schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}
	services := schema.GroupVersionResource{Version: "v1", Resource: "services"}
	var deploy, svc *unstructured.Unstructured
	waitUntil(t, "the Kafka proxy's Deployment and Service", func() (bool, string) {
		deploy, _ = admin.Resource(deployments).Namespace(ns).Get(t.Context(), "kafka-proxy", metav1.GetOptions{})
		svc, _ = admin.Resource(services).Namespace(ns).Get(t.Context(), "kafka-proxy", metav1.GetOptions{})
		return deploy != nil && svc != nil, ""
	})
	if args, _, _ := unstructured.NestedSlice(deploy.Object, "spec", "template", "spec", "containers"); !strings.Contains(fmt.Sprint(args), "kafka-proxy --settings") ||
		!strings.Contains(fmt.Sprint(args), "--tls-cert") {
		t.Fatalf("the proxy's container runs %v, want kafka-proxy serving TLS", args)
	}
	time.Sleep(time.Second)
	if c.do("GET", "/cmk/v2/clusters/"+lkc.ID, nil, &lkc); lkc.Status != nil && lkc.Status.Phase == "PROVISIONED" {
		t.Fatal("PROVISIONED before the proxy's pods were ready")
	}
	deploy.Object["status"] = map[string]any{"replicas": int64(2), "readyReplicas": int64(2)}
	if _, err := admin.Resource(deployments).Namespace(ns).UpdateStatus(t.Context(), deploy, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	svc.Object["status"] = map[string]any{"loadBalancer": map[string]any{"ingress": []any{map[string]any{"hostname": "orders.kafka.example"}}}}
	if _, err := admin.Resource(services).Namespace(ns).UpdateStatus(t.Context(), svc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	lkc = c.waitCluster(lkc.ID, "PROVISIONED", done)
	if lkc.Spec.KafkaBootstrapEndpoint != "SASL_SSL://orders.kafka.example:9092" {
		t.Fatalf("endpoint %q, want the proxy's load balancer's address", lkc.Spec.KafkaBootstrapEndpoint)
	}

	if code := c.do("PATCH", "/cmk/v2/clusters/"+lkc.ID, map[string]any{"spec": map[string]any{"config": map[string]any{"kind": "Dedicated", "cku": 4}}}, nil); code != http.StatusOK {
		t.Fatalf("resize: %d", code)
	}
	waitUntil(t, "pools of 12 and an add-brokers rebalance", func() (bool, string) {
		l, err := admin.Resource(rebalances).Namespace(ns).List(t.Context(), metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var modes []string
		for _, r := range l.Items {
			mode, _, _ := unstructured.NestedString(r.Object, "spec", "mode")
			modes = append(modes, mode)
		}
		return brokers(ns) == 12 && slices.Contains(modes, "add-brokers"), fmt.Sprintf("%d brokers, rebalances %v", brokers(ns), modes)
	})

	if code := c.do("DELETE", "/cmk/v2/clusters/"+lkc.ID, nil, nil); code != http.StatusNoContent {
		t.Fatalf("delete: %d", code)
	}
	waitUntil(t, "the Kafka deleted", func() (bool, string) {
		_, err := admin.Resource(kafkas).Namespace(ns).Get(t.Context(), pkc, metav1.GetOptions{})
		return err != nil, "still there"
	})
}

// waitUntil polls cond for up to two minutes.
func waitUntil(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within two minutes: %s", what, why)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
