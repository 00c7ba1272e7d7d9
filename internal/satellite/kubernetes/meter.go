package kubernetes

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/mothership-dev/mothership/internal/resource"
	"github.com/mothership-dev/mothership/internal/runtime/kafkalisten"
	"github.com/mothership-dev/mothership/internal/runtime/startstop"
	"github.com/mothership-dev/mothership/internal/satellite/tenants"
)

// meterTarget is what the driver reads a PKC's usage from: its tenants,
// its proxy's clients' address and the superuser's password, which alone
// may read the proxy's counts.
type meterTarget struct {
	tenants  map[string]resource.Tenant
	proxy    string // host:port, the proxy's advertised bootstrap
	password string
	// last is the proxy's counts as last read.
	last    kafkalisten.ProxyUsage
	hasLast bool
}

// SetMeter implements satellite.MeteredDriver. Every interval it samples,
// for each PKC whose brokers it reached, what each tenant's topics store
// and their partitions (through the brokers' Admin API, as the embedded
// driver does), and adds the bytes each tenant's clients moved through
// the PKC's proxy since the last read (the proxy counts them, as the
// embedded front door does, and serves the counts at
// kafkalisten.UsagePath).
func (d *Driver) SetMeter(add func(cluster string, in, out int64), sample func(cluster string, storedBytes int64, partitions int), every time.Duration) {
	if every <= 0 {
		every = time.Minute
	}
	go startstop.Every(d.stop, every, func(ctx context.Context) { d.meterOnce(ctx, add, sample) })
}

// meterOnce reads every PKC's usage once.
func (d *Driver) meterOnce(ctx context.Context, add func(string, int64, int64), sample func(string, int64, int)) {
	d.mu.Lock()
	type job struct {
		id string
		b  *brokers
		m  meterTarget
	}
	var jobs []job
	for id, b := range d.brokers {
		if m := d.meters[id]; m != nil {
			jobs = append(jobs, job{id, b, *m})
		}
	}
	d.mu.Unlock()
	for _, j := range jobs {
		live := map[string]resource.Tenant{}
		for lkc, t := range j.m.tenants {
			if t.RetainedUntil == nil { // a deleted cluster's data is kept, not billed
				live[lkc] = t
			}
		}
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		stored, parts, err := tenants.Stored(sctx, kadm.NewClient(j.b.client), live)
		cancel()
		if err != nil {
			d.log.DebugContext(ctx, "sampling a cluster's storage failed; the next round tries again", "pkc", j.id, "err", err)
		} else {
			for lkc := range live {
				sample(lkc, stored[lkc], parts[lkc])
			}
		}
		if j.m.proxy == "" {
			continue
		}
		u, err := d.proxyUsage(ctx, j.m)
		if err != nil {
			d.log.DebugContext(ctx, "reading the proxy's counts failed; the next round tries again", "pkc", j.id, "err", err)
			continue
		}
		prev := j.m.last
		if !j.m.hasLast && u.Started.Before(d.started) {
			// Counted before this driver started: what a satellite
			// before it may have read already. Only what comes next
			// is added.
			prev = u
		}
		for lkc, b := range kafkalisten.UsageSince(prev, u) {
			if _, ok := live[lkc]; ok {
				add(lkc, b.In, b.Out)
			}
		}
		d.mu.Lock()
		if m := d.meters[j.id]; m != nil {
			m.last, m.hasLast = u, true
		}
		d.mu.Unlock()
	}
}

// proxyUsage reads a proxy's counts, trusting exactly the certificate the
// proxies serve.
func (d *Driver) proxyUsage(ctx context.Context, m meterTarget) (kafkalisten.ProxyUsage, error) {
	scheme, transport := "http", &http.Transport{}
	if d.cfg.ProxyTLS != nil {
		block, _ := pem.Decode(d.cfg.ProxyTLS.CertPEM)
		if block == nil {
			return kafkalisten.ProxyUsage{}, errors.New("the proxies' certificate is not PEM")
		}
		own := block.Bytes
		scheme = "https"
		transport.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: true,
			VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
				if len(raw) == 0 || !bytes.Equal(raw[0], own) {
					return errors.New("not the proxies' certificate")
				}
				return nil
			}}
	}
	defer transport.CloseIdleConnections()
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, scheme+"://"+m.proxy+kafkalisten.UsagePath, nil)
	if err != nil {
		return kafkalisten.ProxyUsage{}, err
	}
	req.SetBasicAuth(adminUser, m.password)
	resp, err := (&http.Client{Transport: transport}).Do(req)
	if err != nil {
		return kafkalisten.ProxyUsage{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return kafkalisten.ProxyUsage{}, fmt.Errorf("GET %s: %s", kafkalisten.UsagePath, resp.Status)
	}
	var u kafkalisten.ProxyUsage
	if err := json.NewDecoder(resp.Body).Decode(&u); err != nil {
		return kafkalisten.ProxyUsage{}, fmt.Errorf("GET %s: %w", kafkalisten.UsagePath, err)
	}
	return u, nil
}

// meterPKC records what a PKC's usage is read from, once its keys are on
// its brokers.
func (d *Driver) meterPKC(id string, spec resource.PKCSpec, proxy, password string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	m := d.meters[id]
	if m == nil {
		m = &meterTarget{}
		d.meters[id] = m
	}
	m.tenants, m.proxy, m.password = spec.Tenants, proxy, password
}
