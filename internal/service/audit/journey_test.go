package audit_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mothership-dev/mothership/internal/resource"
	"github.com/mothership-dev/mothership/internal/runtime/event"
	"github.com/mothership-dev/mothership/internal/runtime/store"
	"github.com/mothership-dev/mothership/internal/runtime/store/sqlite"
	"github.com/mothership-dev/mothership/internal/runtime/trace"
	"github.com/mothership-dev/mothership/internal/service/audit"
	"github.com/mothership-dev/mothership/internal/service/svcapi"
)

// TestJourneysFollowTheTraceAndTheGenerations: a change's journey is the
// records of its trace, in time order, ending at its owner's outcome; a
// change overtaken before it was realized is superseded by the next; an
// outcome the owner wrote in another trace (a reaction to several events)
// is found by its observed generation; another organization reads none.
func TestJourneysFollowTheTraceAndTheGenerations(t *testing.T) {
	st, err := sqlite.Open(t.Context(), sqlite.Config{Path: filepath.Join(t.TempDir(), "audit.db"), Service: audit.Name,
		Owns: []string{resource.KindAudit}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	svc := audit.New(audit.Config{})
	h := svc.Host()
	h.Attach(st)
	traces := map[string]string{}
	for _, name := range []string{"create", "resize", "rename", "other"} {
		traces[name] = trace.Parent(trace.Start(context.Background()))
	}
	t0 := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	version := map[string]int64{}
	emit := func(service, kind, id string, d event.Direction, gen, observed int64, phase string, at time.Duration, tr string) {
		t.Helper()
		version[id]++
		r := store.Resource{ID: id, Kind: kind, Generation: gen, Version: version[id], Spec: json.RawMessage(`{"n":` + string(rune('0'+gen)) + `}`),
			Status: store.Status{ObservedGeneration: observed, Phase: phase}}
		if kind == resource.KindLKC {
			r.Organization, r.Environment = "org-1", "env-1"
		}
		state, _ := json.Marshal(r)
		ev := event.New(service, kind, d, id, gen, version[id], t0.Add(at), state)
		ev.TraceParent = traces[tr]
		err := st.Update(t.Context(), func(ctx context.Context, tx store.Tx) error {
			return h.OnEvent(ctx, tx, event.Topic(kind, d), ev)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	owner := svcapi.Principal{Organization: "org-1", Owner: "u-1", Bindings: []svcapi.Binding{{Role: svcapi.RoleOrganizationAdmin, Scope: svcapi.Scope{Org: "org-1"}}}}
	err = svc.Record(trace.Continue(t.Context(), traces["create"]), audit.Request{Principal: owner, Method: "POST", Path: "/cmk/v2/clusters",
		Route: "/cmk/v2/clusters", Subject: "lkc-1", Status: 202, At: t0})
	if err != nil {
		t.Fatal(err)
	}
	ms := time.Millisecond
	emit("kafka", resource.KindLKC, "lkc-1", event.Desired, 1, 0, "PROVISIONING", 1*ms, "create")
	emit("pkc", resource.KindPKC, "pkc-1", event.Desired, 1, 0, "PROVISIONING", 5*ms, "create")
	emit("sync", resource.KindDelivery, "pkc-1", event.Status, 1, 1, "PROVISIONED", 300*ms, "create")
	emit("kafka", resource.KindLKC, "lkc-1", event.Status, 1, 1, "PROVISIONED", 400*ms, "create")
	// A resize, overtaken by a rename before it was realized; the rename's
	// outcome came in another trace.
	emit("kafka", resource.KindLKC, "lkc-1", event.Desired, 2, 1, "PROVISIONING", time.Minute, "resize")
	emit("kafka", resource.KindLKC, "lkc-1", event.Desired, 3, 1, "PROVISIONING", time.Minute+ms, "rename")
	emit("kafka", resource.KindLKC, "lkc-1", event.Status, 3, 3, "PROVISIONED", time.Minute+500*ms, "other")

	l, err := svc.Journeys(t.Context(), owner, "lkc-1")
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Data) != 3 {
		t.Fatalf("%d journeys, want 3: %+v", len(l.Data), l.Data)
	}
	rename, resize, create := l.Data[0], l.Data[1], l.Data[2]
	if create.Generation != 1 || create.Outcome != "PROVISIONED" || create.TookMS == nil || *create.TookMS != 400 || create.TraceID != trace.ID(traces["create"]) {
		t.Fatalf("the creation's journey: %+v", create)
	}
	var hops []string
	for _, s := range create.Steps {
		hops = append(hops, s.Service+": "+s.What)
	}
	want := []string{"gateway: accepted POST /cmk/v2/clusters (202)", "kafka: lkc desired generation 1", "pkc: pkc desired generation 1",
		"satellite: the satellite reported it PROVISIONED", "kafka: lkc status PROVISIONED"}
	if strings.Join(hops, "|") != strings.Join(want, "|") {
		t.Fatalf("the creation's hops:\n%s\nwant:\n%s", strings.Join(hops, "\n"), strings.Join(want, "\n"))
	}
	if last := create.Steps[len(create.Steps)-1]; last.SinceAcceptedMS != 400 || last.SincePreviousMS != 100 {
		t.Fatalf("the last hop's times: %+v", last)
	}
	if resize.Generation != 2 || resize.Outcome != "SUPERSEDED" || resize.SupersededBy != 3 || resize.Summary() != "superseded by generation 3" {
		t.Fatalf("the overtaken resize's journey: %+v", resize)
	}
	if rename.Generation != 3 || rename.Outcome != "PROVISIONED" || rename.TookMS == nil || *rename.TookMS != 499 || len(rename.Steps) != 2 {
		t.Fatalf("the rename's journey (its outcome in another trace): %+v", rename)
	}
	if _, err := svc.Journeys(t.Context(), svcapi.Principal{Organization: "org-2", Owner: "u-2",
		Bindings: []svcapi.Binding{{Role: svcapi.RoleOrganizationAdmin, Scope: svcapi.Scope{Org: "org-2"}}}}, "lkc-1"); err == nil ||
		!strings.Contains(err.Error(), "no change") {
		t.Fatalf("another organization's journeys: %v", err)
	}
}
