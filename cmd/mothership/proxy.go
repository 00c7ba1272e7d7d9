package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/mothership-dev/mothership/internal/runtime/kafkalisten"
	"github.com/mothership-dev/mothership/internal/satellite/kafkarest"
)

// settingsPoll is how often kafka-proxy reads its settings again: a
// ConfigMap mounted as a volume changes in place, without a restart.
const settingsPoll = 2 * time.Second

func newKafkaProxyCmd() *cobra.Command {
	var settingsFile, certFile, keyFile, upstreamCA, listen, adminUser, adminPasswordFile string
	var logs logFlags
	cmd := &cobra.Command{
		Use:   "kafka-proxy",
		Short: "Run a Kafka cluster's front door apart from its brokers (what the Kubernetes driver deploys)",
		Long: `kafka-proxy is the front door of one Kafka cluster, run in front of
brokers it reaches over the network: on Kubernetes, the Deployment the
satellite makes beside each Strimzi cluster. Clients connect to it with
SASL_SSL (PLAIN or SCRAM-SHA-512, the cluster's API keys); it relays each
sign-in to the broker it stands for, maps the names of a shared cluster's
tenants so that each sees a cluster of its own, holds them to their
limits, and shows clients its own addresses for the brokers. It also
serves Kafka REST v3 on the same addresses; with --admin-user and
--admin-password-file (the cluster's superuser), REST's ACL calls too, and
to that user alone the bytes each tenant's clients sent and received
(GET ` + kafkalisten.UsagePath + `), which the satellite meters.

--settings is the JSON the satellite writes (its listeners, the brokers
behind it, the cluster's tenants); it is read again every few seconds, so
that a new key or a resize needs no restart. /readyz answers 200 once the
proxy serves with every address it advertises known.`,
		Args:    cobra.NoArgs,
		PreRunE: func(cmd *cobra.Command, _ []string) error { return bindEnv(cmd) },
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := logs.logger(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			p := &proxyProcess{file: settingsFile, log: log, tenants: kafkalisten.NewTenants(""), usage: kafkalisten.NewUsageCounter(time.Now())}
			if certFile != "" {
				cert, err := tls.LoadX509KeyPair(certFile, keyFile)
				if err != nil {
					return fmt.Errorf("--tls-cert: %w", err)
				}
				p.tls = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
			} else {
				log.Warn("clients are served plaintext: no --tls-cert")
			}
			if upstreamCA != "" {
				pem, err := os.ReadFile(upstreamCA)
				if err != nil {
					return fmt.Errorf("--upstream-ca: %w", err)
				}
				roots := x509.NewCertPool()
				if !roots.AppendCertsFromPEM(pem) {
					return fmt.Errorf("--upstream-ca %s: no certificate in it", upstreamCA)
				}
				p.upstreamTLS = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
			}
			if adminUser != "" {
				pw, err := os.ReadFile(adminPasswordFile)
				if err != nil {
					return fmt.Errorf("--admin-password-file: %w", err)
				}
				p.adminUser, p.adminPassword = adminUser, strings.TrimSpace(string(pw))
			}
			_, metrics := newMetrics()
			stopHealth, err := serveHealth(listen, metrics, &p.ready)
			if err != nil {
				return err
			}
			defer stopHealth()
			if err := p.reload(); err != nil {
				return err
			}
			defer p.close()
			fmt.Fprintf(cmd.OutOrStdout(), "kafka-proxy is up: %v\n", p.addrs())
			t := time.NewTicker(settingsPoll)
			defer t.Stop()
			for {
				select {
				case <-cmd.Context().Done():
					log.Info("kafka-proxy stopping")
					return nil
				case <-t.C:
					if err := p.reload(); err != nil {
						log.Error("kafka-proxy: settings not applied; the last ones stay", "err", err)
					}
				}
			}
		},
	}
	f := cmd.Flags()
	f.StringVar(&settingsFile, "settings", "", "the proxy's settings (JSON: listeners, brokers, tenants), read again when they change")
	f.StringVar(&certFile, "tls-cert", "", "certificate (PEM) served to clients, issued by the installation's CA; none: plaintext")
	f.StringVar(&keyFile, "tls-key", "", "private key (PEM) of --tls-cert")
	f.StringVar(&upstreamCA, "upstream-ca", "", "CA (PEM) of the brokers' listener, which the proxy reaches with TLS; none: plaintext")
	f.StringVar(&listen, "health-listen", "127.0.0.1:0", "address of /healthz, /readyz and /metrics")
	logs.add(f)
	f.StringVar(&adminUser, "admin-user", "", "the brokers' superuser (SCRAM-SHA-512), with which Kafka REST writes ACLs; none: REST serves no ACLs")
	f.StringVar(&adminPasswordFile, "admin-password-file", "", "file holding --admin-user's password")
	_ = cmd.MarkFlagRequired("settings")
	cmd.MarkFlagsRequiredTogether("admin-user", "admin-password-file")
	return cmd
}

// proxyProcess is a running kafka-proxy: its settings as last read, and
// the door serving them.
type proxyProcess struct {
	file        string
	log         *slog.Logger
	tls         *tls.Config
	upstreamTLS *tls.Config
	tenants     *kafkalisten.Tenants
	ready       atomic.Bool
	// usage counts the bytes of each tenant's clients, which the
	// satellite reads (kafkalisten.UsagePath) to meter them.
	usage *kafkalisten.UsageCounter

	adminUser, adminPassword string
	// admin is the superuser's client of the brokers, made once the
	// upstream is known.
	admin atomic.Pointer[kadm.Client]

	last     []byte
	settings kafkalisten.ProxySettings
	proxy    *kafkalisten.Proxy
}

// reload reads the settings; new tenants apply at once, and new listeners
// or brokers restart the door's listeners (carried connections stay).
func (p *proxyProcess) reload() error {
	raw, err := os.ReadFile(p.file)
	if err != nil {
		return fmt.Errorf("--settings: %w", err)
	}
	if bytes.Equal(raw, p.last) {
		return nil
	}
	var s kafkalisten.ProxySettings
	if err := json.Unmarshal(raw, &s); err != nil {
		return fmt.Errorf("--settings %s: %w", p.file, err)
	}
	if len(s.Upstream) == 0 {
		return fmt.Errorf("--settings %s: no upstream broker", p.file)
	}
	p.tenants.Set(s.Tenants)
	if p.adminUser != "" && p.admin.Load() == nil {
		cl, err := kgo.NewClient(kgo.SeedBrokers(s.Upstream...), kgo.Dialer(p.dial), kgo.ClientID(kafkalisten.AdminClientID),
			kgo.SASL(scram.Auth{User: p.adminUser, Pass: p.adminPassword}.AsSha512Mechanism()))
		if err != nil {
			return fmt.Errorf("the brokers' admin client: %w", err)
		}
		p.admin.Store(kadm.NewClient(cl))
	}
	sameDoor := p.proxy != nil && equalJSON(s.Bootstrap, p.settings.Bootstrap) && equalJSON(s.Brokers, p.settings.Brokers) &&
		slices.Equal(s.Upstream, p.settings.Upstream)
	if !sameDoor {
		if p.proxy != nil {
			p.ready.Store(false)
			if err := p.proxy.Close(); err != nil {
				p.log.Warn("kafka-proxy: closing the old listeners", "err", err)
			}
			p.proxy = nil
		}
		proxy, err := kafkalisten.NewProxy(kafkalisten.ProxyConfig{TLS: p.tls, Tenants: p.tenants, Dial: p.dial,
			Bootstrap: s.Bootstrap, Upstream: s.Upstream, Brokers: s.Brokers, Meter: p.usage.Add,
			REST: p.usage.Handler(p.adminUser, p.adminPassword, p.rest(s.Bootstrap.Listen)), Logger: p.log})
		if err != nil {
			return err
		}
		p.proxy = proxy
	}
	p.last, p.settings = raw, s
	ready := s.Bootstrap.Advertised != "" && len(s.Brokers) > 0
	for _, b := range s.Brokers {
		ready = ready && b.Advertised != ""
	}
	p.ready.Store(ready)
	p.log.Info("kafka-proxy settings applied", "brokers", len(s.Brokers), "tenants", len(s.Tenants), "ready", ready)
	return nil
}

// rest serves Kafka REST v3 on the proxy's addresses: each request signs
// in through the proxy's own bootstrap listener as its caller.
func (p *proxyProcess) rest(listen string) http.Handler {
	host, port, _ := net.SplitHostPort(listen)
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	self := net.JoinHostPort(host, port)
	return kafkarest.New(kafkarest.Config{Keys: p.tenants, Admin: p.admin.Load, HTTPS: p.tls != nil, Kafka: func() []kgo.Opt {
		opts := []kgo.Opt{kgo.SeedBrokers(self)}
		if p.tls != nil {
			// The proxy dials itself: it trusts exactly its own
			// certificate, whatever names that certificate covers.
			own := p.tls.Certificates[0].Certificate[0]
			opts = append(opts, kgo.DialTLSConfig(&tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: true,
				VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
					if len(raw) == 0 || !bytes.Equal(raw[0], own) {
						return errors.New("not the proxy's own certificate")
					}
					return nil
				}}))
		}
		return opts
	}})
}

// dial reaches a broker, with TLS when --upstream-ca is given.
func (p *proxyProcess) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	if p.upstreamTLS == nil {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	cfg := p.upstreamTLS.Clone()
	cfg.ServerName = host
	d := tls.Dialer{Config: cfg}
	return d.DialContext(ctx, network, addr)
}

func (p *proxyProcess) addrs() []string {
	if p.proxy == nil {
		return nil
	}
	return p.proxy.Addrs()
}

func (p *proxyProcess) close() {
	if adm := p.admin.Load(); adm != nil {
		adm.Close()
	}
	if p.proxy != nil {
		if err := p.proxy.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			p.log.Warn("kafka-proxy: close", "err", err)
		}
	}
}

func equalJSON(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}
