package sync_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	gosync "sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/mothership-dev/mothership/internal/pki"
	"github.com/mothership-dev/mothership/internal/resource"
	"github.com/mothership-dev/mothership/internal/runtime/event"
	"github.com/mothership-dev/mothership/internal/runtime/store"
	"github.com/mothership-dev/mothership/internal/runtime/store/sqlite"
	"github.com/mothership-dev/mothership/internal/satellite"
	"github.com/mothership-dev/mothership/internal/satellite/link"
	syncsvc "github.com/mothership-dev/mothership/internal/service/sync"
)

var (
	aws = resource.Site{Cloud: "AWS", Region: "us-west-2"}
	gcp = resource.Site{Cloud: "GCP", Region: "europe-west1"}
	// tokens are the satellites' own tokens; sync keeps their hashes.
	tokens = map[resource.Site]string{aws: "aws-satellite-token", gcp: "gcp-satellite-token"}
)

// fixture is a sync service on its own SQLite store, serving aws and gcp.
type fixture struct {
	svc *syncsvc.Service
	st  store.Store
}

func newSync(t testing.TB, log *slog.Logger) *fixture {
	st, err := sqlite.Open(t.Context(), sqlite.Config{Path: filepath.Join(t.TempDir(), "sync.db"), Service: syncsvc.Name,
		Owns: []string{resource.KindDelivery, resource.KindSite, resource.KindMeter}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	var sats []syncsvc.Satellite
	for site, token := range tokens {
		sats = append(sats, syncsvc.Satellite{Site: site, TokenHash: syncsvc.HashToken(token), PublicKey: make([]byte, 32)})
	}
	svc := syncsvc.New(syncsvc.Config{Satellites: sats, Logger: log})
	h := svc.Host()
	h.Attach(st)
	if err := st.Update(t.Context(), h.Init); err != nil {
		t.Fatal(err)
	}
	return &fixture{svc: svc, st: st}
}

// provision makes sync see PKC id of site at generation gen, as the pkc
// service's desired event would, and react to it as its reactor does: the
// site's bundle gets a new version.
func (f *fixture) provision(t testing.TB, id string, site resource.Site, gen int64) {
	t.Helper()
	state, err := json.Marshal(store.Resource{ID: id, Kind: resource.KindPKC, Generation: gen, Version: gen,
		Spec: resource.Encode(resource.PKCSpec{Cloud: site.Cloud, Region: site.Region, Dedicated: true, Brokers: 3})})
	if err != nil {
		t.Fatal(err)
	}
	h := f.svc.Host()
	ev := event.New("pkc", resource.KindPKC, event.Desired, id, gen, gen, time.Now(), state)
	err = f.st.Update(t.Context(), func(ctx context.Context, tx store.Tx) error {
		if _, err := tx.ObservedPut(ctx, event.Topic(resource.KindPKC, event.Desired), ev); err != nil {
			return err
		}
		return h.Reconcile(ctx, tx, id)
	})
	if err != nil {
		t.Fatal(err)
	}
	h.Reactor.AfterCommit([]event.Event{ev}) // wakes the site's satellite, as the reactor does
}

// delivery returns the site's bundle version, and how many of its
// deliveries' statuses say the satellite realized their generation.
func (f *fixture) delivery(t testing.TB, site resource.Site) (version int64, reported int) {
	t.Helper()
	b, _, err := f.svc.Bundle(t.Context(), site, -1, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	err = f.st.View(t.Context(), func(ctx context.Context, tx store.Tx) error {
		ds, err := tx.ResourceList(ctx, store.ListParams{Kind: resource.KindDelivery})
		for _, d := range ds {
			spec, err := resource.Decode[resource.DeliverySpec](d.Spec)
			if err != nil {
				return err
			}
			if spec.Site == site.String() && d.Status.ObservedGeneration == d.Generation {
				reported++
			}
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.Version, reported
}

// tlsServer serves h over TLS with a certificate of a CA made for the
// test, and returns the server and the CA's file. Every request must come
// over HTTP/2.
func tlsServer(t *testing.T, h http.Handler) (*httptest.Server, string) {
	dir := t.TempDir()
	ca, err := pki.NewCA("link test CA")
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(dir, "ca.pem")
	if err := ca.Write(caFile, filepath.Join(dir, "ca-key.pem")); err != nil {
		t.Fatal(err)
	}
	kp, err := ca.Issue("127.0.0.1", "localhost")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := kp.TLSCertificate()
	if err != nil {
		t.Fatal(err)
	}
	var proto atomic.Value
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor != 2 {
			proto.Store(r.Proto)
		}
		h.ServeHTTP(w, r)
	}))
	srv.EnableHTTP2 = true
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes of the tests
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.StartTLS()
	t.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
		if p := proto.Load(); p != nil {
			t.Errorf("a request of the link came over %v, not HTTP/2", p)
		}
	})
	return srv, caFile
}

// TestLinkAuthentication: over TLS, each satellite's token reads only its
// own site's bundle and reports only for its own site; a forged token, or
// a token of another site, is refused with a clear error; a client that
// does not trust the deployment's CA refuses the server.
func TestLinkAuthentication(t *testing.T) {
	f := newSync(t, nil)
	f.provision(t, "pkc-aws", aws, 1)
	f.provision(t, "pkc-gcp", gcp, 1)
	srv, caFile := tlsServer(t, f.svc.Handler())
	pool, err := pki.LoadPool(caFile)
	if err != nil {
		t.Fatal(err)
	}
	other, err := pki.NewCA("another CA")
	if err != nil {
		t.Fatal(err)
	}
	otherFile := filepath.Join(t.TempDir(), "other.pem")
	if err := other.Write(otherFile, otherFile+".key"); err != nil {
		t.Fatal(err)
	}
	otherPool, err := pki.LoadPool(otherFile)
	if err != nil {
		t.Fatal(err)
	}

	client := func(token string, site resource.Site) *link.Client {
		return &link.Client{URL: srv.URL, Token: token, Site: site, RootCAs: pool}
	}
	for name, tc := range map[string]struct {
		reason string
		client *link.Client
		// want is the bundle's resources, or code and message the refusal.
		want    []string
		code    connect.Code
		message string
	}{
		"aws":          {"the aws satellite reads its own bundle", client(tokens[aws], aws), []string{"pkc-aws"}, 0, ""},
		"gcp":          {"the gcp satellite reads its own bundle", client(tokens[gcp], gcp), []string{"pkc-gcp"}, 0, ""},
		"forged token": {"a token sync does not know", client("forged-token", aws), nil, connect.CodeUnauthenticated, "the satellite token is not valid"},
		"no token":     {"no token at all", client("", aws), nil, connect.CodeUnauthenticated, "the satellite token is not valid"},
		"other site's token": {"a satellite of aws given gcp's token", client(tokens[gcp], aws), nil, connect.CodePermissionDenied,
			`this satellite's token is for gcp/europe-west1, not "aws/us-west-2"`},
		"system roots": {"a client without the deployment's CA", &link.Client{URL: srv.URL, Token: tokens[aws], Site: aws},
			nil, connect.CodeUnavailable, "certificate signed by unknown authority"},
		"another CA": {"a client trusting another CA", &link.Client{URL: srv.URL, Token: tokens[aws], Site: aws, RootCAs: otherPool},
			nil, connect.CodeUnavailable, "certificate signed by unknown authority"},
	} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			b, err := tc.client.Fetch(ctx, 0)
			if tc.want != nil {
				if err != nil {
					t.Fatalf("%s: %v", tc.reason, err)
				}
				if got := slices.Sorted(maps.Keys(b.Resources)); !slices.Equal(got, tc.want) || b.Site != tc.client.Site.String() {
					t.Fatalf("%s: the bundle of %s holds %v, want %v", tc.reason, b.Site, got, tc.want)
				}
				return
			}
			if connect.CodeOf(err) != tc.code || !strings.Contains(err.Error(), tc.message) {
				t.Fatalf("%s: %v, want %v %q", tc.reason, err, tc.code, tc.message)
			}
			if !link.Permanent(err) {
				t.Fatalf("%s: %v is retried forever", tc.reason, err)
			}
			// Watch, which reconnects after a cut, gives up on a refusal.
			err = tc.client.Watch(ctx, resource.Bundle{}, func(resource.Bundle) error { return errors.New("a bundle came") })
			if connect.CodeOf(err) != tc.code || ctx.Err() != nil {
				t.Fatalf("%s: Watch: %v, want %v", tc.reason, err, tc.code)
			}
		})
	}

	for name, tc := range map[string]struct {
		reason string
		token  string
		report resource.Report
		code   connect.Code
	}{
		"own site": {"the aws satellite reports for aws", tokens[aws],
			resource.Report{Site: "aws/us-west-2", Version: 1, Resources: map[string]resource.Realized{"pkc-aws": {Generation: 1, Phase: resource.PhaseProvisioned}}}, 0},
		"other site": {"the aws satellite reports for gcp", tokens[aws], resource.Report{Site: "gcp/europe-west1", Version: 1}, connect.CodePermissionDenied},
		"forged":     {"a forged token reports", "forged-token", resource.Report{Site: "aws/us-west-2", Version: 1}, connect.CodeUnauthenticated},
		"ahead":      {"a version sync never sent", tokens[aws], resource.Report{Site: "aws/us-west-2", Version: 9}, connect.CodeFailedPrecondition},
		"negative":   {"a version below 0", tokens[aws], resource.Report{Site: "aws/us-west-2", Version: -1}, connect.CodeInvalidArgument},
	} {
		t.Run("report "+name, func(t *testing.T) {
			err := client(tc.token, aws).Report(t.Context(), tc.report)
			if connect.CodeOf(err) != tc.code && (tc.code != 0 || err != nil) {
				t.Fatalf("%s: %v, want %v", tc.reason, err, tc.code)
			}
		})
	}
	if _, got := f.delivery(t, aws); got != 1 {
		t.Fatalf("aws: %d deliveries reported realized, want 1", got)
	}
	if _, got := f.delivery(t, gcp); got != 0 {
		t.Fatalf("a report reached %d of gcp's deliveries", got)
	}
}

// TestLinkPlainHTTP: in one process (dev) the link runs over plain HTTP/1.1.
func TestLinkPlainHTTP(t *testing.T) {
	f := newSync(t, nil)
	f.provision(t, "pkc-aws", aws, 1)
	srv := httptest.NewServer(f.svc.Handler())
	defer srv.Close()
	c := &link.Client{URL: srv.URL, Token: tokens[aws], Site: aws}
	b, err := c.Fetch(t.Context(), 0)
	if v, _ := f.delivery(t, aws); err != nil || b.Version != v || len(b.Resources) != 1 {
		t.Fatalf("fetch over HTTP/1.1: %v, %+v", err, b)
	}
	if err := c.Report(t.Context(), resource.Report{Site: aws.String(), Version: 1}); err != nil {
		t.Fatal(err)
	}
}

// TestLinkResumesAfterCut: an agent follows its bundle through a TCP proxy
// that the test severs, mid-stream, twice: once with a change made while
// cut, once with none. Each time the agent resumes from the version it
// holds, converges to the newest bundle, and the driver is asked to create
// each PKC exactly once; no bundle is applied twice.
func TestLinkResumesAfterCut(t *testing.T) {
	connected := make(chan int64, 16) // the after of each stream sync serves
	f := newSync(t, slog.New(recordHandler{msg: "satellite connected", key: "after", ch: connected}))
	srv, caFile := tlsServer(t, f.svc.Handler())
	pool, err := pki.LoadPool(caFile)
	if err != nil {
		t.Fatal(err)
	}
	px := newProxy(t, srv.Listener.Addr().String())
	drv := newRecorder()
	agent, err := satellite.New(satellite.Config{Site: aws, Driver: drv, DataDir: t.TempDir(),
		Link: &link.Client{URL: "https://" + px.addr(), Token: tokens[aws], Site: aws, RootCAs: pool, MaxBackoff: 100 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	if err := agent.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer agent.Stop()

	expectConnect := func(after int64) {
		t.Helper()
		select {
		case got := <-connected:
			if got != after {
				t.Fatalf("the satellite resumed after version %d, want %d", got, after)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("the satellite did not connect (after %d)", after)
		}
	}
	// converged waits until the agent realized the newest bundle, holding
	// ids, and sync has its report; it returns the bundle's version.
	converged := func(ids ...string) int64 {
		t.Helper()
		version, _ := f.delivery(t, aws)
		waitFor(t, "the agent to realize and report the newest bundle", func() bool {
			v, realized := agent.Realized()
			_, reported := f.delivery(t, aws)
			return v == version && slices.Equal(slices.Sorted(maps.Keys(realized)), ids) && reported == len(ids)
		})
		return version
	}

	expectConnect(0)
	f.provision(t, "pkc-a", aws, 1)
	v := converged("pkc-a")

	// A cut, a change while cut, the link back.
	px.sever()
	f.provision(t, "pkc-b", aws, 1)
	px.restore()
	expectConnect(v)
	v = converged("pkc-a", "pkc-b")

	// A cut with no change: nothing comes again once the link is back.
	px.sever()
	px.restore()
	expectConnect(v)
	f.provision(t, "pkc-c", aws, 1)
	converged("pkc-a", "pkc-b", "pkc-c")

	creates, applies := drv.calls()
	if want := map[string]int{"pkc-a": 1, "pkc-b": 1, "pkc-c": 1}; !maps.Equal(creates, want) {
		t.Errorf("creations per PKC: %v, want %v", creates, want)
	}
	// Each bundle version applied once: version 1, 2 and 3, each whole
	// (the resources of one version in any order: they are realized in
	// parallel).
	want := []string{"pkc-a@1", "pkc-a@1", "pkc-a@1", "pkc-b@1", "pkc-b@1", "pkc-c@1"}
	if applies = slices.Sorted(slices.Values(applies)); !slices.Equal(applies, want) {
		t.Errorf("Apply calls: %v, want %v", applies, want)
	}
	if px.accepted.Load() < 3 {
		t.Errorf("the proxy passed %d connections: the cuts cut nothing", px.accepted.Load())
	}

	// The link sends what changed (a delta), which the client merges:
	// a PKC deleted leaves the bundle the agent holds, the others stay.
	f.remove(t, "pkc-b", aws, 2)
	converged("pkc-a", "pkc-c")
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(30 * time.Second)
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// recordHandler sends the int attribute key of every log record whose
// message is msg.
type recordHandler struct {
	msg, key string
	ch       chan<- int64
}

func (h recordHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h recordHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h recordHandler) WithGroup(string) slog.Handler            { return h }
func (h recordHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Message == h.msg {
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == h.key {
				h.ch <- a.Value.Int64()
			}
			return true
		})
	}
	return nil
}

// recorder is a satellite driver that realizes nothing and records what
// it is asked: every Apply as "id@generation", and each creation (an
// Apply of an id it does not hold).
type recorder struct {
	mu      gosync.Mutex
	held    map[string]int64
	creates map[string]int
	applies []string
}

func newRecorder() *recorder { return &recorder{held: map[string]int64{}, creates: map[string]int{}} }

func (r *recorder) Apply(_ context.Context, id string, item resource.BundleItem, _ func(resource.Realized)) (resource.Realized, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.held[id]; !ok {
		r.creates[id]++
	}
	r.held[id] = item.Generation
	r.applies = append(r.applies, id+"@"+strconv.FormatInt(item.Generation, 10))
	return resource.Realized{Generation: item.Generation, Phase: resource.PhaseProvisioned}, nil
}

func (r *recorder) Stop(context.Context, string) error { return nil }

func (r *recorder) Remove(_ context.Context, id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.held, id)
	return nil
}

func (r *recorder) Present() ([]string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Collect(maps.Keys(r.held)), nil
}

func (r *recorder) Close() error { return nil }

func (r *recorder) calls() (map[string]int, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.creates), slices.Clone(r.applies)
}

// proxy is a TCP proxy the test can sever: every connection through it is
// closed, and new ones are refused until it is restored.
type proxy struct {
	ln       net.Listener
	backend  string
	accepted atomic.Int64

	mu    gosync.Mutex
	cut   bool
	conns map[net.Conn]struct{}
}

func newProxy(t *testing.T, backend string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, backend: backend, conns: map[net.Conn]struct{}{}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.serve()
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		<-done
		p.sever()
	})
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.cut {
			p.mu.Unlock()
			_ = c.Close()
			continue
		}
		b, err := net.Dial("tcp", p.backend)
		if err != nil {
			p.mu.Unlock()
			_ = c.Close()
			continue
		}
		p.conns[c], p.conns[b] = struct{}{}, struct{}{}
		p.accepted.Add(1)
		p.mu.Unlock()
		go pipe(c, b)
		go pipe(b, c)
	}
}

func pipe(dst, src net.Conn) {
	_, _ = io.Copy(dst, src)
	_ = dst.Close()
	_ = src.Close()
}

// sever closes every connection through the proxy and refuses new ones.
func (p *proxy) sever() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for c := range p.conns {
		_ = c.Close()
	}
	clear(p.conns)
}

func (p *proxy) restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = false
}

// wire records, per procedure, the bytes sync wrote and the encoding it
// announced.
type wire struct {
	mu       gosync.Mutex
	bytes    map[string]int
	encoding map[string]string
}

func (w *wire) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		c := &countingWriter{ResponseWriter: rw}
		h.ServeHTTP(c, r)
		w.mu.Lock()
		defer w.mu.Unlock()
		w.bytes[r.URL.Path] += c.n
		w.encoding[r.URL.Path] = rw.Header().Get("Content-Encoding")
	})
}

type countingWriter struct {
	http.ResponseWriter
	n int
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.ResponseWriter.Write(b)
	c.n += n
	return n, err
}

func (c *countingWriter) Flush() { c.ResponseWriter.(http.Flusher).Flush() }

// TestLinkCompressesWholeBundlesOnly: a site's whole bundle crosses the
// wire compressed, smaller than its JSON; the answer to a report, a few
// bytes, is sent as it is, not gzipped.
func TestLinkCompressesWholeBundlesOnly(t *testing.T) {
	f := newSync(t, nil)
	for i := range 60 {
		f.provision(t, fmt.Sprintf("pkc-aws-%02d", i), aws, 1)
	}
	w := &wire{bytes: map[string]int{}, encoding: map[string]string{}}
	srv := httptest.NewServer(w.wrap(f.svc.Handler()))
	defer srv.Close()
	c := &link.Client{URL: srv.URL, Token: tokens[aws], Site: aws}
	b, err := c.Fetch(t.Context(), 0)
	if err != nil || len(b.Resources) != 60 {
		t.Fatalf("fetch: %v, %d resources", err, len(b.Resources))
	}
	plain, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	w.mu.Lock()
	sent := w.bytes[resource.WatchBundleProcedure]
	w.mu.Unlock()
	if len(plain) < 8<<10 || sent >= len(plain)/2 {
		t.Fatalf("the whole bundle (%d bytes of JSON) took %d bytes on the wire: not compressed", len(plain), sent)
	}
	if err := c.Report(t.Context(), resource.Report{Site: aws.String(), Version: b.Version}); err != nil {
		t.Fatal(err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if enc := w.encoding[resource.ReportProcedure]; enc != "" {
		t.Fatalf("the answer to a report was sent with Content-Encoding %q", enc)
	}
}
