// Package kubetest runs a real Kubernetes API server for tests: the
// kube-apiserver and etcd that ./test.sh builds (it sets
// KUBEBUILDER_ASSETS to their directory), started by controller-runtime's
// envtest with RBAC authorization on and Strimzi's CRDs installed, so that
// every object a test writes is validated by the real schema and
// server-side apply really merges.
//
// A test binary starts one control plane, on first use, and stops it when
// its tests end: call Main from TestMain. Each test takes a namespace of
// its own (Env.Namespace). No kube-controller-manager runs: nothing is
// garbage-collected and a deleted namespace stays Terminating.
//
// Missing binaries fail the test rather than skip it: a silent skip would
// hide the gap in CI.
package kubetest

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// Env is the test binary's running control plane.
type Env struct {
	// Admin is the API server's administrator (group system:masters),
	// whom authorization never refuses. Tests of code that runs as the
	// satellite use AsServiceAccount instead.
	Admin *rest.Config

	env    *envtest.Environment
	client kubernetes.Interface
	root   string // the repository, for its manifests

	rbacOnce       sync.Once // InstallSatelliteRBAC's
	rbacNS, rbacSA string
	rbacErr        error

	// front is the proxy in front of a control plane of a test's own
	// (StartOwn), nil for the shared one.
	front *front
}

// The one control plane of this test binary.
var (
	shared      *Env
	sharedErr   error
	sharedOnce  sync.Once
	mainRunning bool
)

// Main runs the tests of a binary that uses Start, then stops the control
// plane if one was started: call it from TestMain.
func Main(m *testing.M) {
	mainRunning = true
	code := m.Run()
	if shared != nil {
		if err := shared.env.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "kubetest: stopping the control plane: %v\n", err)
			if code == 0 {
				code = 1
			}
		}
	}
	os.Exit(code)
}

// Start returns the test binary's control plane, starting it on first use
// (a few seconds). It fails the test if the binaries are missing or the
// binary's TestMain does not call Main, which stops the processes.
func Start(tb testing.TB) *Env {
	tb.Helper()
	if !mainRunning {
		tb.Fatal("kubetest: the test binary must run its tests with kubetest.Main (func TestMain(m *testing.M) { kubetest.Main(m) }), which stops the API server and etcd after them")
	}
	sharedOnce.Do(func() { shared, sharedErr = start() })
	if sharedErr != nil {
		tb.Fatalf("kubetest: %v", sharedErr)
	}
	return shared
}

// StartOwn starts a control plane for the calling test alone, stopped
// when it ends: for a test that restarts the API server
// (RestartAPIServer), which would break the shared one's other tests.
// Its Admin reaches the API server through a proxy of the test's that
// follows it across restarts, as a real cluster's address does.
func StartOwn(tb testing.TB) *Env {
	tb.Helper()
	e, err := start()
	if err != nil {
		tb.Fatalf("kubetest: %v", err)
	}
	f, err := newFront(e.Admin)
	if err != nil {
		tb.Fatalf("kubetest: %v", errors.Join(err, e.env.Stop()))
	}
	e.front = f
	e.Admin = f.config()
	if e.client, err = kubernetes.NewForConfig(e.Admin); err != nil {
		tb.Fatalf("kubetest: %v", errors.Join(err, e.env.Stop()))
	}
	tb.Cleanup(func() {
		f.close()
		if err := e.env.Stop(); err != nil {
			tb.Errorf("kubetest: stopping the control plane: %v", err)
		}
	})
	return e
}

// RestartAPIServer stops the API server of a control plane from StartOwn
// and starts it again on the same port, etcd and all it holds kept. In
// between, every request fails as it does while a real API server
// restarts, and watches end; clients of Admin (or of AsServiceAccount)
// then reach the new process without being made again.
func (e *Env) RestartAPIServer(tb testing.TB) {
	tb.Helper()
	if e.front == nil {
		tb.Fatal("kubetest: RestartAPIServer needs a control plane of the test's own (StartOwn)")
	}
	// The proxied watches end with the process, as they do when a real
	// API server stops (else it waits for them).
	e.front.set(nil)
	e.front.srv.CloseClientConnections()
	api := e.env.ControlPlane.GetAPIServer()
	if err := api.Stop(); err != nil {
		tb.Fatalf("kubetest: stop the API server: %v", err)
	}
	if err := api.Start(); err != nil {
		tb.Fatalf("kubetest: start the API server again: %v", err)
	}
	// The new process has new certificates: the proxy needs a new
	// administrator.
	user, err := e.env.ControlPlane.AddUser(envtest.User{Name: "admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		tb.Fatalf("kubetest: the administrator of the restarted API server: %v", err)
	}
	if err := e.front.set(user.Config()); err != nil {
		tb.Fatalf("kubetest: %v", err)
	}
}

// assetsHint is what to do when the binaries are missing.
const assetsHint = "run the tests with ./test.sh, which builds kube-apiserver and etcd once a machine (about 9 minutes) and sets KUBEBUILDER_ASSETS to their directory"

func start() (*Env, error) {
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		return nil, fmt.Errorf("KUBEBUILDER_ASSETS is not set: %s", assetsHint)
	}
	for _, bin := range []string{"kube-apiserver", "etcd"} {
		if _, err := os.Stat(filepath.Join(assets, bin)); err != nil {
			return nil, fmt.Errorf("KUBEBUILDER_ASSETS=%s has no %s (%v): %s", assets, bin, err, assetsHint)
		}
	}
	root, err := repoRoot()
	if err != nil {
		return nil, err
	}
	crds, err := filepath.Glob(filepath.Join(root, CRDDir, "04*-Crd-*.yaml"))
	if err != nil || len(crds) == 0 {
		return nil, fmt.Errorf("no Strimzi CRD files (04*-Crd-*.yaml) in %s", filepath.Join(root, CRDDir))
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory: assets,
		CRDInstallOptions:     envtest.CRDInstallOptions{Paths: crds, ErrorIfPathMissing: true},
		ErrorIfCRDPathMissing: true,
		// The defaults (20s) are short for a busy 2-core machine.
		ControlPlaneStartTimeout: time.Minute,
		ControlPlaneStopTimeout:  30 * time.Second,
	}
	env.ControlPlane.GetAPIServer().Configure().Set("authorization-mode", "RBAC")
	admin, err := env.Start()
	if err != nil {
		// Start may fail after starting the processes: stop what runs.
		return nil, errors.Join(fmt.Errorf("start the control plane: %w", err), env.Stop())
	}
	client, err := kubernetes.NewForConfig(admin)
	if err != nil {
		return nil, errors.Join(err, env.Stop())
	}
	return &Env{Admin: admin, env: env, client: client, root: root}, nil
}

// CRDDir is the directory of Strimzi's CRDs, relative to the repository.
const CRDDir = "internal/satellite/kubernetes/strimzi/crds"

// repoRoot is the directory of this module's go.mod, found from the test's
// working directory (its package's directory) upwards.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && regexp.MustCompile(`(?m)^module github\.com/mothership-dev/mothership\s*$`).Match(b) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("the repository's go.mod not found above the working directory")
		}
		dir = parent
	}
}

// AsServiceAccount returns a configuration that acts as the ServiceAccount
// name in namespace ns (the admin impersonating it, with its groups), so
// that RBAC decides what it may do as it would for a pod running as it.
func (e *Env) AsServiceAccount(tb testing.TB, ns, name string) *rest.Config {
	tb.Helper()
	cfg := rest.CopyConfig(e.Admin)
	cfg.Impersonate = rest.ImpersonationConfig{
		UserName: "system:serviceaccount:" + ns + ":" + name,
		Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"},
	}
	return cfg
}

// KubeconfigFile writes a kubeconfig of the administrator to a file of
// the test's and returns its path, for a process that takes --kubeconfig.
func (e *Env) KubeconfigFile(tb testing.TB) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, e.env.KubeConfig, 0o600); err != nil {
		tb.Fatalf("kubetest: kubeconfig: %v", err)
	}
	return path
}

// Namespace creates a namespace for the calling test, named after it and
// unique in the control plane. It is not deleted: without a controller
// manager a deleted namespace would only stay Terminating, and the control
// plane goes with the test binary.
func (e *Env) Namespace(tb testing.TB) string {
	tb.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name:   namespaceName(tb.Name()),
		Labels: map[string]string{"kubetest.mothership.dev/test": "true"},
	}}
	if _, err := e.client.CoreV1().Namespaces().Create(tb.Context(), ns, metav1.CreateOptions{}); err != nil {
		tb.Fatalf("kubetest: create namespace %s: %v", ns.Name, err)
	}
	return ns.Name
}

// namespaceName is a DNS label from the test's name and a random suffix.
func namespaceName(test string) string {
	name := strings.Trim(regexp.MustCompile(`[^a-z0-9]+`).ReplaceAllString(strings.ToLower(test), "-"), "-")
	if len(name) > 48 {
		name = strings.TrimRight(name[:48], "-")
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	if name == "" {
		name = "test"
	}
	return name + "-" + hex.EncodeToString(b)
}
