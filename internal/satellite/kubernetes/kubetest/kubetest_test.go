package kubetest_test

import (
	"context"
	"encoding/json"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"

	"github.com/mothership-dev/mothership/internal/satellite/kubernetes/kubetest"
)

func TestMain(m *testing.M) { kubetest.Main(m) }

var (
	kafkas    = schema.GroupVersionResource{Group: "kafka.strimzi.io", Version: "v1", Resource: "kafkas"}
	nodePools = schema.GroupVersionResource{Group: "kafka.strimzi.io", Version: "v1", Resource: "kafkanodepools"}
)

func kafka(ns, name string, spec map[string]any) map[string]any {
	return map[string]any{
		"apiVersion": "kafka.strimzi.io/v1", "kind": "Kafka",
		"metadata": map[string]any{"name": name, "namespace": ns},
		"spec":     spec,
	}
}

func nodePool(ns, name, cluster string, spec map[string]any) map[string]any {
	return map[string]any{
		"apiVersion": "kafka.strimzi.io/v1", "kind": "KafkaNodePool",
		"metadata": map[string]any{"name": name, "namespace": ns, "labels": map[string]any{"strimzi.io/cluster": cluster}},
		"spec":     spec,
	}
}

// A minimal KRaft cluster's spec.
var (
	kafkaSpec = map[string]any{"kafka": map[string]any{
		"version": "4.3.1", "metadataVersion": "4.3-IV0",
		"listeners": []any{map[string]any{"name": "plain", "port": 9092, "type": "internal", "tls": false}},
	}}
	controllersSpec = map[string]any{
		"replicas": 3, "roles": []any{"controller"},
		"storage": map[string]any{"type": "persistent-claim", "size": "10Gi", "deleteClaim": false},
	}
)

func apply(ctx context.Context, c dynamic.Interface, gvr schema.GroupVersionResource, obj map[string]any) error {
	b, err := json.Marshal(obj)
	if err != nil {
		return err
	}
	md := obj["metadata"].(map[string]any)
	_, err = c.Resource(gvr).Namespace(md["namespace"].(string)).Patch(ctx, md["name"].(string), types.ApplyPatchType, b,
		metav1.PatchOptions{FieldManager: "kubetest-test"})
	return err
}

func TestStrimziSchemaValidatesAppliedObjects(t *testing.T) {
	env := kubetest.Start(t)
	if again := kubetest.Start(t); again != env {
		t.Fatal("a second Start started another control plane")
	}
	c, err := dynamic.NewForConfig(env.Admin)
	if err != nil {
		t.Fatal(err)
	}
	ns := env.Namespace(t)
	before := env.WriteRequests(t)

	cases := []struct {
		reason  string
		gvr     schema.GroupVersionResource
		obj     map[string]any
		invalid bool
	}{
		{"a KRaft Kafka with a listener is valid", kafkas, kafka(ns, "demo", kafkaSpec), false},
		{"a pool of 3 controllers with persistent storage is valid", nodePools, nodePool(ns, "controllers", "demo", controllersSpec), false},
		{"a Kafka needs spec.kafka.listeners", kafkas, kafka(ns, "no-listeners", map[string]any{"kafka": map[string]any{"version": "4.3.1"}}), true},
		{"a pool's replicas are at least 0", nodePools, nodePool(ns, "negative", "demo", map[string]any{
			"replicas": -1, "roles": []any{"broker"}, "storage": map[string]any{"type": "ephemeral"},
		}), true},
		{"a pool's role is controller or broker", nodePools, nodePool(ns, "bad-role", "demo", map[string]any{
			"replicas": 1, "roles": []any{"leader"}, "storage": map[string]any{"type": "ephemeral"},
		}), true},
	}
	for _, tc := range cases {
		err := apply(t.Context(), c, tc.gvr, tc.obj)
		switch {
		case !tc.invalid && err != nil:
			t.Errorf("%s: apply refused: %v", tc.reason, err)
		case tc.invalid && !apierrors.IsInvalid(err):
			t.Errorf("%s: apply gave %v, want 422 Invalid", tc.reason, err)
		}
	}

	// Each apply was a write request, refused ones too.
	got := env.WriteRequests(t).Since(before).Group("kafka.strimzi.io")
	want := kubetest.Writes{
		{Verb: "APPLY", Group: "kafka.strimzi.io", Resource: "kafkas"}:         2,
		{Verb: "APPLY", Group: "kafka.strimzi.io", Resource: "kafkanodepools"}: 3,
	}
	if got.String() != want.String() {
		t.Errorf("write requests to kafka.strimzi.io:\n%s\nwant:\n%s", got, want)
	}

	// The same objects applied again are written again (the API server
	// counts requests, not changes): a driver that wants no writes on a
	// resync must not send them.
	before = env.WriteRequests(t)
	if err := apply(t.Context(), c, kafkas, kafka(ns, "demo", kafkaSpec)); err != nil {
		t.Fatal(err)
	}
	if got := env.WriteRequests(t).Since(before).Group("kafka.strimzi.io").Total(); got != 1 {
		t.Errorf("an unchanged apply counted %g write requests, want 1", got)
	}
}

func TestSatelliteServiceAccountHasTheManifestsRBAC(t *testing.T) {
	env := kubetest.Start(t)
	saNS, sa := env.InstallSatelliteRBAC(t)
	if saNS != "mothership-satellite" || sa != "mothership-satellite" {
		t.Errorf("InstallSatelliteRBAC = %s/%s, want mothership-satellite/mothership-satellite", saNS, sa)
	}
	ns := env.Namespace(t)
	admin, err := dynamic.NewForConfig(env.Admin)
	if err != nil {
		t.Fatal(err)
	}
	if err := apply(t.Context(), admin, kafkas, kafka(ns, "demo", kafkaSpec)); err != nil {
		t.Fatal(err)
	}
	c, err := dynamic.NewForConfig(env.AsServiceAccount(t, saNS, sa))
	if err != nil {
		t.Fatal(err)
	}
	pvcs := schema.GroupVersionResource{Version: "v1", Resource: "persistentvolumeclaims"}
	configMaps := schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
	deployments := schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}
	pods := schema.GroupVersionResource{Version: "v1", Resource: "pods"}
	cases := []struct {
		reason    string
		do        func(context.Context) error
		forbidden bool
	}{
		{"it lists Kafkas in every namespace", func(ctx context.Context) error {
			_, err := c.Resource(kafkas).List(ctx, metav1.ListOptions{})
			return err
		}, false},
		{"it applies node pools", func(ctx context.Context) error {
			return apply(ctx, c, nodePools, nodePool(ns, "controllers", "demo", controllersSpec))
		}, false},
		{"it reads a Kafka's status", func(ctx context.Context) error {
			_, err := c.Resource(kafkas).Namespace(ns).Get(ctx, "demo", metav1.GetOptions{}, "status")
			return err
		}, false},
		{"it does not write a Kafka's status: Strimzi does", func(ctx context.Context) error {
			_, err := c.Resource(kafkas).Namespace(ns).Patch(ctx, "demo", types.MergePatchType,
				[]byte(`{"status":{"observedGeneration":1}}`), metav1.PatchOptions{}, "status")
			return err
		}, true},
		{"it manages each PKC's proxy settings", func(ctx context.Context) error {
			_, err := c.Resource(configMaps).Namespace(ns).List(ctx, metav1.ListOptions{})
			return err
		}, false},
		{"it manages each PKC's proxy Deployment", func(ctx context.Context) error {
			_, err := c.Resource(deployments).Namespace(ns).List(ctx, metav1.ListOptions{})
			return err
		}, false},
		{"it does not read pods", func(ctx context.Context) error {
			_, err := c.Resource(pods).Namespace("kube-system").List(ctx, metav1.ListOptions{})
			return err
		}, true},
		{"it deletes the volume claims of a purged cluster", func(ctx context.Context) error {
			return c.Resource(pvcs).Namespace(ns).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: "mothership.dev/pkc=pkc-gone00"})
		}, false},
		{"it does not delete other objects' claims to storage: persistent volumes", func(ctx context.Context) error {
			return c.Resource(schema.GroupVersionResource{Version: "v1", Resource: "persistentvolumes"}).Delete(ctx, "pv-0", metav1.DeleteOptions{})
		}, true},
	}
	for _, tc := range cases {
		err := tc.do(t.Context())
		switch {
		case tc.forbidden && !apierrors.IsForbidden(err):
			t.Errorf("%s: got %v, want 403 Forbidden", tc.reason, err)
		case !tc.forbidden && err != nil:
			t.Errorf("%s: %v", tc.reason, err)
		}
	}
}

func TestNamespacesAreFreshPerTest(t *testing.T) {
	env := kubetest.Start(t)
	a, b := env.Namespace(t), env.Namespace(t)
	if a == b {
		t.Errorf("two namespaces named %s", a)
	}
}
