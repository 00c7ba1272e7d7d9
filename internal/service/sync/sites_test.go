package sync_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/mothership-dev/mothership/internal/api"
	"github.com/mothership-dev/mothership/internal/resource"
	"github.com/mothership-dev/mothership/internal/runtime/event"
	"github.com/mothership-dev/mothership/internal/runtime/store"
	"github.com/mothership-dev/mothership/internal/satellite/link"
	syncsvc "github.com/mothership-dev/mothership/internal/service/sync"
	"github.com/mothership-dev/mothership/internal/sitekey"
)

// apiStatus is err's API status, 0 for none.
func apiStatus(err error) int {
	var e *api.Error
	if errors.As(err, &e) {
		return e.Status
	}
	return 0
}

// TestSiteAddedAtRunTimeEnrollsItsSatellite: an operator adds a site; it
// takes no cluster until a satellite enrolls with its one-time token, with
// a key and a token it made itself; the enrollment is in the site's
// status (what iam learns keys from); a retry of the same enrollment is
// accepted, another key or a wrong token refused; the satellite then
// authenticates with its own token and reads its site's bundle.
func TestSiteAddedAtRunTimeEnrollsItsSatellite(t *testing.T) {
	f := newSync(t, nil)
	srv := httptest.NewServer(f.svc.Handler())
	t.Cleanup(srv.Close)
	ctx := t.Context()
	eu := resource.Site{Cloud: "AWS", Region: "eu-west-1"}

	if _, err := f.svc.AddSite(ctx, resource.Site{Cloud: "aws", Region: "EU_WEST"}, "u-op"); apiStatus(err) != http.StatusUnprocessableEntity {
		t.Fatalf("a region that is no region name: got %v, want 422", err)
	}
	added, err := f.svc.AddSite(ctx, resource.Site{Cloud: "aws", Region: "eu-west-1"}, "u-op")
	if err != nil {
		t.Fatal(err)
	}
	if added.Site != "aws/eu-west-1" || added.Phase != resource.SiteAwaitingEnrollment || added.EnrollmentToken == "" {
		t.Fatalf("added: %+v", added)
	}
	if _, err := f.svc.AddSite(ctx, eu, "u-op"); apiStatus(err) != http.StatusConflict {
		t.Fatalf("adding it twice: got %v, want 409", err)
	}
	why, err := f.svc.SiteRefusal(ctx, eu)
	if err != nil || !strings.Contains(why, "awaits its satellite's enrollment") {
		t.Fatalf("a cluster in a site not enrolled: refusal %q, %v", why, err)
	}

	key, err := sitekey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	own := "the satellite's own token"
	c := &link.Client{URL: srv.URL, Site: eu, Token: own}
	if err := c.Enroll(ctx, "not the token", key.Public(), syncsvc.HashToken(own)); connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Fatalf("a wrong enrollment token: got %v, want unauthenticated", err)
	}
	if _, err := c.Fetch(ctx, 0); connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Fatalf("its own token before the enrollment: got %v, want unauthenticated", err)
	}
	for range 2 { // the second is a satellite retrying what it did not hear answered
		if err := c.Enroll(ctx, added.EnrollmentToken, key.Public(), syncsvc.HashToken(own)); err != nil {
			t.Fatal(err)
		}
	}
	other, err := sitekey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Enroll(ctx, added.EnrollmentToken, other.Public(), syncsvc.HashToken("another")); connect.CodeOf(err) != connect.CodeFailedPrecondition {
		t.Fatalf("a second satellite with the same enrollment token: got %v, want failed precondition", err)
	}

	// The outbox announces the enrollment in the site's status event,
	// which iam learns the key from.
	feedCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	announced := false
	for !announced {
		changes, err := f.st.Feed().Next(feedCtx, 100)
		if err != nil {
			t.Fatalf("no status event announces the enrollment: %v", err)
		}
		for _, ch := range changes {
			announced = announced || (ch.Topic == event.Topic(resource.KindSite, event.Status) && ch.Key == eu.ID() &&
				bytes.Contains(ch.Value, []byte(resource.SiteEnrolled)))
		}
	}
	// The site's status carries the key.
	err = f.st.View(ctx, func(ctx context.Context, tx store.Tx) error {
		r, err := tx.ResourceGet(ctx, resource.KindSite, eu.ID())
		if err != nil {
			return err
		}
		st, err := resource.Decode[resource.SiteStatus](r.Status.Detail)
		if err != nil {
			return err
		}
		if r.Status.Phase != resource.SiteEnrolled || !bytes.Equal(st.PublicKey, key.Public()) || st.TokenHash != syncsvc.HashToken(own) {
			t.Errorf("the site's status: %+v %+v", r.Status, st)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	if why, err := f.svc.SiteRefusal(ctx, eu); err != nil || why != "" {
		t.Fatalf("an enrolled site: refusal %q, %v", why, err)
	}
	f.provision(t, "pkc-eu", eu, 1)
	b, err := c.Fetch(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := b.Resources["pkc-eu"]; !ok || len(b.Resources) != 1 {
		t.Fatalf("the new site's bundle: %v", b.Resources)
	}
}

// TestCordonAndRetire: a cordoned site takes no new cluster but keeps its
// own and its satellite; a site that holds a cluster cannot be retired;
// an empty one can, and then its satellite's token stops working; a
// retired site can be added anew.
func TestCordonAndRetire(t *testing.T) {
	f := newSync(t, nil)
	srv := httptest.NewServer(f.svc.Handler())
	t.Cleanup(srv.Close)
	ctx := t.Context()
	f.provision(t, "pkc-aws", aws, 1)

	link1, err := f.svc.CordonSite(ctx, aws, true, "u-op")
	if err != nil || !link1.Cordoned || link1.Clusters != 1 {
		t.Fatalf("cordon: %+v, %v", link1, err)
	}
	why, err := f.svc.SiteRefusal(ctx, aws)
	if err != nil || !strings.Contains(why, "cordoned") {
		t.Fatalf("a cordoned site: refusal %q, %v", why, err)
	}
	served, err := f.svc.SitesServed(ctx)
	if err != nil || len(served) != 1 || served[0] != gcp {
		t.Fatalf("served while aws is cordoned: %v, %v", served, err)
	}
	c := &link.Client{URL: srv.URL, Site: aws, Token: tokens[aws]}
	if b, err := c.Fetch(ctx, 0); err != nil || len(b.Resources) != 1 {
		t.Fatalf("a cordoned site's satellite still follows its clusters: %v, %v", b.Resources, err)
	}

	err = f.svc.RetireSite(ctx, aws, "u-op")
	if apiStatus(err) != http.StatusConflict || !strings.Contains(err.Error(), "pkc-aws") {
		t.Fatalf("retiring a site that holds a cluster: got %v, want 409 naming pkc-aws", err)
	}
	if err := f.svc.RetireSite(ctx, gcp, "u-op"); err != nil {
		t.Fatal(err)
	}
	gc := &link.Client{URL: srv.URL, Site: gcp, Token: tokens[gcp]}
	if _, err := gc.Fetch(ctx, 0); connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Fatalf("a retired site's satellite: got %v, want unauthenticated", err)
	}
	// A restart after setup enrolled aws's satellite anew: the retired
	// gcp stays retired, aws takes its new token.
	restarted := syncsvc.New(syncsvc.Config{Satellites: []syncsvc.Satellite{
		{Site: gcp, TokenHash: syncsvc.HashToken(tokens[gcp]), PublicKey: make([]byte, 32)},
		{Site: aws, TokenHash: syncsvc.HashToken("aws-satellite-token-2"), PublicKey: make([]byte, 32)}}})
	h := restarted.Host()
	h.Attach(f.st)
	if err := f.st.Update(ctx, h.Init); err != nil {
		t.Fatal(err)
	}
	srv2 := httptest.NewServer(restarted.Handler())
	t.Cleanup(srv2.Close)
	if _, err := (&link.Client{URL: srv2.URL, Site: aws, Token: "aws-satellite-token-2"}).Fetch(ctx, 0); err != nil {
		t.Fatalf("aws's new token after the restart: %v", err)
	}
	if _, err := (&link.Client{URL: srv2.URL, Site: gcp, Token: tokens[gcp]}).Fetch(ctx, 0); connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Fatalf("the retired gcp after the restart: %v", err)
	}
	links, err := f.svc.SiteLinks(ctx)
	if err != nil || len(links) != 1 || links[0].Site != aws.String() || !links[0].Cordoned {
		t.Fatalf("sites after gcp retired and a restart: %+v, %v", links, err)
	}
	if _, err := f.svc.CordonSite(ctx, gcp, true, "u-op"); apiStatus(err) != http.StatusNotFound {
		t.Fatalf("cordoning a retired site: got %v, want 404", err)
	}
	again, err := f.svc.AddSite(ctx, gcp, "u-op")
	if err != nil || again.Phase != resource.SiteAwaitingEnrollment {
		t.Fatalf("adding a retired site anew: %+v, %v", again, err)
	}
	if _, err := f.svc.CordonSite(ctx, aws, false, "u-op"); err != nil {
		t.Fatal(err)
	}
	if why, err := f.svc.SiteRefusal(ctx, aws); err != nil || why != "" {
		t.Fatalf("uncordoned: refusal %q, %v", why, err)
	}
}

// TestUsageReportsAreWholeBuckets: a satellite's buckets become meter
// resources of its site; the same bucket again announces nothing, a grown
// one replaces it, a final one is not reopened; a malformed bucket is
// refused with its place named.
func TestUsageReportsAreWholeBuckets(t *testing.T) {
	f := newSync(t, nil)
	srv := httptest.NewServer(f.svc.Handler())
	t.Cleanup(srv.Close)
	ctx := t.Context()
	c := &link.Client{URL: srv.URL, Site: aws, Token: tokens[aws]}
	hour := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	report := func(in int64, final bool) error {
		return c.ReportUsage(ctx, resource.UsageReport{Site: aws.String(), Buckets: []resource.MeterSpec{{Cluster: "lkc-abc123", Hour: hour, BytesIn: in, Final: final}}})
	}
	read := func() (resource.MeterSpec, int64) {
		var m resource.MeterSpec
		var gen int64
		err := f.st.View(ctx, func(ctx context.Context, tx store.Tx) error {
			r, err := tx.ResourceGet(ctx, resource.KindMeter, resource.MeterID("lkc-abc123", hour))
			if err != nil {
				return err
			}
			gen = r.Generation
			m, err = resource.Decode[resource.MeterSpec](r.Spec)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return m, gen
	}
	for _, step := range []struct {
		in      int64
		final   bool
		wantIn  int64
		wantGen int64
	}{{100, false, 100, 1}, {100, false, 100, 1}, {250, true, 250, 2}, {999, false, 250, 2}} {
		if err := report(step.in, step.final); err != nil {
			t.Fatal(err)
		}
		if m, gen := read(); m.BytesIn != step.wantIn || gen != step.wantGen || m.Site != aws.String() {
			t.Fatalf("after reporting %d (final %v): %+v at generation %d, want %d at %d", step.in, step.final, m, gen, step.wantIn, step.wantGen)
		}
	}
	err := c.ReportUsage(ctx, resource.UsageReport{Site: aws.String(), Buckets: []resource.MeterSpec{{Cluster: "lkc-abc123", Hour: hour.Add(time.Minute)}}})
	if connect.CodeOf(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), "must start a UTC hour") {
		t.Fatalf("a bucket not on an hour: %v", err)
	}
}
