package controlplane_test

import (
	"context"
	"crypto/x509"
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mothership-dev/mothership/internal/api"
	"github.com/mothership-dev/mothership/internal/cloud/sim"
	"github.com/mothership-dev/mothership/internal/controlplane"
	"github.com/mothership-dev/mothership/internal/controlplane/cptest"
	"github.com/mothership-dev/mothership/internal/pki"
	"github.com/mothership-dev/mothership/internal/resource"
	"github.com/mothership-dev/mothership/internal/runtime/store"
	"github.com/mothership-dev/mothership/internal/runtime/store/sqlite"
)

// apart is every service served on its own listener, as the distributed
// deployment runs them: a service reaches another only through its
// procedures over HTTP, and the satellite dials the link over TLS.
type apart struct {
	dir       string
	brokers   []string
	listeners map[string]net.Listener
	link      net.Listener
	peers     map[string]string
	sites     []controlplane.Enrollment
	roots     *x509.CertPool
	cert      pki.KeyPair
	procs     map[string]*controlplane.Process
}

func startApart(t *testing.T) (*apart, *testSystem) {
	t.Helper()
	dir := t.TempDir()
	a := &apart{dir: dir, brokers: cptest.Broker(t, dir), listeners: map[string]net.Listener{}, peers: map[string]string{}, procs: map[string]*controlplane.Process{}}
	for _, name := range controlplane.Services {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		a.listeners[name], a.peers[name] = ln, "http://"+ln.Addr().String()
	}
	var err error
	if a.link, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	site := resource.Site{Cloud: "AWS", Region: "us-west-2"}
	if a.sites, err = controlplane.Enroll(dir, []resource.Site{site}); err != nil {
		t.Fatal(err)
	}
	ca, err := pki.NewCA("test link CA")
	if err != nil {
		t.Fatal(err)
	}
	if a.cert, err = ca.Issue("127.0.0.1"); err != nil {
		t.Fatal(err)
	}
	a.roots = x509.NewCertPool()
	a.roots.AppendCertsFromPEM(ca.CertPEM)
	for _, name := range controlplane.Services {
		a.serve(t, name)
	}
	token, err := controlplane.ReadToken(filepath.Join(controlplane.SatelliteDir(dir, site), "token"))
	if err != nil {
		t.Fatal(err)
	}
	sat, err := controlplane.StartSatellite(t.Context(), controlplane.SatelliteConfig{Site: site, Dir: controlplane.SatelliteDir(dir, site),
		SyncURL: "https://" + a.link.Addr().String(), Token: token, RootCAs: a.roots, StepDelay: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sat.Agent.Stop() })
	iam := a.procs["iam"]
	sys := &controlplane.System{URL: a.peers["gateway"], Organization: iam.Organization, AdminKey: iam.AdminKey, AdminSecret: iam.AdminSecret}
	return a, &testSystem{t: t, sys: sys, dir: dir, brokers: a.brokers, key: iam.AdminKey, secret: iam.AdminSecret}
}

// serve starts (or restarts) one service on its listener.
func (a *apart) serve(t *testing.T, name string) {
	t.Helper()
	ln := a.listeners[name]
	if ln == nil { // a restart: the address is kept
		var err error
		if ln, err = net.Listen("tcp", a.peers[name][len("http://"):]); err != nil {
			t.Fatal(err)
		}
	}
	a.listeners[name] = nil
	cfg := controlplane.ServeConfig{Service: name, Listener: ln, Kafka: []kgo.Opt{kgo.SeedBrokers(a.brokers...)},
		OpenStore: func(ctx context.Context, service string, owns []string) (store.Store, error) {
			return sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(a.dir, service+".db"), Service: service, Owns: owns})
		},
		Peers: a.peers, Token: "internal-test-token", Sites: a.sites, AdminCredentials: filepath.Join(a.dir, controlplane.AdminCredentialsFile),
		Cloud: sim.Config{OperationTime: 50 * time.Millisecond}, RatePerSecond: 1e6, RateBurst: 1_000_000}
	if name == "sync" {
		cert, err := a.cert.TLSCertificate()
		if err != nil {
			t.Fatal(err)
		}
		cfg.LinkListener = a.link
		cfg.LinkTLS = controlplane.LinkTLS(cert)
	}
	p, err := controlplane.Serve(t.Context(), cfg)
	if err != nil {
		t.Fatalf("serve %s: %v", name, err)
	}
	a.procs[name] = p
	t.Cleanup(func() { _ = p.Stop() })
}

func TestServicesServedApartConverge(t *testing.T) {
	a, s := startApart(t)
	c := s.cluster(s.environment("prod"), "orders", "AWS", "us-west-2", "Dedicated", 1)
	c = s.waitCluster(c.ID, "PROVISIONED", provisioned)

	// A refusal made by a service behind the gateway reaches the client
	// whole: kafka's check (which asks sync) and its pointer.
	var refusal api.ErrorBody
	if code := s.do("POST", "/cmk/v2/clusters", map[string]any{"spec": map[string]any{"display_name": "x", "cloud": "AWS",
		"region": "mars-1", "config": map[string]any{"kind": "Basic"}, "environment": map[string]any{"id": c.Spec.Environment.ID}}}, &refusal); code != http.StatusUnprocessableEntity ||
		len(refusal.Errors) != 1 || refusal.Errors[0].Source == nil || refusal.Errors[0].Source.Pointer != "/spec/region" {
		t.Fatalf("a cluster in an unserved region: %d %+v; want kafka's 422 pointing at /spec/region", code, refusal)
	}

	// Resize, and restart pkc in the middle of it: the resize completes.
	if code := s.do("PATCH", "/cmk/v2/clusters/"+c.ID, map[string]any{"spec": map[string]any{"config": map[string]any{"kind": "Dedicated", "cku": 2}}}, nil); code != http.StatusOK {
		t.Fatalf("resize: %d", code)
	}
	if err := a.procs["pkc"].Stop(); err != nil {
		t.Fatal(err)
	}
	a.serve(t, "pkc")
	c = s.waitCluster(c.ID, "resized to 2 CKU", func(c api.Cluster) bool { return provisioned(c) && c.Status.CKU == 2 })

	if code := s.do("DELETE", "/cmk/v2/clusters/"+c.ID, nil, nil); code != http.StatusNoContent {
		t.Fatalf("delete: %d", code)
	}
	waitFor(t, "the cluster to be gone", func() bool { return s.do("GET", "/cmk/v2/clusters/"+c.ID, nil, nil) == http.StatusNotFound })
}
