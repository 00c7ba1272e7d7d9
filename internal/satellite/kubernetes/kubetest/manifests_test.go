package kubetest

import (
	"path/filepath"
	"testing"
)

// Every object of the deployment manifests is one the API server accepts
// (a server-side dry run after the namespace exists), so a typo in a field
// of the Deployment fails here and not at a user's kubectl apply.
func TestDeployManifestsAreValidObjects(t *testing.T) {
	env := Start(t)
	env.InstallSatelliteRBAC(t) // the namespace, which the dry runs need
	files, err := filepath.Glob(filepath.Join(env.root, ManifestDir, "*.yaml"))
	if err != nil || len(files) < 5 {
		t.Fatalf("manifests in %s: %v, %v", ManifestDir, files, err)
	}
	kinds := map[string]bool{}
	for _, f := range files {
		objs, err := env.applyFile(t.Context(), f, true)
		if err != nil {
			t.Errorf("%v", err)
		}
		for _, o := range objs {
			kinds[o.GetKind()] = true
		}
	}
	for _, k := range []string{"Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "ConfigMap", "PersistentVolumeClaim", "Deployment", "Service"} {
		if !kinds[k] {
			t.Errorf("the manifests have no %s", k)
		}
	}
}
