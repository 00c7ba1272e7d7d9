// Package kubernetes is the satellite driver that runs each PKC as Apache
// Kafka on a Kubernetes cluster, under the Strimzi operator (1.2.0, its
// kafka.strimzi.io/v1 kinds): a namespace per PKC holding a KRaft `Kafka`
// with node pools, the driver's own superuser, and the `KafkaRebalance`s a
// resize needs. It writes with server-side apply as its own field manager,
// only what differs from what it applied (a resync with nothing changed
// writes nothing), prunes what it made and no longer wants, and reads back
// what Strimzi reports: a PKC is realized when Strimzi says so.
//
// Keys are set on the brokers through the Admin API (package tenants), as
// the embedded driver does: the site holds only their salted credentials,
// and a key id (upper case) cannot be the name of a KafkaUser.
package kubernetes

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/mothership-dev/mothership/internal/kafkaversion"
	"github.com/mothership-dev/mothership/internal/resource"
	"github.com/mothership-dev/mothership/internal/sitekey"
)

// Site is how a site runs its clusters: settings of the site, chosen by
// its operator, the same for every PKC there.
type Site struct {
	// ExternalListener is how clients reach each PKC's proxy:
	// loadbalancer (a LoadBalancer Service, the default) or cluster-ip
	// (from inside the Kubernetes cluster).
	ExternalListener string
	// Domain, when set, names each PKC's endpoint PKC.DOMAIN (asked of
	// external-dns on its Service), which the proxies' certificate must
	// cover (*.DOMAIN); else the endpoint is the Service's address.
	Domain string
	// ProxyImage is the image of the proxies' pods (default
	// DefaultProxyImage).
	ProxyImage string
	// StorageClass is the class of the brokers' volumes (empty: the
	// cluster's default). Strimzi cannot change it later.
	StorageClass string
	// StorageGiBPerCKU is the disk a CKU gets, over its three brokers
	// (default 300).
	StorageGiBPerCKU int
	// AutoCreateTopics lets clients create topics by producing to them.
	AutoCreateTopics bool
}

// brokerStorage is a broker's volume: a CKU's disk over its three
// brokers. A volume never shrinks, so it does not follow a resize.
func (s Site) brokerStorage() string {
	return fmt.Sprintf("%dGi", (s.StorageGiBPerCKU+2)/3)
}

// controllerStorage is a KRaft controller's volume: the metadata log.
const controllerStorage = "10Gi"

// Config configures the driver.
type Config struct {
	// REST reaches the Kubernetes API server (in-cluster, or a
	// kubeconfig's context).
	REST *rest.Config
	// SiteName is the site the satellite serves (aws/us-west-2): every
	// object carries it, and the driver sees only its own site's.
	SiteName string
	Site     Site
	// SiteKey opens the SCRAM credentials sealed to this satellite.
	SiteKey sitekey.PrivateKey
	// ProxyTLS is what the proxies serve TLS with; nil serves plaintext
	// (SASL_PLAINTEXT endpoints).
	ProxyTLS *ProxyTLS
	// Kafka are extra client options to reach the brokers' internal
	// listener (a dialer, in tests).
	Kafka []kgo.Opt
	// Resync is how often every object is compared again with what the
	// driver wants (default 10 minutes).
	Resync time.Duration
	// RebalanceRetry is how long a rebalance Strimzi reports NotReady is
	// left before the driver asks for a new proposal (default a minute).
	RebalanceRetry time.Duration
	Logger         *slog.Logger
	Registerer     prometheus.Registerer
}

// Driver realizes PKCs through Strimzi.
type Driver struct {
	cfg     Config
	log     *slog.Logger
	client  dynamic.Interface
	factory dynamicinformer.DynamicSharedInformerFactory
	listers map[schema.GroupVersionResource]cache.GenericLister
	synced  []cache.InformerSynced
	stop    chan struct{}
	queue   workqueue.TypedInterface[string]

	writes *prometheus.CounterVec

	mu      sync.Mutex
	brokers map[string]*brokers     // the Admin API clients of each PKC
	meters  map[string]*meterTarget // where each PKC's usage is read (SetMeter)
	started time.Time
}

// New starts the driver's watches of what it made; it does not wait for
// the API server (Apply does, and fails until it answers).
func New(cfg Config) (*Driver, error) {
	if cfg.REST == nil || cfg.SiteKey == (sitekey.PrivateKey{}) || cfg.SiteName == "" {
		return nil, errors.New("kubernetes: REST, SiteName and SiteKey are required")
	}
	cfg.Site.ExternalListener = cmp.Or(cfg.Site.ExternalListener, "loadbalancer")
	if l := cfg.Site.ExternalListener; l != "loadbalancer" && l != "cluster-ip" {
		return nil, fmt.Errorf("kubernetes: external listener %q: clients reach the clusters' proxies through a loadbalancer or a cluster-ip Service", l)
	}
	cfg.Site.ProxyImage = cmp.Or(cfg.Site.ProxyImage, DefaultProxyImage)
	cfg.Site.StorageGiBPerCKU = cmp.Or(cfg.Site.StorageGiBPerCKU, 300)
	cfg.Resync = cmp.Or(cfg.Resync, 10*time.Minute)
	cfg.RebalanceRetry = cmp.Or(cfg.RebalanceRetry, time.Minute)
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	client, err := dynamic.NewForConfig(cfg.REST)
	if err != nil {
		return nil, fmt.Errorf("kubernetes: client: %w", err)
	}
	d := &Driver{cfg: cfg, log: cfg.Logger.With("driver", "kubernetes"), client: client,
		listers: map[schema.GroupVersionResource]cache.GenericLister{}, stop: make(chan struct{}),
		queue:   workqueue.NewTyped[string](),
		brokers: map[string]*brokers{}, meters: map[string]*meterTarget{}, started: time.Now(),
		writes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mothership_satellite_kubernetes_writes_total",
			Help: "Writes (server-side applies and deletes) the Kubernetes driver sent to the API server, by kind."}, []string{"kind"}),
	}
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(d.writes); err != nil {
			return nil, fmt.Errorf("kubernetes: metrics: %w", err)
		}
	}
	// Only what the driver made is watched and cached.
	d.factory = dynamicinformer.NewFilteredDynamicSharedInformerFactory(client, cfg.Resync, metav1.NamespaceAll,
		func(o *metav1.ListOptions) { o.LabelSelector = d.selector() })
	for _, gvr := range []schema.GroupVersionResource{gvrNamespace, gvrKafka, gvrPool, gvrRebalance, gvrUser, gvrSecret,
		gvrDeployment, gvrService, gvrConfigMap} {
		inf := d.factory.ForResource(gvr)
		d.listers[gvr] = inf.Lister()
		d.synced = append(d.synced, inf.Informer().HasSynced)
		if _, err := inf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    d.changed,
			UpdateFunc: func(_, obj any) { d.changed(obj) },
			DeleteFunc: d.changed,
		}); err != nil {
			return nil, fmt.Errorf("kubernetes: watch %s: %w", gvr.Resource, err)
		}
	}
	d.factory.Start(d.stop)
	return d, nil
}

// changed queues the PKC an object belongs to.
func (d *Driver) changed(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	if u, ok := obj.(*unstructured.Unstructured); ok {
		if id := u.GetLabels()[LabelPKC]; id != "" {
			d.queue.Add(id)
		}
	}
}

// Watch tells changed about every PKC whose objects changed, until ctx
// ends (satellite.Watcher).
func (d *Driver) Watch(ctx context.Context, changed func(id string)) {
	go func() {
		<-ctx.Done()
		d.queue.ShutDown()
	}()
	for {
		id, quit := d.queue.Get()
		if quit {
			return
		}
		changed(id)
		d.queue.Done(id)
	}
}

// selector selects what this satellite made.
func (d *Driver) selector() string {
	return LabelManagedBy + "=" + ManagedBy + "," + LabelSite + "=" + siteLabel(d.cfg.SiteName)
}

// siteLabel is a site as a label value: aws/us-west-2 → aws.us-west-2.
func siteLabel(site string) string { return strings.ReplaceAll(strings.ToLower(site), "/", ".") }

func (d *Driver) resource(gvr schema.GroupVersionResource, ns string) dynamic.ResourceInterface {
	if ns == "" {
		return d.client.Resource(gvr)
	}
	return d.client.Resource(gvr).Namespace(ns)
}

// waitSynced waits, a while, for the watches' first lists.
func (d *Driver) waitSynced(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if !cache.WaitForCacheSync(ctx.Done(), d.synced...) {
		return errors.New("kubernetes: the API server has not answered the driver's watches yet")
	}
	return nil
}

// live are the objects of one PKC the driver made, as last seen.
type live struct {
	namespace, kafka, secret, user *unstructured.Unstructured
	pools, rebalances              map[string]*unstructured.Unstructured
	proxy                          map[schema.GroupVersionResource]*unstructured.Unstructured
}

func (d *Driver) get(gvr schema.GroupVersionResource, ns, name string) *unstructured.Unstructured {
	var (
		obj any
		err error
	)
	if ns == "" {
		obj, err = d.listers[gvr].Get(name)
	} else {
		obj, err = d.listers[gvr].ByNamespace(ns).Get(name)
	}
	if err != nil {
		return nil
	}
	u, _ := obj.(*unstructured.Unstructured)
	return u
}

func (d *Driver) list(gvr schema.GroupVersionResource, ns string) map[string]*unstructured.Unstructured {
	objs, err := d.listers[gvr].ByNamespace(ns).List(labels.Everything())
	out := map[string]*unstructured.Unstructured{}
	if err != nil {
		return out
	}
	for _, o := range objs {
		if u, ok := o.(*unstructured.Unstructured); ok {
			out[u.GetName()] = u
		}
	}
	return out
}

func (d *Driver) live(id string) live {
	ns := Namespace(id)
	return live{
		namespace:  d.get(gvrNamespace, "", ns),
		kafka:      d.get(gvrKafka, ns, id),
		secret:     d.get(gvrSecret, ns, adminSecret),
		user:       d.get(gvrUser, ns, adminUser),
		pools:      d.list(gvrPool, ns),
		rebalances: d.list(gvrRebalance, ns),
		proxy: map[schema.GroupVersionResource]*unstructured.Unstructured{
			gvrDeployment: d.get(gvrDeployment, ns, proxyName),
			gvrService:    d.get(gvrService, ns, proxyName),
			gvrConfigMap:  d.get(gvrConfigMap, ns, proxyName),
			gvrSecret:     d.get(gvrSecret, ns, proxyName+"-tls"),
		},
	}
}

// Apply realizes a PKC: it writes what differs of its objects, prunes the
// ones it no longer wants, sets the keys on the brokers once they serve,
// and reports what Strimzi reports. It does not wait for Strimzi: Watch
// says when its objects change.
func (d *Driver) Apply(ctx context.Context, id string, item resource.BundleItem, _ func(resource.Realized)) (resource.Realized, error) {
	if item.Kind != resource.KindPKC {
		return resource.Realized{Generation: item.Generation, Phase: resource.PhaseProvisioned}, nil
	}
	spec, err := resource.Decode[resource.PKCSpec](item.Spec)
	if err != nil {
		return resource.Realized{}, err
	}
	if spec.Version != "" && !kafkaversion.Runs(kafkaversion.Kubernetes, spec.Version) {
		// Strimzi would refuse the Kafka resource; say so before writing it.
		return resource.Realized{Generation: item.Generation, Phase: resource.PhaseFailed, Reason: "UNSUPPORTED_VERSION",
			Message: fmt.Sprintf("Kafka %s is not a version Strimzi 1.2.0 runs here", spec.Version)}, nil
	}
	if err := d.waitSynced(ctx); err != nil {
		return resource.Realized{}, err
	}
	l := d.live(id)
	p := d.plan(id, item.Generation, spec, l)

	ns := Namespace(id)
	if _, err := d.ensure(ctx, gvrNamespace, namespaceObject(id), l.namespace); err != nil {
		return resource.Realized{}, fmt.Errorf("pkc %s: %w", id, err)
	}
	if l.secret == nil {
		// The watch may not have seen the Secret made a moment ago: a
		// password made again would change the driver's own credential.
		got, err := d.resource(gvrSecret, ns).Get(ctx, adminSecret, metav1.GetOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return resource.Realized{}, fmt.Errorf("pkc %s: the satellite's secret: %w", id, err)
		}
		if err == nil {
			l.secret = got
		}
	}
	password := ""
	if l.secret != nil {
		password = secretPassword(l.secret)
	}
	if password == "" {
		b := make([]byte, 24)
		_, _ = rand.Read(b) // crypto/rand.Read never fails (Go ≥ 1.24)
		password = hex.EncodeToString(b)
	}
	admin := adminObjects(id, password)
	if _, err := d.ensure(ctx, gvrSecret, admin[0], l.secret); err != nil {
		return resource.Realized{}, fmt.Errorf("pkc %s: %w", id, err)
	}
	if _, err := d.ensure(ctx, gvrUser, admin[1], l.user); err != nil {
		return resource.Realized{}, fmt.Errorf("pkc %s: %w", id, err)
	}
	for _, want := range p.pools {
		if _, err := d.ensure(ctx, gvrPool, want, l.pools[want.GetName()]); err != nil {
			return resource.Realized{}, fmt.Errorf("pkc %s: %w", id, err)
		}
	}
	if l.kafka, err = d.ensure(ctx, gvrKafka, p.kafka, l.kafka); err != nil {
		return resource.Realized{}, fmt.Errorf("pkc %s: %w", id, err)
	}
	for _, want := range p.rebalances {
		if _, err := d.ensure(ctx, gvrRebalance, want, l.rebalances[want.GetName()]); err != nil {
			return resource.Realized{}, fmt.Errorf("pkc %s: %w", id, err)
		}
	}
	// Pruning: what the driver made and no longer wants.
	for name, u := range l.rebalances {
		if !slices.ContainsFunc(p.rebalances, func(w *unstructured.Unstructured) bool { return w.GetName() == name }) {
			if err := d.remove(ctx, gvrRebalance, u); err != nil {
				return resource.Realized{}, fmt.Errorf("pkc %s: %w", id, err)
			}
		}
	}
	for name, u := range l.pools {
		if !slices.ContainsFunc(p.pools, func(w *unstructured.Unstructured) bool { return w.GetName() == name }) {
			if err := d.remove(ctx, gvrPool, u); err != nil {
				return resource.Realized{}, fmt.Errorf("pkc %s: %w", id, err)
			}
		}
	}

	// The proxy, once the brokers' internal listener has an address.
	host := d.proxyHost(id, l.proxy[gvrService])
	settings := d.proxySettings(id, spec, p.brokers, listenerBootstrap(l.kafka, internalListener), host)
	for _, o := range d.proxyObjects(id, settings) {
		got, err := d.ensure(ctx, o.gvr, o.obj, l.proxy[o.gvr])
		if err != nil {
			return resource.Realized{}, fmt.Errorf("pkc %s: %w", id, err)
		}
		l.proxy[o.gvr] = got
	}

	if p.failed != nil {
		return resource.Realized{}, fmt.Errorf("pkc %s: %w", id, p.failed)
	}
	endpoint, notYet := d.endpoint(host, settings, l)
	r := p.realized(item.Generation, l, endpoint, notYet)
	if p.hasKeys && (r.Phase == resource.PhaseProvisioned || p.serving) {
		if err := d.tenants(ctx, id, ns, spec, l); err != nil {
			return resource.Realized{}, fmt.Errorf("pkc %s: keys: %w", id, err)
		}
		d.meterPKC(id, spec, settings.Bootstrap.Advertised, password)
	}
	return r, nil
}

func secretPassword(u *unstructured.Unstructured) string {
	data, _, _ := unstructured.NestedStringMap(u.Object, "data")
	if v := data["password"]; v != "" {
		if b, err := decodeBase64(v); err == nil {
			return string(b)
		}
	}
	return ""
}

// Stop deletes a PKC's objects in order: its proxy, its rebalances and
// users, then the Kafka and its pools, then its secret. The namespace
// stays, with the brokers' volume claims (labelled with the PKC, never
// deleted by Strimzi: deleteClaim false), so that Apply brings the
// cluster back on its data.
func (d *Driver) Stop(ctx context.Context, id string) error {
	if err := d.waitSynced(ctx); err != nil {
		return err
	}
	d.closeBrokers(id)
	ns := Namespace(id)
	l := d.live(id)
	type step struct {
		gvr  schema.GroupVersionResource
		objs []*unstructured.Unstructured
	}
	var rebalances, pools, proxy []*unstructured.Unstructured
	for _, u := range l.rebalances {
		rebalances = append(rebalances, u)
	}
	for _, u := range l.pools {
		pools = append(pools, u)
	}
	for _, u := range []*unstructured.Unstructured{l.proxy[gvrService], l.proxy[gvrDeployment], l.proxy[gvrConfigMap]} {
		proxy = append(proxy, u)
	}
	for _, s := range []step{
		{gvrService, proxy[:1]}, {gvrDeployment, proxy[1:2]}, {gvrConfigMap, proxy[2:]}, {gvrSecret, []*unstructured.Unstructured{l.proxy[gvrSecret]}},
		{gvrRebalance, rebalances}, {gvrUser, []*unstructured.Unstructured{l.user}},
		{gvrKafka, []*unstructured.Unstructured{l.kafka}}, {gvrPool, pools}, {gvrSecret, []*unstructured.Unstructured{l.secret}},
	} {
		for _, u := range s.objs {
			if u == nil {
				continue
			}
			if err := d.remove(ctx, s.gvr, u); err != nil {
				return fmt.Errorf("pkc %s: remove: %w", id, err)
			}
		}
	}
	d.log.InfoContext(ctx, "kafka cluster stopped; its volume claims stay", "pkc", id, "namespace", ns)
	return nil
}

// Remove stops a PKC (Stop), then deletes its brokers' volume claims and
// its namespace: its data is gone.
func (d *Driver) Remove(ctx context.Context, id string) error {
	if err := d.Stop(ctx, id); err != nil {
		return err
	}
	ns := Namespace(id)
	err := d.client.Resource(gvrClaim).Namespace(ns).DeleteCollection(ctx, metav1.DeleteOptions{},
		metav1.ListOptions{LabelSelector: LabelPKC + "=" + id})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("pkc %s: delete volume claims: %w", id, err)
	}
	if n := d.get(gvrNamespace, "", ns); n != nil && n.GetDeletionTimestamp() == nil {
		if err := d.remove(ctx, gvrNamespace, n); err != nil {
			return fmt.Errorf("pkc %s: delete namespace: %w", id, err)
		}
	}
	d.log.InfoContext(ctx, "kafka cluster removed with its volume claims", "pkc", id, "namespace", ns)
	return nil
}

// Present lists the PKCs that have a Kafka the driver made, or a
// namespace of its own not being deleted (a stopped PKC's, which holds
// its volume claims).
func (d *Driver) Present() ([]string, error) {
	ids := map[string]bool{}
	for _, gvr := range []schema.GroupVersionResource{gvrKafka, gvrNamespace} {
		list, err := d.client.Resource(gvr).List(context.Background(), metav1.ListOptions{LabelSelector: d.selector()})
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("kubernetes: list %s: %w", gvr.Resource, err)
		}
		for _, u := range list.Items {
			if id := u.GetLabels()[LabelPKC]; id != "" && u.GetDeletionTimestamp() == nil {
				ids[id] = true
			}
		}
	}
	return slices.Sorted(maps.Keys(ids)), nil
}

// Close stops the watches and the brokers' clients.
func (d *Driver) Close() error {
	select {
	case <-d.stop:
	default:
		close(d.stop)
	}
	d.factory.Shutdown()
	d.queue.ShutDown()
	d.mu.Lock()
	ids := make([]string, 0, len(d.brokers))
	for id := range d.brokers {
		ids = append(ids, id)
	}
	d.mu.Unlock()
	for _, id := range ids {
		d.closeBrokers(id)
	}
	return nil
}
