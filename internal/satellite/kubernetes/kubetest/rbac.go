package kubetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"
)

// ManifestDir is the directory of the satellite's deployment manifests,
// relative to the repository.
const ManifestDir = "deploy/kubernetes/satellite"

// The manifests InstallSatelliteRBAC applies: the namespace, then the
// ServiceAccount, ClusterRole and ClusterRoleBinding.
var rbacManifests = []string{"00-namespace.yaml", "10-rbac.yaml"}

// InstallSatelliteRBAC applies the satellite's namespace, ServiceAccount,
// ClusterRole and ClusterRoleBinding from the deployment manifests
// themselves (ManifestDir), once a control plane, waits until the API
// server authorizes by them, and returns the ServiceAccount's namespace and
// name: pass them to AsServiceAccount to act as the satellite does in a
// real cluster.
func (e *Env) InstallSatelliteRBAC(tb testing.TB) (namespace, serviceAccount string) {
	tb.Helper()
	e.rbacOnce.Do(func() {
		ctx, cancel := context.WithTimeout(tb.Context(), time.Minute)
		defer cancel()
		e.rbacNS, e.rbacSA, e.rbacErr = e.installRBAC(ctx)
	})
	if e.rbacErr != nil {
		tb.Fatalf("kubetest: install the satellite's RBAC: %v", e.rbacErr)
	}
	return e.rbacNS, e.rbacSA
}

func (e *Env) installRBAC(ctx context.Context) (ns, sa string, err error) {
	var role *rbacv1.ClusterRole
	for _, name := range rbacManifests {
		objs, err := e.applyFile(ctx, filepath.Join(e.root, ManifestDir, name), false)
		if err != nil {
			return "", "", err
		}
		for _, obj := range objs {
			switch obj.GetKind() {
			case "ServiceAccount":
				if sa != "" {
					return "", "", fmt.Errorf("more than one ServiceAccount in %v", rbacManifests)
				}
				ns, sa = obj.GetNamespace(), obj.GetName()
			case "ClusterRole":
				role = new(rbacv1.ClusterRole)
				if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, role); err != nil {
					return "", "", err
				}
			}
		}
	}
	if sa == "" || role == nil {
		return "", "", fmt.Errorf("%v hold no ServiceAccount or no ClusterRole", rbacManifests)
	}
	// The authorizer learns of new roles and bindings from a watch: wait
	// until it allows each of the role's rules.
	user := "system:serviceaccount:" + ns + ":" + sa
	var denied string
	err = wait.PollUntilContextCancel(ctx, 50*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		for _, rule := range role.Rules {
			if len(rule.Verbs) == 0 || len(rule.APIGroups) == 0 || len(rule.Resources) == 0 {
				continue // a rule on non-resource URLs
			}
			attrs := &authorizationv1.ResourceAttributes{Verb: rule.Verbs[0], Group: rule.APIGroups[0]}
			attrs.Resource, attrs.Subresource, _ = strings.Cut(rule.Resources[0], "/")
			sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{User: user, ResourceAttributes: attrs}}
			got, err := e.client.AuthorizationV1().SubjectAccessReviews().Create(ctx, sar, metav1.CreateOptions{})
			if err != nil {
				return false, err
			}
			if !got.Status.Allowed {
				denied = fmt.Sprintf("%s %s", attrs.Verb, rule.Resources[0])
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		return "", "", fmt.Errorf("%s is still refused %s: %w", user, denied, err)
	}
	return ns, sa, nil
}

// applyFile applies the objects of a YAML file as admin, with server-side
// apply (only a dry run if dryRun), and returns them.
func (e *Env) applyFile(ctx context.Context, path string, dryRun bool) ([]*unstructured.Unstructured, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	objs, err := decodeManifests(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	dc, err := discovery.NewDiscoveryClientForConfig(e.Admin)
	if err != nil {
		return nil, err
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))
	dyn, err := dynamic.NewForConfig(e.Admin)
	if err != nil {
		return nil, err
	}
	opts := metav1.PatchOptions{FieldManager: "kubetest", Force: new(true)}
	if dryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	for _, obj := range objs {
		gvk := obj.GroupVersionKind()
		m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			return nil, fmt.Errorf("%s: %s %s: %w", path, gvk.Kind, obj.GetName(), err)
		}
		b, err := obj.MarshalJSON()
		if err != nil {
			return nil, err
		}
		r := dyn.Resource(m.Resource).Namespace(obj.GetNamespace())
		if _, err := r.Patch(ctx, obj.GetName(), types.ApplyPatchType, b, opts); err != nil {
			return nil, fmt.Errorf("%s: apply %s %s: %w", path, gvk.Kind, obj.GetName(), err)
		}
	}
	return objs, nil
}

// decodeManifests splits a YAML stream into its objects.
func decodeManifests(b []byte) ([]*unstructured.Unstructured, error) {
	var out []*unstructured.Unstructured
	d := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(b), 4096)
	for {
		obj := &unstructured.Unstructured{}
		err := d.Decode(&obj.Object)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		if len(obj.Object) == 0 {
			continue // an empty document
		}
		out = append(out, obj)
	}
}
