package kubernetes

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/mothership-dev/mothership/internal/resource"
	"github.com/mothership-dev/mothership/internal/satellite/tenants"
)

// brokers is the driver's Admin API client of one PKC, and the keys it set
// there last.
type brokers struct {
	client    *kgo.Client
	bootstrap string
	applied   string
}

// tenants sets the PKC's keys and ACLs on its brokers through their
// internal listener (TLS with the cluster's CA, SCRAM-SHA-512 as the
// driver's own user), unless they are what was set last.
func (d *Driver) tenants(ctx context.Context, id, ns string, spec resource.PKCSpec, l live) error {
	want, _ := json.Marshal(spec.Tenants)
	bootstrap := listenerBootstrap(l.kafka, internalListener)
	if bootstrap == "" {
		return errors.New("Strimzi reports no bootstrap address for the internal listener")
	}
	d.mu.Lock()
	b := d.brokers[id]
	d.mu.Unlock()
	if b != nil && b.bootstrap == bootstrap && b.applied == string(want) {
		return nil
	}
	if b == nil || b.bootstrap != bootstrap {
		d.closeBrokers(id)
		cl, err := d.adminClient(ctx, id, ns, bootstrap, l)
		if err != nil {
			return err
		}
		b = &brokers{client: cl, bootstrap: bootstrap}
		d.mu.Lock()
		d.brokers[id] = b
		d.mu.Unlock()
	}
	if err := tenants.Apply(ctx, b.client, d.cfg.SiteKey, adminUser, spec.Tenants); err != nil {
		return err
	}
	d.mu.Lock()
	b.applied = string(want)
	d.mu.Unlock()
	return nil
}

// adminClient connects to the internal listener: the cluster CA is in the
// Secret Strimzi makes, <cluster>-cluster-ca-cert.
func (d *Driver) adminClient(ctx context.Context, id, ns, bootstrap string, l live) (*kgo.Client, error) {
	password := secretPassword(l.secret)
	if password == "" {
		return nil, errors.New("the satellite's password Secret is not there yet")
	}
	ca, err := d.resource(gvrSecret, ns).Get(ctx, id+"-cluster-ca-cert", metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("the cluster CA: %w", err)
	}
	data, _, _ := unstructured.NestedStringMap(ca.Object, "data")
	pem, err := decodeBase64(data["ca.crt"])
	if err != nil || len(pem) == 0 {
		return nil, fmt.Errorf("the cluster CA Secret %s/%s-cluster-ca-cert has no ca.crt", ns, id)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("the cluster CA Secret %s/%s-cluster-ca-cert: ca.crt holds no certificate", ns, id)
	}
	opts := append([]kgo.Opt{
		kgo.SeedBrokers(strings.Split(bootstrap, ",")...),
		kgo.DialTLSConfig(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}),
		kgo.SASL(scram.Auth{User: adminUser, Pass: password}.AsSha512Mechanism()),
	}, d.cfg.Kafka...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("brokers of %s: %w", id, err)
	}
	return cl, nil
}

func (d *Driver) closeBrokers(id string) {
	d.mu.Lock()
	b := d.brokers[id]
	delete(d.brokers, id)
	delete(d.meters, id)
	d.mu.Unlock()
	if b != nil {
		b.client.Close()
	}
}
