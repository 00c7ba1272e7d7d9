package controlplane_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mothership-dev/mothership/internal/api"
	"github.com/mothership-dev/mothership/internal/runtime/trace"
)

// TestPausedClusterIsLeftAsItIs: an operator pauses a cluster; the
// tenant's resize is accepted and held (its status says PAUSED and by
// whom, the PKC keeps its brokers), the fleet view lists it as paused, and
// once resumed the resize goes through.
func TestPausedClusterIsLeftAsItIs(t *testing.T) {
	s := newSystem(t, nil)
	c := s.cluster(s.environment("prod"), "orders", "AWS", "us-west-2", "Dedicated", 1)
	c = s.waitCluster(c.ID, "PROVISIONED", provisioned)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if code := s.do("POST", "/fleet/v1/pauses", map[string]any{"resource": c.ID, "reason": "incident 42"}, nil); code == http.StatusCreated {
			break
		} else if code != http.StatusNotFound || time.Now().After(deadline) {
			t.Fatalf("pause: %d", code) // 404 until the fleet view has the cluster
		}
		time.Sleep(100 * time.Millisecond)
	}
	if code := s.do("POST", "/fleet/v1/pauses", map[string]any{"resource": c.ID}, nil); code != http.StatusConflict {
		t.Fatalf("pausing it again: %d, want 409", code)
	}
	paused := s.waitCluster(c.ID, "PAUSED", func(c api.Cluster) bool { return c.Status != nil && c.Status.Reason == "PAUSED" })
	if !strings.Contains(paused.Status.Message, "paused by u-") || !strings.Contains(paused.Status.Message, "incident 42") {
		t.Fatalf("the status does not say who paused it and why: %q", paused.Status.Message)
	}
	// The tenant's resize is accepted, and held.
	if code := s.do("PATCH", "/cmk/v2/clusters/"+c.ID, map[string]any{"spec": map[string]any{"config": map[string]any{"kind": "Dedicated", "cku": 2}}}, nil); code != http.StatusOK {
		t.Fatalf("resize: %d", code)
	}
	held := s.waitCluster(c.ID, "held", func(c api.Cluster) bool {
		return c.Status != nil && c.Status.Generation == 2 && c.Status.Reason == "PAUSED"
	})
	time.Sleep(2 * time.Second) // what would have moved by now, had it not been held
	if got := s.waitCluster(c.ID, "still held", func(api.Cluster) bool { return true }); got.Status.CKU != 1 || got.Status.ObservedGeneration != 1 {
		t.Fatalf("a paused cluster moved: %+v (was %+v)", got.Status, held.Status)
	}
	var list struct {
		Data []struct {
			ID     string `json:"id"`
			Paused string `json:"paused"`
		} `json:"data"`
	}
	if code := s.do("GET", "/fleet/v1/clusters?paused=true", nil, &list); code != http.StatusOK || len(list.Data) != 1 || list.Data[0].ID != c.ID || list.Data[0].Paused == "" {
		t.Fatalf("the fleet's paused clusters: %d %+v", code, list.Data)
	}
	// A second resize while held: the first is never realized, the
	// second overtakes it. Its answer names the change's trace, sent by
	// the client.
	traceparent := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	b, _ := json.Marshal(map[string]any{"spec": map[string]any{"config": map[string]any{"kind": "Dedicated", "cku": 3}}})
	req, _ := http.NewRequestWithContext(t.Context(), "PATCH", s.sys.URL+"/cmk/v2/clusters/"+c.ID, bytes.NewReader(b))
	req.SetBasicAuth(s.key, s.secret)
	req.Header.Set("Traceparent", traceparent)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || trace.ID(resp.Header.Get("Traceparent")) != trace.ID(traceparent) {
		t.Fatalf("second resize: %d, traceparent %q, want the trace of %q", resp.StatusCode, resp.Header.Get("Traceparent"), traceparent)
	}
	if out, err := s.cliRun("fleet", "resume", c.ID); err != nil || !strings.Contains(out, "resumed") {
		t.Fatalf("fleet resume: %v\n%s", err, out)
	}
	done := s.waitCluster(c.ID, "resized", provisioned)
	if done.Status.CKU != 3 || done.Status.Reason != "" {
		t.Fatalf("after the resume: %+v", done.Status)
	}
	// Each change's journey. The creation went through every hop in its
	// request's trace, to the satellite and back up; the last change
	// carried the client's trace (its hops below the cluster went on in
	// the resume's, which released it); the one it overtook says so.
	var journeys api.JourneyList
	waitFor(t, "the journeys of the three changes", func() bool {
		journeys = api.JourneyList{}
		return s.do("GET", "/audit/v1/journeys?subject="+c.ID, nil, &journeys) == http.StatusOK && len(journeys.Data) == 3 &&
			journeys.Data[0].Outcome == "PROVISIONED" && journeys.Data[2].Outcome == "PROVISIONED"
	})
	last, overtaken, created := journeys.Data[0], journeys.Data[1], journeys.Data[2]
	hops := func(j api.Journey) string {
		var out []string
		for i, st := range j.Steps {
			out = append(out, st.Service+": "+st.What)
			if i > 0 && (st.At.Before(j.Steps[i-1].At) || st.SincePreviousMS < 0 || st.SinceAcceptedMS < j.Steps[i-1].SinceAcceptedMS) {
				t.Fatalf("step %d of the journey of generation %d is out of order: %+v", i, j.Generation, j.Steps)
			}
		}
		return strings.Join(out, "\n")
	}
	got := hops(created)
	for _, want := range []string{"gateway: accepted POST /cmk/v2/clusters (202)", "kafka: lkc desired generation 1",
		"pkc: pkc desired generation 1", "sync: delivery desired generation 1", "satellite: the satellite reported it PROVISIONED",
		"kafka: lkc status PROVISIONED"} {
		if !strings.Contains(got, want) {
			t.Fatalf("the journey of the creation has no step %q:\n%s", want, got)
		}
	}
	if created.Generation != 1 || created.TraceID == "" || created.TookMS == nil || created.TraceID == last.TraceID {
		t.Fatalf("the creation's journey: %+v", created)
	}
	got = hops(last)
	if last.Generation != 3 || last.TraceID != trace.ID(traceparent) || last.TookMS == nil ||
		!strings.Contains(got, "gateway: accepted PATCH /cmk/v2/clusters/"+c.ID+" (200)") || !strings.Contains(got, "kafka: lkc status PROVISIONED") {
		t.Fatalf("the last change's journey: %+v\n%s", last, got)
	}
	if overtaken.Generation != 2 || overtaken.Outcome != "SUPERSEDED" || overtaken.SupersededBy != 3 {
		t.Fatalf("the overtaken change's journey: %+v", overtaken)
	}
	if out, err := s.cliRun("audit", "journey", c.ID); err != nil || !strings.Contains(out, "Generation 2, accepted") ||
		!strings.Contains(out, "superseded by generation 3") || !strings.Contains(out, "trace "+trace.ID(traceparent)+": PROVISIONED after") ||
		!strings.Contains(out, "the satellite reported it PROVISIONED") {
		t.Fatalf("audit journey: %v\n%s", err, out)
	}
	if code := s.do("DELETE", "/fleet/v1/pauses/"+c.ID, nil, nil); code != http.StatusNotFound {
		t.Fatalf("resuming it again: %d, want 404", code)
	}
	if out, err := s.cliRun("fleet", "pause", c.ID, "--reason", "again"); err != nil || !strings.Contains(out, "is paused by") {
		t.Fatalf("paused again with the CLI: %v\n%s", err, out)
	}
	s.waitCluster(c.ID, "paused again", func(c api.Cluster) bool { return c.Status != nil && c.Status.Reason == "PAUSED" })

	// A site's maintenance window, with the CLI.
	if out, err := s.cliRun("fleet", "site", "window", "set", "aws/us-west-2", "sunday 02:00 4h"); err != nil || !strings.Contains(out, "SUNDAY 02:00 UTC for 4h") {
		t.Fatalf("fleet site window set: %v\n%s", err, out)
	}
	if out, err := s.cliRun("fleet", "site", "window", "set", "aws/mars-1", "02:00 4h"); err == nil || !strings.Contains(out+err.Error(), "there is no site aws/mars-1") {
		t.Fatalf("a window for a site that does not exist: %v\n%s", err, out)
	}
	if out, err := s.cliRun("fleet", "site", "window", "delete", "aws/us-west-2"); err != nil || !strings.Contains(out, "no maintenance window") {
		t.Fatalf("fleet site window delete: %v\n%s", err, out)
	}

	// An organization's window, for its Dedicated clusters without one,
	// with the CLI; every mistake is named.
	if out, err := s.cliRun("organization", "update", "--maintenance-window", "saturday 22:00 3h"); err != nil || !strings.Contains(out, "SATURDAY 22:00 UTC for 3h") {
		t.Fatalf("organization update: %v\n%s", err, out)
	}
	if out, err := s.cliRun("organization", "describe"); err != nil || !strings.Contains(out, "SATURDAY 22:00 UTC for 3h") || !strings.Contains(out, s.sys.Organization) {
		t.Fatalf("organization describe: %v\n%s", err, out)
	}
	code, out := s.as(s.key, s.secret, "PATCH", "/org/v2/organizations/"+s.sys.Organization, map[string]any{"maintenance_window": map[string]any{"day": "FUNDAY", "start_time": "25:00", "duration": "4h"}})
	if code != http.StatusUnprocessableEntity || !strings.Contains(out, "/maintenance_window/day") || !strings.Contains(out, "/maintenance_window/start_time") {
		t.Fatalf("a bad window: %d %s", code, out)
	}
	if out, err := s.cliRun("organization", "update", "--maintenance-window", ""); err != nil || strings.Contains(out, "Maintenance Window") {
		t.Fatalf("removing the window: %v\n%s", err, out)
	}
}
