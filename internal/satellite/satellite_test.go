package satellite_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/mothership-dev/mothership/internal/resource"
	"github.com/mothership-dev/mothership/internal/satellite"
)

// oneBundle is a link that sends one bundle, then waits.
type oneBundle struct{ b resource.Bundle }

func (l oneBundle) Watch(ctx context.Context, held resource.Bundle, fn func(resource.Bundle) error) error {
	if held.Version < l.b.Version {
		if err := fn(l.b); err != nil {
			return err
		}
	}
	<-ctx.Done()
	return ctx.Err()
}

func (oneBundle) Report(context.Context, resource.Report) error { return nil }

// gated holds the Apply of "slow" until released, and records the others.
type gated struct {
	release chan struct{}
	mu      sync.Mutex
	done    map[string]time.Time
}

func (d *gated) Apply(ctx context.Context, id string, item resource.BundleItem, _ func(resource.Realized)) (resource.Realized, error) {
	if id == "pkc-slow" {
		select {
		case <-d.release:
		case <-ctx.Done():
			return resource.Realized{}, ctx.Err()
		}
	}
	d.mu.Lock()
	d.done[id] = time.Now()
	d.mu.Unlock()
	return resource.Realized{Generation: item.Generation, Phase: resource.PhaseProvisioned}, nil
}
func (d *gated) Stop(context.Context, string) error   { return nil }
func (d *gated) Remove(context.Context, string) error { return nil }
func (d *gated) Present() ([]string, error)           { return nil, nil }
func (d *gated) Close() error                         { return nil }

func (d *gated) applied(id string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	_, ok := d.done[id]
	return ok
}

// TestALongApplyDoesNotHoldTheOthersBack: a PKC whose resize takes long
// does not delay its neighbours on the site, and the bundle is held (saved
// and announced) before anything is realized.
func TestALongApplyDoesNotHoldTheOthersBack(t *testing.T) {
	site := resource.Site{Cloud: "AWS", Region: "us-west-2"}
	b := resource.Bundle{Site: site.String(), Version: 1, Resources: map[string]resource.BundleItem{}}
	for _, id := range []string{"pkc-a", "pkc-slow", "pkc-z"} {
		b.Resources[id] = resource.BundleItem{Kind: "other", Generation: 1}
	}
	drv := &gated{release: make(chan struct{}), done: map[string]time.Time{}}
	held := make(chan int64, 1)
	agent, err := satellite.New(satellite.Config{Site: site, Link: oneBundle{b}, Driver: drv, DataDir: t.TempDir(),
		OnBundle: func(b resource.Bundle, _ time.Time) { held <- b.Version }})
	if err != nil {
		t.Fatal(err)
	}
	if err := agent.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer agent.Stop()
	select {
	case v := <-held:
		if v != 1 {
			t.Fatalf("OnBundle got version %d, want 1", v)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the bundle was never announced as held")
	}
	deadline := time.Now().Add(10 * time.Second)
	for !(drv.applied("pkc-a") && drv.applied("pkc-z")) {
		if time.Now().After(deadline) {
			t.Fatal("pkc-a and pkc-z waited for pkc-slow")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if drv.applied("pkc-slow") {
		t.Fatal("pkc-slow was applied before it was released")
	}
	close(drv.release)
	for !drv.applied("pkc-slow") {
		if time.Now().After(deadline) {
			t.Fatal("pkc-slow was never applied")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// recording is a link that sends one bundle and keeps the reports.
type recording struct {
	oneBundle
	mu      sync.Mutex
	reports []resource.Report
}

func (l *recording) Report(_ context.Context, r resource.Report) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.reports = append(l.reports, r)
	return nil
}

func (l *recording) last() resource.Report {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.reports) == 0 {
		return resource.Report{}
	}
	return l.reports[len(l.reports)-1]
}

// startAgent starts an agent, stopped when the test ends.
func startAgent(t *testing.T, cfg satellite.Config) *satellite.Agent {
	t.Helper()
	agent, err := satellite.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := agent.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = agent.Stop() })
	return agent
}

// waitForReport waits until link's last report meets cond.
func waitForReport(t *testing.T, link *recording, what string, cond func(resource.Report) bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond(link.last()) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10s; last report %+v", what, link.last())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// operated is a driver whose resources an operator brings up after Apply
// returned: Apply reports what it finds, and Watch says when that changed.
type operated struct {
	mu      sync.Mutex
	ready   bool
	changed chan string
	applies int
}

func (d *operated) Apply(_ context.Context, _ string, item resource.BundleItem, _ func(resource.Realized)) (resource.Realized, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.applies++
	if !d.ready {
		return resource.Realized{Generation: item.Generation - 1, Phase: resource.PhaseProvisioning, Message: "the operator has not reported Ready"}, nil
	}
	return resource.Realized{Generation: item.Generation, Phase: resource.PhaseProvisioned}, nil
}
func (d *operated) Stop(context.Context, string) error   { return nil }
func (d *operated) Remove(context.Context, string) error { return nil }
func (d *operated) Present() ([]string, error)           { return nil, nil }
func (d *operated) Close() error                         { return nil }
func (d *operated) Watch(ctx context.Context, changed func(string)) {
	for {
		select {
		case <-ctx.Done():
			return
		case id := <-d.changed:
			changed(id)
		}
	}
}

// TestAWatcherChangeIsAppliedAndReported: a driver whose cluster becomes
// ready after Apply returned says so through Watch; the agent applies that
// resource again and reports it realized, with no new bundle.
func TestAWatcherChangeIsAppliedAndReported(t *testing.T) {
	site := resource.Site{Cloud: "AWS", Region: "us-west-2"}
	b := resource.Bundle{Site: site.String(), Version: 1, Resources: map[string]resource.BundleItem{
		"pkc-a": {Kind: "other", Generation: 3}}}
	link := &recording{oneBundle: oneBundle{b}}
	drv := &operated{changed: make(chan string)}
	startAgent(t, satellite.Config{Site: site, Link: link, Driver: drv, DataDir: t.TempDir()})
	waitFor := func(what string, cond func(resource.Report) bool) { t.Helper(); waitForReport(t, link, what, cond) }
	waitFor("reported PROVISIONING", func(r resource.Report) bool { return r.Resources["pkc-a"].Phase == resource.PhaseProvisioning })
	drv.mu.Lock()
	drv.ready = true
	drv.mu.Unlock()
	drv.changed <- "pkc-a"
	waitFor("reported PROVISIONED at generation 3", func(rep resource.Report) bool {
		r := rep.Resources["pkc-a"]
		return r.Phase == resource.PhaseProvisioned && r.Generation == 3
	})
	drv.changed <- "pkc-unknown" // not in the bundle: nothing to apply
	drv.mu.Lock()
	defer drv.mu.Unlock()
	if drv.applies != 2 {
		t.Fatalf("Apply ran %d times, want 2 (the bundle, then the change)", drv.applies)
	}
}

// failing is a recording link whose next fail reports are refused.
type failing struct {
	recording
	fail int
}

func (l *failing) Report(ctx context.Context, r resource.Report) error {
	l.mu.Lock()
	if l.fail > 0 {
		l.fail--
		l.mu.Unlock()
		return errors.New("sync is away")
	}
	l.mu.Unlock()
	return l.recording.Report(ctx, r)
}

func (l *failing) failNext(n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.fail = n
}

// TestAReportNamesWhatChanged: after a report that got through, the next
// names only the resource whose realized state changed, each entry whole;
// after one that failed, the next names them all again, since whether sync
// took the failed one is unknown.
func TestAReportNamesWhatChanged(t *testing.T) {
	site := resource.Site{Cloud: "AWS", Region: "us-west-2"}
	b := resource.Bundle{Site: site.String(), Version: 1, Resources: map[string]resource.BundleItem{
		"pkc-a": {Kind: "other", Generation: 2}, "pkc-b": {Kind: "other", Generation: 5}}}
	link := &failing{recording: recording{oneBundle: oneBundle{b}}}
	drv := &operated{changed: make(chan string)}
	startAgent(t, satellite.Config{Site: site, Link: link, Driver: drv, DataDir: t.TempDir()})
	waitFor := func(what string, cond func(resource.Report) bool) {
		t.Helper()
		waitForReport(t, &link.recording, what, cond)
	}
	waitFor("a first report naming both", func(r resource.Report) bool {
		return len(r.Resources) == 2 && r.Resources["pkc-a"].Phase == resource.PhaseProvisioning &&
			r.Resources["pkc-b"].Phase == resource.PhaseProvisioning
	})
	drv.mu.Lock()
	drv.ready = true
	drv.mu.Unlock()
	drv.changed <- "pkc-b"
	waitFor("a report naming pkc-b only, realized", func(r resource.Report) bool {
		return len(r.Resources) == 1 && r.Resources["pkc-b"].Phase == resource.PhaseProvisioned && r.Resources["pkc-b"].Generation == 5
	})
	link.failNext(1)
	drv.changed <- "pkc-a"
	waitFor("after a refused report, one naming both again", func(r resource.Report) bool {
		return len(r.Resources) == 2 && r.Resources["pkc-a"].Phase == resource.PhaseProvisioned && r.Resources["pkc-a"].Generation == 2 &&
			r.Resources["pkc-b"].Phase == resource.PhaseProvisioned
	})
}

// TestAWholeReportComesNowAndThen: with nothing changing, the agent still
// names every resource again every WholeReportEvery, so that a sync which
// lost what it was told (restored from a backup) hears it again.
func TestAWholeReportComesNowAndThen(t *testing.T) {
	site := resource.Site{Cloud: "AWS", Region: "us-west-2"}
	b := resource.Bundle{Site: site.String(), Version: 1, Resources: map[string]resource.BundleItem{
		"pkc-a": {Kind: "other", Generation: 2}, "pkc-b": {Kind: "other", Generation: 5}}}
	link := &recording{oneBundle: oneBundle{b}}
	startAgent(t, satellite.Config{Site: site, Link: link, Driver: &operated{changed: make(chan string)}, DataDir: t.TempDir(),
		WholeReportEvery: 50 * time.Millisecond})
	wholes := func() int {
		link.mu.Lock()
		defer link.mu.Unlock()
		n := 0
		for _, r := range link.reports {
			if len(r.Resources) == 2 {
				n++
			}
		}
		return n
	}
	deadline := time.Now().Add(10 * time.Second)
	for wholes() < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("%d whole reports within 10s, want 3 with nothing changing", wholes())
		}
		time.Sleep(5 * time.Millisecond)
	}
}
