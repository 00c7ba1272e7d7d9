package kubernetes

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"reflect"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
)

// annotationApplied is the hash of what the driver last applied to an
// object. With it, a field the driver stops setting is noticed (the
// object then differs from what was applied) although what is left is
// still in the live object.
const annotationApplied = "mothership.dev/applied"

// ensure applies want with server-side apply, as the driver's own field
// manager, unless have (the live object, nil if none) already holds
// everything want says and was applied from the same want: a resync with
// nothing changed writes nothing, and an object edited or deleted out of
// band is written again. It returns the object as it is now.
func (d *Driver) ensure(ctx context.Context, gvr schema.GroupVersionResource, want, have *unstructured.Unstructured) (*unstructured.Unstructured, error) {
	setLabel(want, LabelSite, siteLabel(d.cfg.SiteName))
	sum, err := appliedHash(want)
	if err != nil {
		return nil, err
	}
	setAnnotation(want, annotationApplied, sum)
	if have != nil && contains(have.Object, want.Object) {
		return have, nil
	}
	body, err := json.Marshal(want.Object)
	if err != nil {
		return nil, fmt.Errorf("%s %s/%s: %w", want.GetKind(), want.GetNamespace(), want.GetName(), err)
	}
	force := true
	got, err := d.resource(gvr, want.GetNamespace()).Patch(ctx, want.GetName(), types.ApplyPatchType, body,
		metav1.PatchOptions{FieldManager: ManagedBy, Force: &force})
	if err != nil {
		return nil, fmt.Errorf("apply %s %s/%s: %w", want.GetKind(), want.GetNamespace(), want.GetName(), err)
	}
	d.writes.WithLabelValues(want.GetKind()).Inc()
	return got, nil
}

// appliedHash is the hash of want without the annotation that holds it.
func appliedHash(want *unstructured.Unstructured) (string, error) {
	c := want.DeepCopy()
	a := c.GetAnnotations()
	delete(a, annotationApplied)
	c.SetAnnotations(a)
	b, err := json.Marshal(c.Object)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8]), nil
}

// contains reports whether have holds every field of want with the same
// value: maps key by key, lists item by item. Fields only have holds (the
// status, defaults, other managers' fields) do not matter.
func contains(have, want any) bool {
	switch w := want.(type) {
	case map[string]any:
		h, ok := have.(map[string]any)
		if !ok {
			return false
		}
		for k, v := range w {
			hv, ok := h[k]
			if !ok || !contains(hv, v) {
				return false
			}
		}
		return true
	case []any:
		h, ok := have.([]any)
		if !ok || len(h) != len(w) {
			return false
		}
		for i := range w {
			if !contains(h[i], w[i]) {
				return false
			}
		}
		return true
	}
	if wn, ok := number(want); ok {
		hn, ok := number(have)
		return ok && hn == wn
	}
	return reflect.DeepEqual(have, want)
}

func number(v any) (float64, bool) {
	switch n := v.(type) {
	case int64:
		return float64(n), true
	case int:
		return float64(n), true
	case int32:
		return float64(n), true
	case float64:
		return n, true
	}
	return 0, false
}

// remove deletes an object the driver made; one already gone is no error.
func (d *Driver) remove(ctx context.Context, gvr schema.GroupVersionResource, u *unstructured.Unstructured) error {
	if u.GetLabels()[LabelManagedBy] != ManagedBy {
		return fmt.Errorf("%s %s/%s was not made by the satellite: left alone", u.GetKind(), u.GetNamespace(), u.GetName())
	}
	err := d.resource(gvr, u.GetNamespace()).Delete(ctx, u.GetName(), metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete %s %s/%s: %w", u.GetKind(), u.GetNamespace(), u.GetName(), err)
	}
	d.writes.WithLabelValues(u.GetKind()).Inc()
	return nil
}
