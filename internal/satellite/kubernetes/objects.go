package kubernetes

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/mothership-dev/mothership/internal/resource"
)

// Strimzi's kinds, served at kafka.strimzi.io/v1 only.
var (
	gvrKafka     = schema.GroupVersionResource{Group: "kafka.strimzi.io", Version: "v1", Resource: "kafkas"}
	gvrPool      = schema.GroupVersionResource{Group: "kafka.strimzi.io", Version: "v1", Resource: "kafkanodepools"}
	gvrRebalance = schema.GroupVersionResource{Group: "kafka.strimzi.io", Version: "v1", Resource: "kafkarebalances"}
	gvrUser      = schema.GroupVersionResource{Group: "kafka.strimzi.io", Version: "v1", Resource: "kafkausers"}
	gvrSecret    = schema.GroupVersionResource{Version: "v1", Resource: "secrets"}
	gvrNamespace = schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}
	gvrClaim     = schema.GroupVersionResource{Version: "v1", Resource: "persistentvolumeclaims"}
)

const strimziAPI = "kafka.strimzi.io/v1"

// Labels and annotations the driver puts on what it makes.
const (
	// LabelManagedBy marks every object the driver made; it lists, prunes
	// and deletes only those.
	LabelManagedBy = "app.kubernetes.io/managed-by"
	// ManagedBy is the value of LabelManagedBy, and the driver's field
	// manager for server-side apply.
	ManagedBy = "mothership-satellite"
	// LabelSite holds the site the satellite serves: satellites of
	// several sites may share one Kubernetes cluster, and each sees only
	// its own objects.
	LabelSite = "mothership.dev/site"
	// LabelPKC holds the PKC id, on the namespace and on every object in
	// it, and on the volume claims Strimzi makes for it.
	LabelPKC = "mothership.dev/pkc"
	// AnnotationGeneration is the PKC generation the Kafka carries: on
	// the Kafka only, so that a change rewrites only what it changes.
	AnnotationGeneration = "mothership.dev/generation"
	// AnnotationBalanced lists the broker node ids Cruise Control has
	// moved partitions onto (JSON array), on the Kafka: a broker beyond
	// them is new, and an add-brokers rebalance is due for it.
	AnnotationBalanced = "mothership.dev/balanced-node-ids"

	labelCluster          = "strimzi.io/cluster"
	annotationRemoveNodes = "strimzi.io/remove-node-ids"
	annotationNextNodes   = "strimzi.io/next-node-ids"
	// AnnotationHasKeys is set on a Kafka once the driver set a key on
	// its brokers: from then on it reaches them to keep the keys exact
	// (a key revoked while the satellite was away is removed).
	AnnotationHasKeys     = "mothership.dev/has-keys"
	annotationAutoApprove = "strimzi.io/rebalance-auto-approval"
	annotationRebalance   = "strimzi.io/rebalance"
	zoneLabel             = "topology.kubernetes.io/zone"
)

// Names of what a PKC is made of.
const (
	controllerPool = "controller"
	brokerPool     = "broker"
	adminSecret    = "mothership-satellite"
	// adminUser is the driver's own superuser on every cluster: a
	// KafkaUser whose password only the Secret adminSecret holds.
	adminUser = "mothership-satellite"
	// internalListener is the brokers' only listener: the driver and the
	// PKC's proxy reach them there; clients reach the proxy.
	internalListener = "internal"
)

// keyPattern matches the names of API keys, the SASL users the driver
// sets with the Admin API.
const keyPattern = "^[A-Z0-9]{16}$"

// Namespace is the namespace of a PKC's objects.
func Namespace(pkc string) string { return "mothership-" + pkc }

// Kafka versions of Strimzi 1.2.0 (its kafka-versions.yaml).
const (
	DefaultKafkaVersion    = "4.3.1"
	DefaultMetadataVersion = "4.3-IV0"
)

// object is an unstructured object with the driver's labels.
func object(apiVersion, kind, ns, name, pkc string, spec map[string]any) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": apiVersion,
		"kind":       kind,
		"metadata": map[string]any{
			"name":   name,
			"labels": map[string]any{LabelManagedBy: ManagedBy, LabelPKC: pkc},
		},
	}}
	if ns != "" {
		u.SetNamespace(ns)
	}
	if spec != nil {
		u.Object["spec"] = spec
	}
	return u
}

func setLabel(u *unstructured.Unstructured, k, v string) {
	labels := u.GetLabels()
	labels[k] = v
	u.SetLabels(labels)
}

func setAnnotation(u *unstructured.Unstructured, k, v string) {
	a := u.GetAnnotations()
	if a == nil {
		a = map[string]string{}
	}
	a[k] = v
	u.SetAnnotations(a)
}

// pools returns each broker pool's name, zone and desired brokers: one
// pool, or one per zone of a MULTI_ZONE PKC with the brokers spread
// evenly (the first pools take the remainder).
func pools(spec resource.PKCSpec) []pool {
	if len(spec.Zones) <= 1 {
		zone := ""
		if len(spec.Zones) == 1 {
			zone = spec.Zones[0]
		}
		return []pool{{name: brokerPool, zone: zone, brokers: spec.Brokers, single: true, firstID: poolIDs}}
	}
	out := make([]pool, len(spec.Zones))
	for i, z := range spec.Zones {
		n := spec.Brokers / len(spec.Zones)
		if i < spec.Brokers%len(spec.Zones) {
			n++
		}
		out[i] = pool{name: brokerPool + "-" + dnsLabel(z), zone: z, brokers: n, firstID: poolIDs * (i + 1)}
	}
	return out
}

type pool struct {
	name    string
	zone    string
	brokers int
	single  bool // the only broker pool: not pinned to a zone
	// firstID is the first of the pool's node ids: each pool has a range
	// of its own (strimzi.io/next-node-ids), new brokers take the lowest
	// free ids and a shrink removes the highest, so a pool's ids are
	// known from its size even before Strimzi reports them.
	firstID int
}

// poolIDs is the size of each pool's range of node ids; the controllers
// have the first.
const poolIDs = 1000

var notDNS = regexp.MustCompile(`[^a-z0-9-]+`)

func dnsLabel(s string) string {
	return strings.Trim(notDNS.ReplaceAllString(strings.ToLower(s), "-"), "-")
}

// kafkaObject is the PKC's Kafka: KRaft with node pools, an internal
// listener with TLS and SCRAM-SHA-512 (clients reach the proxy, proxy.go), simple authorization
// with the driver as superuser, Cruise Control, and rack awareness on the
// zone when the brokers span zones.
func (d *Driver) kafkaObject(id string, gen int64, spec resource.PKCSpec, balanced []int, hasKeys bool) *unstructured.Unstructured {
	version := spec.Version
	if version == "" {
		version = DefaultKafkaVersion
	}
	kafka := map[string]any{
		"version": version,
		"listeners": []any{
			map[string]any{"name": internalListener, "port": int64(9093), "type": "internal", "tls": true,
				"authentication": map[string]any{"type": "scram-sha-512"}},
		},
		"authorization": map[string]any{"type": "simple", "superUsers": []any{adminUser}},
		"config": map[string]any{
			"auto.create.topics.enable":                d.cfg.Site.AutoCreateTopics,
			"offsets.topic.replication.factor":         int64(min(3, max(spec.Brokers, 1))),
			"transaction.state.log.replication.factor": int64(min(3, max(spec.Brokers, 1))),
			"transaction.state.log.min.isr":            int64(min(2, max(spec.Brokers, 1))),
			"default.replication.factor":               int64(min(3, max(spec.Brokers, 1))),
			"min.insync.replicas":                      int64(min(2, max(spec.Brokers, 1))),
		},
	}
	if spec.MetadataVersion != "" {
		kafka["metadataVersion"] = spec.MetadataVersion
	}
	if len(spec.Zones) > 1 {
		kafka["rack"] = map[string]any{"topologyKey": zoneLabel}
	}
	u := object(strimziAPI, "Kafka", Namespace(id), id, id, map[string]any{
		"kafka": kafka,
		// The User Operator realizes the driver's own KafkaUser; keys are
		// the driver's (the Admin API, see tenants), and the User Operator
		// deletes the credentials of any user without a KafkaUser unless
		// told to ignore it.
		"entityOperator": map[string]any{"userOperator": map[string]any{}, "template": map[string]any{
			"userOperatorContainer": map[string]any{"env": []any{
				map[string]any{"name": "STRIMZI_IGNORED_USERS_PATTERN", "value": keyPattern},
			}},
		}},
		// The driver makes the rebalances itself: Strimzi's
		// autoRebalance stays off.
		"cruiseControl": map[string]any{},
	})
	setAnnotation(u, AnnotationGeneration, strconv.FormatInt(gen, 10))
	if hasKeys {
		setAnnotation(u, AnnotationHasKeys, "true")
	}
	if balanced != nil {
		b, _ := json.Marshal(balanced)
		setAnnotation(u, AnnotationBalanced, string(b))
	}
	return u
}

// poolObject is one KafkaNodePool: persistent storage that outlives the
// cluster (deleteClaim false; class and size per CKU are the site's, fixed
// at creation as Strimzi requires), claims labelled with the PKC.
func (d *Driver) poolObject(id, name string, roles []string, replicas int, zone string, firstID int, remove []int) *unstructured.Unstructured {
	size := d.cfg.Site.brokerStorage()
	if !slices.Contains(roles, "broker") {
		size = controllerStorage
	}
	storage := map[string]any{"type": "persistent-claim", "size": size, "deleteClaim": false}
	if d.cfg.Site.StorageClass != "" {
		storage["class"] = d.cfg.Site.StorageClass
	}
	r := make([]any, len(roles))
	for i, role := range roles {
		r[i] = role
	}
	spec := map[string]any{
		"replicas": int64(replicas),
		"roles":    r,
		"storage":  storage,
		"template": map[string]any{
			// Strimzi's own labels say it manages the claims; this one
			// finds them after the cluster is gone.
			"persistentVolumeClaim": map[string]any{"metadata": map[string]any{"labels": map[string]any{LabelPKC: id}}},
		},
	}
	if zone != "" {
		spec["template"].(map[string]any)["pod"] = map[string]any{"affinity": map[string]any{"nodeAffinity": map[string]any{
			"requiredDuringSchedulingIgnoredDuringExecution": map[string]any{"nodeSelectorTerms": []any{
				map[string]any{"matchExpressions": []any{map[string]any{"key": zoneLabel, "operator": "In", "values": []any{zone}}}},
			}},
		}}}
	}
	u := object(strimziAPI, "KafkaNodePool", Namespace(id), name, id, spec)
	setLabel(u, labelCluster, id)
	setAnnotation(u, annotationNextNodes, fmt.Sprintf("[%d-%d]", firstID, firstID+poolIDs-1))
	if len(remove) > 0 {
		setAnnotation(u, annotationRemoveNodes, intList(remove))
	}
	return u
}

// rebalanceObject is a KafkaRebalance of mode (add-brokers or
// remove-brokers) for exactly brokers, approved by Strimzi as soon as its
// proposal is ready. Its name carries the plan, so that a new plan is a
// new object and the old one is pruned.
func rebalanceObject(id, mode string, brokers []int) *unstructured.Unstructured {
	b := make([]any, len(brokers))
	for i, n := range brokers {
		b[i] = int64(n)
	}
	sum := sha256.Sum256([]byte(mode + intList(brokers)))
	u := object(strimziAPI, "KafkaRebalance", Namespace(id), mode+"-"+hex.EncodeToString(sum[:4]), id,
		map[string]any{"mode": mode, "brokers": b})
	setLabel(u, labelCluster, id)
	setAnnotation(u, annotationAutoApprove, "true")
	return u
}

// namespaceObject is the PKC's namespace, labelled with its id.
func namespaceObject(id string) *unstructured.Unstructured {
	return object("v1", "Namespace", "", Namespace(id), id, nil)
}

// adminObjects are the driver's superuser on the cluster: a Secret with a
// password only the driver made, and the KafkaUser that Strimzi's User
// Operator realizes from it.
func adminObjects(id, password string) []*unstructured.Unstructured {
	secret := object("v1", "Secret", Namespace(id), adminSecret, id, nil)
	secret.Object["type"] = "Opaque"
	// data, not stringData: the server keeps data, so that what the
	// driver applies compares equal to what it reads back.
	secret.Object["data"] = map[string]any{"password": base64.StdEncoding.EncodeToString([]byte(password))}
	user := object(strimziAPI, "KafkaUser", Namespace(id), adminUser, id, map[string]any{
		"authentication": map[string]any{"type": "scram-sha-512", "password": map[string]any{
			"valueFrom": map[string]any{"secretKeyRef": map[string]any{"name": adminSecret, "key": "password"}}}},
	})
	setLabel(user, labelCluster, id)
	return []*unstructured.Unstructured{secret, user}
}

func intList(ids []int) string {
	s := slices.Clone(ids)
	slices.Sort(s)
	parts := make([]string, len(s))
	for i, n := range s {
		parts[i] = strconv.Itoa(n)
	}
	return "[" + strings.Join(parts, ",") + "]"
}

func parseIntList(s string) ([]int, error) {
	var out []int
	if s == "" {
		return nil, nil
	}
	if err := json.Unmarshal([]byte(s), &out); err != nil {
		return nil, fmt.Errorf("node id list %q: %w", s, err)
	}
	return out, nil
}
