package main

import (
	"fmt"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"

	"github.com/mothership-dev/mothership/internal/resource"
	"github.com/mothership-dev/mothership/internal/satellite"
	"github.com/mothership-dev/mothership/internal/satellite/kubernetes"
	"github.com/mothership-dev/mothership/internal/sitekey"
)

// kubeFlags are the flags of the Kubernetes driver.
type kubeFlags struct {
	kubeconfig, context string
	site                kubernetes.Site
	// proxyTLS is what the clusters' proxies serve TLS with, issued by
	// the installation's CA; nil: plaintext.
	proxyTLS *kubernetes.ProxyTLS
}

func (k *kubeFlags) add(f *pflag.FlagSet) {
	f.StringVar(&k.kubeconfig, "kubeconfig", "", "kubeconfig of the Kubernetes cluster that runs Strimzi (none: the in-cluster configuration)")
	f.StringVar(&k.context, "context", "", "the kubeconfig's context to use (none: its current one)")
	f.StringVar(&k.site.ExternalListener, "external-listener", "loadbalancer", "how clients reach each cluster's Kafka proxy: loadbalancer (a LoadBalancer Service) or cluster-ip (from inside the Kubernetes cluster)")
	f.StringVar(&k.site.Domain, "cluster-domain", "", "DNS domain of the clusters' endpoints: PKC.DOMAIN, asked of external-dns (the proxies' certificate must cover *.DOMAIN); none: the Service's address")
	f.StringVar(&k.site.ProxyImage, "proxy-image", kubernetes.DefaultProxyImage, "image of the clusters' Kafka proxy pods (this binary: mothership kafka-proxy)")
	f.StringVar(&k.site.StorageClass, "storage-class", "", "storage class of the brokers' volumes (none: the cluster's default)")
	f.IntVar(&k.site.StorageGiBPerCKU, "storage-per-cku", 300, "GiB of disk per CKU, over its three brokers")
}

// rest is the configuration that reaches the API server.
func (k *kubeFlags) rest() (*rest.Config, error) {
	if k.kubeconfig == "" && k.context == "" {
		cfg, err := rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("not in a Kubernetes cluster: give --kubeconfig (%w)", err)
		}
		return cfg, nil
	}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(
		&clientcmd.ClientConfigLoadingRules{ExplicitPath: k.kubeconfig},
		&clientcmd.ConfigOverrides{CurrentContext: k.context}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("--kubeconfig %s: %w", k.kubeconfig, err)
	}
	return cfg, nil
}

// driver makes the Kubernetes driver of a site's satellite, whose key is
// in dir.
func (k *kubeFlags) driver(log *slog.Logger, reg prometheus.Registerer) func(site resource.Site, dir string) (satellite.Driver, error) {
	// client-go logs through klog: its lines join the process's own.
	klog.SetSlogLogger(log)
	return func(site resource.Site, dir string) (satellite.Driver, error) {
		cfg, err := k.rest()
		if err != nil {
			return nil, err
		}
		key, err := sitekey.LoadOrCreate(dir)
		if err != nil {
			return nil, fmt.Errorf("satellite %s: %w", site, err)
		}
		var siteReg prometheus.Registerer
		if reg != nil {
			siteReg = prometheus.WrapRegistererWith(prometheus.Labels{"site": site.String()}, reg)
		}
		return kubernetes.New(kubernetes.Config{REST: cfg, SiteName: site.String(), Site: k.site, SiteKey: key, ProxyTLS: k.proxyTLS,
			Logger: log.With("satellite", site.String()), Registerer: siteReg})
	}
}

// proxyHosts are the names the clusters' proxies' certificate covers.
func (k *kubeFlags) proxyHosts() []string {
	if k.site.Domain != "" {
		return []string{"*." + k.site.Domain}
	}
	return []string{"localhost", "127.0.0.1"}
}
