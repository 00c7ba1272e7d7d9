package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/mothership-dev/mothership/internal/pki"
	"github.com/mothership-dev/mothership/internal/runtime/kafkalisten"
	"github.com/mothership-dev/mothership/internal/runtime/kafkalisten/kcattest"
)

// TestKafkaProxyInFrontOfTLSBrokers runs `mothership kafka-proxy` as the
// Kubernetes driver deploys it: in front of brokers that serve TLS under a
// CA of their own and SCRAM (as Strimzi's internal listener does), from a
// settings file. kcat, with Confluent Cloud's settings (SASL_SSL, PLAIN),
// uses the topic "orders" through it; the brokers hold lkc-a.orders. A
// tenant added to the settings later is served without a restart.
func TestKafkaProxyInFrontOfTLSBrokers(t *testing.T) {
	dir := t.TempDir()
	brokerCA, err := pki.NewCA("brokers' CA")
	if err != nil {
		t.Fatal(err)
	}
	pair, err := brokerCA.Issue("127.0.0.1", "localhost")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := pair.TLSCertificate()
	if err != nil {
		t.Fatal(err)
	}
	brokers, err := kfake.NewCluster(kfake.NumBrokers(2), kfake.EnableSASL(), kfake.EnableACLs(), kfake.AllowAutoTopicCreation(),
		kfake.Superuser("SCRAM-SHA-512", "admin", "adminpass"),
		kfake.TLS(&tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(brokers.Close)
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(brokerCA.CertPEM)
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers.ListenAddrs()...), kgo.DialTLSConfig(&tls.Config{RootCAs: roots}),
		kgo.SASL(scram.Auth{User: "admin", Pass: "adminpass"}.AsSha512Mechanism()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	admin := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	for _, id := range []string{"lkc-a", "lkc-b"} {
		key := "KEY" + strings.ToUpper(id[4:])
		if _, err := admin.AlterUserSCRAMs(ctx, nil, []kadm.UpsertSCRAM{{User: key, Mechanism: kadm.ScramSha512, Iterations: 4096, Password: "secret"}}); err != nil {
			t.Fatal(err)
		}
		if _, err := admin.CreateACLs(ctx, kadm.NewACLs().Allow("User:"+key).ResourcePatternType(kadm.ACLPatternPrefixed).
			Topics(id+".").Groups(id+".").TransactionalIDs(id+".").Operations(kadm.OpAll)); err != nil {
			t.Fatal(err)
		}
	}

	installCA, err := pki.NewCA("installation CA")
	if err != nil {
		t.Fatal(err)
	}
	proxyPair, err := installCA.Issue("127.0.0.1", "localhost")
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{"brokers-ca.pem": brokerCA.CertPEM, "ca.pem": installCA.CertPEM, "proxy.pem": proxyPair.CertPEM, "proxy-key.pem": proxyPair.KeyPEM}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	bootstrap := freeAddr(t)
	settings := kafkalisten.ProxySettings{
		Bootstrap: kafkalisten.ProxyListener{Listen: bootstrap, Advertised: bootstrap},
		Upstream:  brokers.ListenAddrs(),
		Tenants: []kafkalisten.Tenant{{ID: "lkc-a", Prefix: "lkc-a.", Keys: []string{"KEYA", "KEYR"},
			Owners: map[string]string{"KEYA": "u-admin", "KEYR": "sa-reader"}, ACLsOnly: []string{"KEYR"}}},
	}
	for i, addr := range brokers.ListenAddrs() {
		at := freeAddr(t)
		settings.Brokers = append(settings.Brokers, kafkalisten.ProxyBroker{Node: int32(i), Upstream: addr,
			ProxyListener: kafkalisten.ProxyListener{Listen: at, Advertised: at}})
	}
	settingsFile := filepath.Join(dir, "settings.json")
	write := func() {
		b, _ := json.Marshal(settings)
		if err := os.WriteFile(settingsFile+".new", b, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(settingsFile+".new", settingsFile); err != nil { // as a ConfigMap volume swaps its files
			t.Fatal(err)
		}
	}
	write()
	adminPW := filepath.Join(dir, "admin-password")
	if err := os.WriteFile(adminPW, []byte("adminpass\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	health := freeAddr(t)
	proxy := startProcess(t, "kafka-proxy", "kafka-proxy --settings "+settingsFile+" --tls-cert "+filepath.Join(dir, "proxy.pem")+
		" --tls-key "+filepath.Join(dir, "proxy-key.pem")+" --upstream-ca "+filepath.Join(dir, "brokers-ca.pem")+" --health-listen "+health+
		" --admin-user admin --admin-password-file "+adminPW, nil)
	waitHTTP(t, "http://"+health+"/readyz", proxy)

	kcat := func(key, stdin string, args ...string) (string, error) {
		return kcattest.RunWith(t, kcattest.Client{Addr: bootstrap, User: key, Password: "secret", Protocol: "SASL_SSL", Mechanism: "PLAIN",
			CAFile: filepath.Join(dir, "ca.pem")}, stdin, args...)
	}
	if out, err := kcat("KEYA", "from-a\n", "-P", "-t", "orders"); err != nil {
		t.Fatalf("kcat produce through the proxy: %v: %s", err, out)
	}
	if out, err := kcat("KEYA", "", "-C", "-t", "orders", "-o", "beginning", "-e", "-q"); err != nil || strings.TrimSpace(out) != "from-a" {
		t.Fatalf("kcat consume through the proxy: %v: %q", err, out)
	}
	topics, err := admin.ListTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !topics.Has("lkc-a.orders") || topics.Has("orders") {
		t.Fatalf("the brokers hold %v, want lkc-a.orders", topics.Names())
	}
	// Kafka REST v3 on the same address, as the same key, with the same
	// names.
	restClient := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: installRoots(installCA.CertPEM)}}}
	req, _ := http.NewRequestWithContext(ctx, "GET", "https://"+bootstrap+"/kafka/v3/clusters/lkc-a/topics", nil)
	req.SetBasicAuth("KEYA", "secret")
	resp, err := restClient.Do(req)
	if err != nil {
		t.Fatalf("REST through the proxy: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"topic_name":"orders"`) || strings.Contains(string(body), "lkc-a.") {
		t.Fatalf("REST topics through the proxy: %d %s; want orders under its plain name", resp.StatusCode, body)
	}

	// The satellite meters the tenant's bytes from the proxy's counts,
	// which only the brokers' superuser may read.
	usage := func(user, pass string) (int, kafkalisten.ProxyUsage) {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, "GET", "https://"+bootstrap+kafkalisten.UsagePath, nil)
		req.SetBasicAuth(user, pass)
		resp, err := restClient.Do(req)
		if err != nil {
			t.Fatalf("the proxy's usage: %v", err)
		}
		defer resp.Body.Close()
		var u kafkalisten.ProxyUsage
		if resp.StatusCode == http.StatusOK {
			if err := json.NewDecoder(resp.Body).Decode(&u); err != nil {
				t.Fatal(err)
			}
		}
		return resp.StatusCode, u
	}
	if code, _ := usage("KEYA", "secret"); code != http.StatusUnauthorized {
		t.Fatalf("a tenant's key reads the proxy's usage: %d, want 401", code)
	}
	if code, u := usage("admin", "adminpass"); code != http.StatusOK || u.Tenants["lkc-a"].In == 0 || u.Tenants["lkc-a"].Out == 0 {
		t.Fatalf("the proxy's usage after a produce and a consume: %d %+v, want lkc-a's bytes both ways", code, u)
	}

	// REST's ACL calls go through the proxy too: an ACL for a service
	// account lands on the brokers under the tenant's prefix, for the
	// service account and for its key that acts only as the ACLs allow.
	acl := `{"resource_type":"TOPIC","resource_name":"orders","pattern_type":"LITERAL","principal":"User:sa-reader","host":"*","operation":"READ","permission":"ALLOW"}`
	req, _ = http.NewRequestWithContext(ctx, "POST", "https://"+bootstrap+"/kafka/v3/clusters/lkc-a/acls", strings.NewReader(acl))
	req.SetBasicAuth("KEYA", "secret")
	req.Header.Set("Content-Type", "application/json")
	if resp, err = restClient.Do(req); err != nil {
		t.Fatalf("REST ACL through the proxy: %v", err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("REST ACL through the proxy: %d %s", resp.StatusCode, body)
	}
	described, err := admin.DescribeACLs(ctx, kadm.NewACLs().Topics("lkc-a.orders").ResourcePatternType(kadm.ACLPatternLiteral).
		Operations(kadm.OpRead).Allow().AllowHosts())
	if err != nil {
		t.Fatal(err)
	}
	var principals []string
	for _, r := range described {
		for _, d := range r.Described {
			principals = append(principals, d.Principal)
		}
	}
	slices.Sort(principals)
	if !slices.Equal(principals, []string{"User:KEYR", "User:sa-reader"}) {
		t.Fatalf("READ on lkc-a.orders is granted to %v, want the service account and its key", principals)
	}

	// A key the proxy's settings do not hold is refused as a wrong key.
	if out, err := kcat("KEYB", "", "-L"); err == nil || !strings.Contains(err.Error(), "Authentication failed") {
		t.Fatalf("a key of no tenant: %v: %s; want an authentication failure", err, out)
	}

	// Tenant b is added to the settings: it is served without a restart,
	// with the same names, and sees only its own.
	settings.Tenants = append(settings.Tenants, kafkalisten.Tenant{ID: "lkc-b", Prefix: "lkc-b.", Keys: []string{"KEYB"}})
	write()
	deadline := time.Now().Add(time.Minute)
	for {
		_, err := kcat("KEYB", "from-b\n", "-P", "-t", "orders")
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("tenant b is not served after its settings changed: %v", err)
		}
		time.Sleep(time.Second)
	}
	if out, err := kcat("KEYB", "", "-C", "-t", "orders", "-o", "beginning", "-e", "-q"); err != nil || strings.TrimSpace(out) != "from-b" {
		t.Fatalf("tenant b consumes %q (%v), want only its own record", out, err)
	}
}

func installRoots(pem []byte) *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	return pool
}
