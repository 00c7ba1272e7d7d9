// Package embedded is the satellite driver that realizes each PKC as a
// real Kafka-protocol cluster inside the agent's process: franz-go's kfake
// with as many brokers as the PKC has, persisted under the satellite's data
// dir, with SASL/SCRAM users and ACLs from the PKC's tenants. Any Kafka
// client can produce and consume on the bootstrap endpoint it reports.
package embedded

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mothership-dev/mothership/internal/runtime/atomicfile"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/mothership-dev/mothership/internal/kafkaversion"
	"github.com/mothership-dev/mothership/internal/resource"
	"github.com/mothership-dev/mothership/internal/runtime/kafkalisten"
	"github.com/mothership-dev/mothership/internal/satellite/kafkarest"
	"github.com/mothership-dev/mothership/internal/satellite/tenants"
	"github.com/mothership-dev/mothership/internal/sitekey"
)

// adminUser is the driver's own superuser on every cluster it runs.
const adminUser = "mothership-satellite"

// Config configures the driver.
type Config struct {
	// DataDir holds one directory per PKC.
	DataDir string
	// StepDelay is how long adding or removing one broker takes (default
	// 100ms), so that a resize takes time as it does on a real site.
	StepDelay time.Duration
	// AutoCreateTopics lets clients create topics by producing to them.
	AutoCreateTopics bool
	// SiteKey opens the SCRAM credentials sealed to this satellite.
	SiteKey sitekey.PrivateKey
	// TLS is the server side of every cluster's endpoint (a certificate
	// from the installation's CA); nil serves plaintext, which only a
	// development setup asks for. RootCAs is what the driver's own admin
	// client trusts the endpoints with.
	TLS     *tls.Config
	RootCAs *x509.CertPool

	// Meter, if set, is told of every client's network bytes, by the
	// cluster (LKC) its key belongs to.
	Meter func(cluster string, in, out int64)
	// Sample, if set, is told every SampleEvery (default
	// DefaultSampleEvery) what each cluster (LKC) stores, once and not
	// per replica, and how many partitions it has.
	Sample      func(cluster string, storedBytes int64, partitions int)
	SampleEvery time.Duration
	Logger      *slog.Logger
	Registerer  prometheus.Registerer
}

// Driver runs PKCs as kfake clusters.
type Driver struct {
	cfg Config
	log *slog.Logger

	mu       sync.Mutex
	clusters map[string]*cluster

	brokersAdded, brokersRemoved prometheus.Counter

	// stopSampling ends the sampling loop (Config.Sample), once.
	stopSampling chan struct{}
	stopOnce     sync.Once
}

// cluster is one running PKC.
type cluster struct {
	id    string
	dir   string
	kc    *kfake.Cluster
	admin *kgo.Client
	meta  meta
	// applied is the tenant part of the spec last applied, to skip
	// re-applying users and ACLs that did not change.
	applied string
	// stop ends the topic persister.
	stop func()
	// door is what the cluster's front door knows of its tenants.
	door *kafkalisten.Tenants
	// tenants are the tenants last applied, for the sampling loop, which
	// runs beside Apply.
	tenants atomic.Pointer[map[string]resource.Tenant]
}

// meta is what a PKC keeps on disk beside the broker's own state, so that a
// restart serves the same endpoint with the same credentials.
type meta struct {
	AdminPassword string `json:"admin_password"`
	Ports         []int  `json:"ports"`
	// Version is the Kafka version the brokers run; MetadataVersion the
	// metadata version finalized, which no older broker can read.
	Version         string `json:"version,omitempty"`
	MetadataVersion string `json:"metadata_version,omitempty"`
}

// ceilings are the API versions each Kafka release serves: the brokers
// run a release by answering ApiVersions, and every request, at its
// ceiling, as franz-go's kversion tables give them.
var ceilings = map[string]func() *kversion.Versions{
	"3.9.0": kversion.V3_9_0, "4.0.0": kversion.V4_0_0, "4.1.0": kversion.V4_1_0,
	"4.2.0": kversion.V4_2_0, "4.3.0": kversion.V4_3_0,
}

// New returns a driver.
func New(cfg Config) (*Driver, error) {
	if cfg.DataDir == "" || cfg.SiteKey == (sitekey.PrivateKey{}) {
		return nil, errors.New("embedded: DataDir and SiteKey are required")
	}
	cfg.StepDelay = cmp.Or(cfg.StepDelay, 100*time.Millisecond)
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	d := &Driver{cfg: cfg, log: cfg.Logger, clusters: map[string]*cluster{},
		brokersAdded: prometheus.NewCounter(prometheus.CounterOpts{Name: "mothership_satellite_brokers_added_total",
			Help: "Brokers the embedded driver added to its clusters."}),
		brokersRemoved: prometheus.NewCounter(prometheus.CounterOpts{Name: "mothership_satellite_brokers_removed_total",
			Help: "Brokers the embedded driver removed from its clusters (a shrink)."}),
	}
	if cfg.Registerer != nil {
		for _, c := range []prometheus.Collector{d.brokersAdded, d.brokersRemoved} {
			if err := cfg.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("embedded: metrics: %w", err)
			}
		}
	}
	if cfg.Sample != nil {
		d.cfg.SampleEvery = cmp.Or(cfg.SampleEvery, DefaultSampleEvery)
		d.stopSampling = make(chan struct{})
		go d.sampleLoop(d.stopSampling)
	}
	return d, nil
}

// Added returns how many brokers were added so far.
func (d *Driver) Added() float64 { return counterValue(d.brokersAdded) }

// Removed returns how many brokers were removed so far: a shrink.
func (d *Driver) Removed() float64 { return counterValue(d.brokersRemoved) }

// Apply realizes a PKC: it starts its cluster if needed, restarts its
// brokers from their data at another Kafka version, adds or removes
// brokers one step at a time, and sets its SASL users and ACLs.
func (d *Driver) Apply(ctx context.Context, id string, item resource.BundleItem, progress func(resource.Realized)) (resource.Realized, error) {
	if item.Kind != resource.KindPKC {
		return resource.Realized{Generation: item.Generation, Phase: resource.PhaseProvisioned}, nil
	}
	spec, err := resource.Decode[resource.PKCSpec](item.Spec)
	if err != nil {
		return resource.Realized{}, err
	}
	version := cmp.Or(spec.Version, kafkaversion.Newest(kafkaversion.Embedded).Version)
	if _, ok := ceilings[version]; !ok {
		return resource.Realized{Generation: item.Generation, Phase: resource.PhaseFailed, Reason: "UNSUPPORTED_VERSION",
			Message: fmt.Sprintf("Kafka %s is not a version the embedded driver runs (it runs %s)", version, releases())}, nil
	}
	want := max(spec.Brokers, 1)
	c, err := d.cluster(id, want, version)
	if err != nil {
		return resource.Realized{}, err
	}
	realized := func(phase, msg string) resource.Realized {
		gen := item.Generation
		if phase == resource.PhaseProvisioning {
			gen-- // not realized yet: report the generation before
		}
		return resource.Realized{Generation: gen, Phase: phase, Message: msg,
			Detail: resource.Encode(resource.PKCRealized{Brokers: len(c.meta.Ports), BootstrapEndpoint: d.endpoint(c), RESTEndpoint: d.restEndpoint(c),
				Version: c.meta.Version, MetadataVersion: c.meta.MetadataVersion})}
	}
	if floor := kafkaversion.MetadataRelease(c.meta.MetadataVersion); kafkaversion.Compare(version, floor) < 0 {
		r := realized(resource.PhaseFailed, fmt.Sprintf("cannot run Kafka %s: metadata version %s is finalized, and no broker older than %s reads it",
			version, c.meta.MetadataVersion, floor))
		r.Reason = "METADATA_VERSION_FINALIZED"
		return r, nil
	}
	if c.meta.Version != version {
		progress(realized(resource.PhaseProvisioning, fmt.Sprintf("upgrading: restarting %d brokers from their data at Kafka %s", len(c.meta.Ports), version)))
		if c, err = d.restart(c, want, version); err != nil {
			return resource.Realized{}, fmt.Errorf("pkc %s: run Kafka %s: %w", id, version, err)
		}
		// The restarted brokers' door knows the tenants at once: clients
		// reconnecting must not be refused while the rest of the change
		// is applied.
		if err := d.tenants(ctx, c, spec); err != nil {
			return resource.Realized{}, fmt.Errorf("pkc %s: tenants: %w", id, err)
		}
	}
	if mv := spec.MetadataVersion; mv != "" && mv != c.meta.MetadataVersion {
		if err := d.finalize(c, version, mv); err != nil {
			r := realized(resource.PhaseFailed, err.Error())
			r.Reason = "INVALID_METADATA_VERSION"
			return r, nil
		}
	}
	for len(c.meta.Ports) != want {
		progress(realized(resource.PhaseProvisioning, fmt.Sprintf("resizing: %d of %d brokers", len(c.meta.Ports), want)))
		if err := sleep(ctx, d.cfg.StepDelay); err != nil {
			return resource.Realized{}, err
		}
		if err := d.step(c, want); err != nil {
			return resource.Realized{}, fmt.Errorf("pkc %s: resize: %w", id, err)
		}
	}
	if err := d.tenants(ctx, c, spec); err != nil {
		return resource.Realized{}, fmt.Errorf("pkc %s: tenants: %w", id, err)
	}
	return realized(resource.PhaseProvisioned, ""), nil
}

// releases names the versions the driver runs, for messages.
func releases() string {
	var vs []string
	for _, r := range kafkaversion.Releases(kafkaversion.Embedded) {
		vs = append(vs, r.Version)
	}
	return strings.Join(vs, ", ")
}

// restart stops a cluster's brokers and starts them again from their data
// at version: the same ports, users, ACLs, topics and records.
func (d *Driver) restart(c *cluster, want int, version string) (*cluster, error) {
	d.mu.Lock()
	delete(d.clusters, c.id)
	d.mu.Unlock()
	c.close()
	c.meta.Version = version
	if err := saveMeta(c.dir, c.meta); err != nil {
		return nil, err
	}
	d.log.Info("kafka cluster restarting at another version", "pkc", c.id, "version", version)
	return d.cluster(c.id, want, version)
}

// finalize moves the cluster's metadata version to mv, the second step of
// an upgrade: from then on no older broker can run the cluster.
func (d *Driver) finalize(c *cluster, version, mv string) error {
	r, ok := kafkaversion.Lookup(version)
	if !ok || kafkaversion.Compare(mv, r.Metadata) > 0 {
		return fmt.Errorf("metadata version %s is newer than Kafka %s supports (%s)", mv, version, r.Metadata)
	}
	if kafkaversion.Compare(mv, c.meta.MetadataVersion) < 0 {
		return fmt.Errorf("metadata version %s is finalized and cannot go back to %s", c.meta.MetadataVersion, mv)
	}
	c.meta.MetadataVersion = mv
	if err := saveMeta(c.dir, c.meta); err != nil {
		return err
	}
	d.log.Info("kafka metadata version finalized", "pkc", c.id, "metadata_version", mv)
	return nil
}

// restEndpoint is where Kafka REST v3 is served: the same address as the
// Kafka clients', over HTTPS when they have TLS.
func (d *Driver) restEndpoint(c *cluster) string {
	b, _, _ := strings.Cut(c.bootstrap(), ",")
	if b == "" {
		return ""
	}
	if d.cfg.TLS != nil {
		return "https://" + b
	}
	return "http://" + b
}

// endpoint is the bootstrap endpoint clients are given: with TLS, the
// protocol says so (SASL_SSL); a plaintext endpoint is host:port alone,
// which the API shows as SASL_PLAINTEXT.
func (d *Driver) endpoint(c *cluster) string {
	b := c.bootstrap()
	if b != "" && d.cfg.TLS != nil {
		return "SASL_SSL://" + b
	}
	return b
}

func (c *cluster) bootstrap() string {
	if len(c.meta.Ports) == 0 {
		return ""
	}
	return fmt.Sprintf("127.0.0.1:%d", c.meta.Ports[0])
}

// step adds or removes one broker toward want. Node ids equal positions in
// meta.Ports: the first broker (the bootstrap) is never removed.
func (d *Driver) step(c *cluster, want int) error {
	n := len(c.meta.Ports)
	if n < want {
		_, port, err := c.kc.AddNode(int32(n), 0)
		if err != nil {
			return err
		}
		c.meta.Ports = append(c.meta.Ports, port)
		d.brokersAdded.Inc()
	} else {
		if err := c.kc.RemoveNode(int32(n - 1)); err != nil {
			return err
		}
		c.meta.Ports = c.meta.Ports[:n-1]
		d.brokersRemoved.Inc()
	}
	return saveMeta(c.dir, c.meta)
}

// cluster returns the running cluster of id, started from disk or new;
// version is the Kafka version a cluster not running yet starts at.
func (d *Driver) cluster(id string, want int, version string) (*cluster, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if c, ok := d.clusters[id]; ok {
		return c, nil
	}
	dir := filepath.Join(d.cfg.DataDir, id)
	m, err := loadMeta(dir)
	if err != nil {
		return nil, err
	}
	if m.Version == "" {
		// A new cluster, or one from before versions: it runs the
		// version asked for, its metadata finalized at it.
		r, _ := kafkaversion.Lookup(version)
		m.Version, m.MetadataVersion = version, r.Metadata
		if len(m.Ports) > 0 {
			if err := saveMeta(dir, m); err != nil {
				return nil, err
			}
		}
	}
	ceiling, ok := ceilings[m.Version]
	if !ok {
		return nil, fmt.Errorf("pkc %s: Kafka %s is not a version the embedded driver runs", id, m.Version)
	}
	door := kafkalisten.NewTenants(adminUser)
	// Kafka REST v3 is served on the same endpoint; its requests sign in
	// through the door as their callers.
	var kc *kfake.Cluster
	var restAdmin atomic.Pointer[kadm.Client]
	rest := kafkarest.New(kafkarest.Config{Keys: door, Admin: restAdmin.Load, HTTPS: d.cfg.TLS != nil, Kafka: func() []kgo.Opt {
		opts := []kgo.Opt{kgo.SeedBrokers(kc.ListenAddrs()...)}
		if d.cfg.TLS != nil {
			opts = append(opts, kgo.DialTLSConfig(&tls.Config{RootCAs: d.cfg.RootCAs, MinVersion: tls.VersionTLS12}))
		}
		return opts
	}})
	opts := []kfake.Opt{
		kfake.DataDir(filepath.Join(dir, "kafka")), kfake.ClusterID(id),
		kfake.ListenFn(kafkalisten.FrontDoor(kafkalisten.FrontDoorConfig{TLS: d.cfg.TLS, Tenants: door, REST: rest, Meter: d.cfg.Meter, Logger: d.log.With("pkc", id)})),
		kfake.EnableSASL(), kfake.EnableACLs(),
		kfake.Superuser("SCRAM-SHA-512", adminUser, m.AdminPassword),
		kfake.MaxVersions(ceiling()),
	}
	if d.cfg.AutoCreateTopics {
		opts = append(opts, kfake.AllowAutoTopicCreation())
	}
	if len(m.Ports) > 0 {
		opts = append(opts, kfake.Ports(m.Ports...))
	} else {
		opts = append(opts, kfake.NumBrokers(1))
	}
	kc, err = kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("pkc %s: start: %w", id, err)
	}
	if len(m.Ports) == 0 {
		for _, addr := range kc.ListenAddrs() {
			var port int
			if _, err := fmt.Sscanf(addr[len("127.0.0.1:"):], "%d", &port); err != nil {
				kc.Close()
				return nil, fmt.Errorf("pkc %s: listen address %q: %w", id, addr, err)
			}
			m.Ports = append(m.Ports, port)
		}
		if err := saveMeta(dir, m); err != nil {
			kc.Close()
			return nil, err
		}
	}
	adminOpts := []kgo.Opt{kgo.SeedBrokers(kc.ListenAddrs()...), kgo.ClientID(kafkalisten.AdminClientID),
		kgo.SASL(scram.Auth{User: adminUser, Pass: m.AdminPassword}.AsSha512Mechanism())}
	if d.cfg.TLS != nil {
		adminOpts = append(adminOpts, kgo.DialTLSConfig(&tls.Config{RootCAs: d.cfg.RootCAs, MinVersion: tls.VersionTLS12}))
	}
	admin, err := kgo.NewClient(adminOpts...)
	if err != nil {
		kc.Close()
		return nil, err
	}
	ctx, stop := context.WithCancel(context.Background())
	restAdmin.Store(kadm.NewClient(admin))
	c := &cluster{id: id, dir: dir, kc: kc, admin: admin, meta: m, stop: stop, door: door}
	go c.persistTopics(ctx, d.log)
	d.clusters[id] = c
	d.log.Info("kafka cluster started", "pkc", id, "brokers", len(m.Ports), "bootstrap", c.bootstrap(), "wanted", want)
	return c, nil
}

// tenants sets the cluster's SASL users and their ACLs, unless they are
// what was applied last.
func (d *Driver) tenants(ctx context.Context, c *cluster, spec resource.PKCSpec) error {
	key, _ := json.Marshal(spec.Tenants)
	if string(key) == c.applied {
		return nil
	}
	// The door learns a new key before the broker does: a key signed in
	// is always one the door maps.
	c.door.Set(tenants.Door(spec.Tenants))
	if err := tenants.Apply(ctx, c.admin, d.cfg.SiteKey, adminUser, spec.Tenants); err != nil {
		return err
	}
	c.applied = string(key)
	ts := spec.Tenants
	c.tenants.Store(&ts)
	return nil
}

// Stop stops a PKC's cluster and keeps its data: its brokers' logs, its
// ports and its tenants' topics, for a restore.
func (d *Driver) Stop(_ context.Context, id string) error {
	d.mu.Lock()
	c, ok := d.clusters[id]
	delete(d.clusters, id)
	d.mu.Unlock()
	if ok {
		c.close()
		d.log.Info("kafka cluster stopped; its data is kept", "pkc", id)
	}
	return nil
}

// Remove stops a PKC's cluster and deletes its data.
func (d *Driver) Remove(ctx context.Context, id string) error {
	if err := d.Stop(ctx, id); err != nil {
		return err
	}
	if err := os.RemoveAll(filepath.Join(d.cfg.DataDir, id)); err != nil {
		return fmt.Errorf("pkc %s: remove data: %w", id, err)
	}
	d.log.Info("kafka cluster removed", "pkc", id)
	return nil
}

// Present lists the PKCs that have a directory.
func (d *Driver) Present() ([]string, error) {
	entries, err := os.ReadDir(d.cfg.DataDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("embedded: %w", err)
	}
	var ids []string
	for _, e := range entries {
		if e.IsDir() && strings.HasPrefix(e.Name(), "pkc-") {
			ids = append(ids, e.Name())
		}
	}
	return ids, nil
}

// Close stops every cluster and keeps their data for the next start.
func (d *Driver) Close() error {
	d.stopOnce.Do(func() {
		if d.stopSampling != nil {
			close(d.stopSampling)
		}
	})
	d.mu.Lock()
	defer d.mu.Unlock()
	for id, c := range d.clusters {
		c.close()
		delete(d.clusters, id)
	}
	return nil
}

func (c *cluster) close() {
	c.stop()
	c.admin.Close()
	c.kc.Close()
}

// persistInterval bounds how long an auto-created topic is known only in
// memory.
const persistInterval = 250 * time.Millisecond

// persistTopics works around kfake not saving its topic list when a
// topic is auto-created by a Metadata request (CreateTopics does save it):
// after a crash such a topic, and so its records, would be gone. Whenever
// the topic list changed, an empty IncrementalAlterConfigs on a topic makes
// kfake save the whole list. It does not change any config.
func (c *cluster) persistTopics(ctx context.Context, log *slog.Logger) {
	known := map[string]bool{}
	tick := time.NewTicker(persistInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		fresh, names, err := c.saveTopicsOnce(ctx, known)
		if err != nil {
			log.Warn("saving the topic list failed; will retry", "pkc", c.id, "topic", fresh, "err", err)
			continue
		}
		for _, name := range names {
			known[name] = true
		}
	}
}

// saveTopicsOnce makes kfake save its topic list if a topic is not known
// yet. Each call is bounded: a request that hangs must not stop the loop.
func (c *cluster) saveTopicsOnce(ctx context.Context, known map[string]bool) (string, []string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	// A plain Metadata request: kadm's ListTopics may answer from the
	// client's metadata cache, which does not see a topic created a moment
	// ago.
	md, err := kmsg.NewPtrMetadataRequest().RequestWith(ctx, c.admin)
	if err != nil {
		return "", nil, err
	}
	fresh := ""
	var names []string
	for _, t := range md.Topics {
		if t.Topic == nil || t.ErrorCode != 0 {
			continue
		}
		names = append(names, *t.Topic)
		if !known[*t.Topic] {
			fresh = *t.Topic
		}
	}
	if fresh == "" {
		return "", nil, nil
	}
	req := kmsg.NewPtrIncrementalAlterConfigsRequest()
	res := kmsg.NewIncrementalAlterConfigsRequestResource()
	res.ResourceType, res.ResourceName = kmsg.ConfigResourceTypeTopic, fresh
	req.Resources = append(req.Resources, res)
	resp, err := req.RequestWith(ctx, c.admin)
	if err == nil && len(resp.Resources) == 1 {
		err = kerr.ErrorForCode(resp.Resources[0].ErrorCode)
	}
	return fresh, names, err
}

func loadMeta(dir string) (meta, error) {
	var m meta
	data, err := os.ReadFile(filepath.Join(dir, "meta.json"))
	if errors.Is(err, os.ErrNotExist) {
		b := make([]byte, 24)
		_, _ = rand.Read(b) // crypto/rand.Read never fails (Go ≥ 1.24)
		m.AdminPassword = hex.EncodeToString(b)
		return m, nil
	}
	if err != nil {
		return m, fmt.Errorf("read %s: %w", dir, err)
	}
	if err := json.Unmarshal(data, &m); err != nil {
		return m, fmt.Errorf("meta of %s: %w", dir, err)
	}
	return m, nil
}

// saveMeta writes meta atomically.
func saveMeta(dir string, m meta) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	data, err := json.Marshal(m)
	if err != nil {
		return err
	}
	if err := atomicfile.Write(filepath.Join(dir, "meta.json"), data, 0o600); err != nil {
		return fmt.Errorf("save meta of %s: %w", dir, err)
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return 0
	}
	return m.GetCounter().GetValue()
}
