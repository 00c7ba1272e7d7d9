package kubernetes

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"strconv"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/mothership-dev/mothership/internal/resource"
	"github.com/mothership-dev/mothership/internal/runtime/kafkalisten"
	"github.com/mothership-dev/mothership/internal/satellite/tenants"
)

// Clients reach a PKC through its proxy: a Deployment running the same
// front door as the embedded clusters (`mothership kafka-proxy`), in front
// of the brokers' internal listener, and a Service in front of it. The
// proxy terminates TLS under the installation's CA, relays each client's
// PLAIN or SCRAM sign-in to the broker it stands for, maps a shared
// cluster's tenants' names and holds them to their limits, and shows
// clients its own addresses for the brokers. The brokers have no listener
// of their own for clients.
var (
	gvrDeployment = schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}
	gvrService    = schema.GroupVersionResource{Version: "v1", Resource: "services"}
	gvrConfigMap  = schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
)

const (
	// proxyName names the proxy's Deployment, Service, ConfigMap and TLS
	// Secret in a PKC's namespace.
	proxyName = "kafka-proxy"
	// proxySettingsKey is the ConfigMap's key holding the proxy's
	// settings (kafkalisten.ProxySettings).
	proxySettingsKey = "settings.json"
	// proxyBootstrapPort is the port clients bootstrap from; a broker's is
	// proxyBrokerPortBase plus its node id, stable across resizes (node ids
	// are below 10,000: poolIDs per pool).
	proxyBootstrapPort  = 9092
	proxyBrokerPortBase = 20000
	proxyHealthPort     = 8080
	// proxyReplicas run behind the Service: one can roll while the other
	// serves.
	proxyReplicas = 2
	// internalPort is the brokers' internal listener's port.
	internalPort = 9093
	// DefaultProxyImage is the image of the proxy's pods: this binary.
	DefaultProxyImage = "ghcr.io/mothership-dev/mothership:latest"
	// annotationExternalDNS asks external-dns for the PKC's host name.
	annotationExternalDNS = "external-dns.alpha.kubernetes.io/hostname"
)

// ProxyTLS is the certificate (issued by the installation's CA) and key
// the proxies serve TLS with, in PEM.
type ProxyTLS struct {
	CertPEM, KeyPEM []byte
}

// brokerRef is one broker node of a PKC, as Strimzi names its pod.
type brokerRef struct {
	node int
	pool string
}

// proxyHost is the host clients dial for a PKC: a name under the site's
// domain, or else what the Service reports (a load balancer's address,
// or the Service's name inside the Kubernetes cluster); "" until known.
func (d *Driver) proxyHost(id string, svc *unstructured.Unstructured) string {
	if d.cfg.Site.Domain != "" {
		return id + "." + d.cfg.Site.Domain
	}
	if d.cfg.Site.ExternalListener == "cluster-ip" {
		return proxyName + "." + Namespace(id) + ".svc"
	}
	if svc == nil {
		return ""
	}
	ingress, _, _ := unstructured.NestedSlice(svc.Object, "status", "loadBalancer", "ingress")
	for _, in := range ingress {
		if m, ok := in.(map[string]any); ok {
			if h, _ := m["hostname"].(string); h != "" {
				return h
			}
			if ip, _ := m["ip"].(string); ip != "" {
				return ip
			}
		}
	}
	return ""
}

// proxySettings are what the PKC's proxies run from.
func (d *Driver) proxySettings(id string, spec resource.PKCSpec, brokers []brokerRef, bootstrap, host string) kafkalisten.ProxySettings {
	advertise := func(port int) string {
		if host == "" {
			return ""
		}
		return net.JoinHostPort(host, strconv.Itoa(port))
	}
	s := kafkalisten.ProxySettings{
		Bootstrap: kafkalisten.ProxyListener{Listen: ":" + strconv.Itoa(proxyBootstrapPort), Advertised: advertise(proxyBootstrapPort)},
		Tenants:   tenants.Door(spec.Tenants),
	}
	if bootstrap != "" {
		s.Upstream = []string{bootstrap}
	}
	for _, b := range brokers {
		port := proxyBrokerPortBase + b.node
		s.Brokers = append(s.Brokers, kafkalisten.ProxyBroker{Node: int32(b.node),
			// Strimzi's pod of a node pool's node, on the brokers'
			// headless Service.
			Upstream:      fmt.Sprintf("%s-%s-%d.%s-kafka-brokers.%s.svc:%d", id, b.pool, b.node, id, Namespace(id), internalPort),
			ProxyListener: kafkalisten.ProxyListener{Listen: ":" + strconv.Itoa(port), Advertised: advertise(port)}})
	}
	return s
}

// proxyObjects are the PKC's proxy: its TLS Secret (when the satellite
// has a certificate), settings, Deployment and Service.
func (d *Driver) proxyObjects(id string, settings kafkalisten.ProxySettings) []proxyObject {
	ns := Namespace(id)
	body, _ := json.MarshalIndent(settings, "", "  ")
	cm := object("v1", "ConfigMap", ns, proxyName, id, nil)
	cm.Object["data"] = map[string]any{proxySettingsKey: string(body)}

	ports := []any{map[string]any{"name": "bootstrap", "containerPort": int64(proxyBootstrapPort)}}
	svcPorts := []any{map[string]any{"name": "bootstrap", "port": int64(proxyBootstrapPort), "targetPort": int64(proxyBootstrapPort)}}
	for _, b := range settings.Brokers {
		port := int64(proxyBrokerPortBase + int(b.Node))
		name := "broker-" + strconv.Itoa(int(b.Node))
		ports = append(ports, map[string]any{"name": "b" + strconv.Itoa(int(b.Node)), "containerPort": port})
		svcPorts = append(svcPorts, map[string]any{"name": name, "port": port, "targetPort": port})
	}
	ports = append(ports, map[string]any{"name": "health", "containerPort": int64(proxyHealthPort)})

	args := []any{"kafka-proxy", "--settings", "/etc/mothership/proxy/" + proxySettingsKey,
		"--upstream-ca", "/etc/mothership/brokers-ca/ca.crt",
		"--health-listen", ":" + strconv.Itoa(proxyHealthPort),
		// Kafka REST's ACL calls write ACLs as the cluster's superuser.
		"--admin-user", adminUser, "--admin-password-file", "/etc/mothership/admin/password"}
	mounts := []any{
		map[string]any{"name": "settings", "mountPath": "/etc/mothership/proxy", "readOnly": true},
		map[string]any{"name": "brokers-ca", "mountPath": "/etc/mothership/brokers-ca", "readOnly": true},
		map[string]any{"name": "admin", "mountPath": "/etc/mothership/admin", "readOnly": true},
	}
	volumes := []any{
		map[string]any{"name": "settings", "configMap": map[string]any{"name": proxyName}},
		map[string]any{"name": "brokers-ca", "secret": map[string]any{"secretName": id + "-cluster-ca-cert"}},
		map[string]any{"name": "admin", "secret": map[string]any{"secretName": adminSecret,
			"items": []any{map[string]any{"key": "password", "path": "password"}}}},
	}
	var out []proxyObject
	if t := d.cfg.ProxyTLS; t != nil {
		sec := object("v1", "Secret", ns, proxyName+"-tls", id, nil)
		sec.Object["type"] = "kubernetes.io/tls"
		sec.Object["data"] = map[string]any{"tls.crt": base64.StdEncoding.EncodeToString(t.CertPEM), "tls.key": base64.StdEncoding.EncodeToString(t.KeyPEM)}
		out = append(out, proxyObject{gvrSecret, sec})
		args = append(args, "--tls-cert", "/etc/mothership/tls/tls.crt", "--tls-key", "/etc/mothership/tls/tls.key")
		mounts = append(mounts, map[string]any{"name": "tls", "mountPath": "/etc/mothership/tls", "readOnly": true})
		volumes = append(volumes, map[string]any{"name": "tls", "secret": map[string]any{"secretName": proxyName + "-tls"}})
	}
	out = append(out, proxyObject{gvrConfigMap, cm})

	selector := map[string]any{"app.kubernetes.io/name": proxyName, LabelPKC: id}
	deploy := object("apps/v1", "Deployment", ns, proxyName, id, map[string]any{
		"replicas": int64(proxyReplicas),
		"selector": map[string]any{"matchLabels": selector},
		"template": map[string]any{
			"metadata": map[string]any{"labels": selector},
			"spec": map[string]any{
				"containers": []any{map[string]any{
					"name": "proxy", "image": d.cfg.Site.ProxyImage, "args": args, "ports": ports,
					"readinessProbe": map[string]any{"httpGet": map[string]any{"path": "/readyz", "port": int64(proxyHealthPort)},
						"periodSeconds": int64(5)},
					"livenessProbe": map[string]any{"httpGet": map[string]any{"path": "/healthz", "port": int64(proxyHealthPort)},
						"periodSeconds": int64(10)},
					"resources": map[string]any{"requests": map[string]any{"cpu": "250m", "memory": "128Mi"},
						"limits": map[string]any{"memory": "1Gi"}},
					"securityContext": map[string]any{"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
						"capabilities": map[string]any{"drop": []any{"ALL"}}},
					"volumeMounts": mounts,
				}},
				"securityContext": map[string]any{"runAsNonRoot": true, "runAsUser": int64(65532), "runAsGroup": int64(65532),
					"seccompProfile": map[string]any{"type": "RuntimeDefault"}},
				"volumes": volumes,
			},
		},
	})
	out = append(out, proxyObject{gvrDeployment, deploy})

	svcType := "LoadBalancer"
	if d.cfg.Site.ExternalListener == "cluster-ip" {
		svcType = "ClusterIP"
	}
	svc := object("v1", "Service", ns, proxyName, id, map[string]any{
		"type": svcType, "selector": selector, "ports": svcPorts,
	})
	if d.cfg.Site.Domain != "" {
		setAnnotation(svc, annotationExternalDNS, id+"."+d.cfg.Site.Domain)
	}
	return append(out, proxyObject{gvrService, svc})
}

type proxyObject struct {
	gvr schema.GroupVersionResource
	obj *unstructured.Unstructured
}

// proxyReady reports whether the PKC's proxy serves clients; if not, why.
func proxyReady(deploy *unstructured.Unstructured, host string, hasBrokers bool) (bool, string) {
	switch {
	case deploy == nil:
		return false, "the Kafka proxy is being created"
	case nested[int64](deploy, "status", "readyReplicas") < 1:
		return false, "no Kafka proxy pod is ready yet"
	case host == "":
		return false, "the Kafka proxy's Service has no address yet"
	case !hasBrokers:
		return false, "the Kafka proxy knows no broker yet"
	}
	return true, ""
}

// endpoint is the PKC's endpoint once its proxy serves, or "" and why
// not.
func (d *Driver) endpoint(host string, settings kafkalisten.ProxySettings, l live) (string, string) {
	if ok, why := proxyReady(l.proxy[gvrDeployment], host, len(settings.Brokers) > 0 && len(settings.Upstream) > 0); !ok {
		return "", why
	}
	scheme := "SASL_SSL://"
	if d.cfg.ProxyTLS == nil {
		scheme = "SASL_PLAINTEXT://"
	}
	return scheme + settings.Bootstrap.Advertised, ""
}
