package audit

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/mothership-dev/mothership/internal/api"
	"github.com/mothership-dev/mothership/internal/resource"
	"github.com/mothership-dev/mothership/internal/runtime/event"
	"github.com/mothership-dev/mothership/internal/runtime/store"
	"github.com/mothership-dev/mothership/internal/service/svcapi"
)

// JourneysPath is where a resource's last changes are followed hop by hop.
const JourneysPath = "/audit/v1/journeys"

// Bounds of one answer: the changes shown, and the records read for each.
const (
	maxJourneys   = 5
	maxTraceSteps = 200
)

// Journeys returns the last changes of subject, newest first, each as the
// hops recorded it: the request that was accepted, each service's write
// in the change's trace (the trace context every event carries), the
// satellite's report, and the owner's outcome. A change that a newer one
// overtook before it was realized (the reactors coalesce) shows as
// SUPERSEDED by that generation, not as a trace that stops. The caller
// must be allowed to read the subject's records.
func (s *Service) Journeys(ctx context.Context, p svcapi.Principal, subject string) (api.JourneyList, error) {
	out := api.JourneyList{APIVersion: "audit/v1", Kind: "JourneyList", Data: []api.Journey{}}
	if subject == "" {
		e := api.Errorf(http.StatusBadRequest, api.CodeBadRequest, "subject must be a resource id, like lkc-abc123")
		e.Parameter = "subject"
		return out, e
	}
	err := s.st.View(ctx, func(ctx context.Context, tx store.Tx) error {
		own, err := subjectRecords(ctx, tx, p, subject)
		if err != nil {
			return err
		}
		if len(own) == 0 {
			return api.Errorf(http.StatusNotFound, api.CodeNotFound, "no change of %q is recorded that you may read", subject)
		}
		var desired []int // indexes in own of the changes of the desired state
		for i, r := range own {
			if r.Kind != "" && r.Method == r.Kind+"."+string(event.Desired) {
				desired = append(desired, i)
			}
		}
		if len(desired) > maxJourneys {
			desired = desired[len(desired)-maxJourneys:]
		}
		for n := len(desired) - 1; n >= 0; n-- {
			var next *record
			if n+1 < len(desired) {
				next = &own[desired[n+1]]
			}
			j, err := journey(ctx, tx, own, desired[n], next)
			if err != nil {
				return err
			}
			out.Data = append(out.Data, j)
		}
		return nil
	})
	return out, err
}

// subjectRecords reads subject's records the caller may read, oldest
// first (bounded by maxScan).
func subjectRecords(ctx context.Context, tx store.Tx, p svcapi.Principal, subject string) ([]record, error) {
	prefix := "a-" + subject + "-"
	var out []record
	for after, scanned := prefix, 0; scanned < maxScan; {
		rs, err := tx.ResourceList(ctx, store.ListParams{Kind: resource.KindAudit, Organization: p.Organization, AfterID: after, Limit: 500})
		if err != nil {
			return nil, err
		}
		for _, r := range rs {
			if !strings.HasPrefix(r.ID, prefix) {
				return out, nil
			}
			after = r.ID
			rec, err := decodeShort(r)
			if err != nil {
				return nil, err
			}
			if rec.Subject == subject && p.Can(svcapi.Read, rec.scope()) {
				out = append(out, rec)
			}
		}
		scanned += len(rs)
		if len(rs) < 500 {
			break
		}
	}
	return out, nil
}

// decodeShort reads a record; one of the legacy shape (before records
// were kept short) has no trace and shows as its own step.
func decodeShort(r store.Resource) (record, error) {
	rec, err := resource.Decode[record](r.Spec)
	if err != nil {
		return record{}, fmt.Errorf("audit: record %s: %w", r.ID, err)
	}
	if rec.Subject == "" {
		ev, _, err := decodeRecord(r.Spec)
		if err != nil {
			return record{}, fmt.Errorf("audit: record %s: %w", r.ID, err)
		}
		rec = record{ID: ev.ID, Source: ev.Data.ServiceName, Method: ev.Data.MethodName, Subject: ev.Subject, Time: ev.Time.UnixNano()}
	}
	return rec, nil
}

// journey follows the change own[at] (a desired-state record of the
// subject) through its trace. next is the subject's next change, if any.
func journey(ctx context.Context, tx store.Tx, own []record, at int, next *record) (api.Journey, error) {
	d := own[at]
	steps := []record{d}
	for _, r := range own {
		if r.Kind == "" && r.Trace != "" && r.Trace == d.Trace {
			steps = append(steps, r) // the request that made the change (not in ixTrace)
		}
	}
	if d.Trace != "" {
		entries, err := tx.IndexList(ctx, store.IndexListParams{Index: ixTrace, Prefix: d.Trace + "/", Limit: maxTraceSteps})
		if err != nil {
			return api.Journey{}, err
		}
		for _, e := range entries {
			_, id, _ := strings.Cut(e.Key, "/")
			r, err := tx.ResourceGetAny(ctx, resource.KindAudit, id)
			if err != nil {
				continue // purged meanwhile
			}
			rec, err := decodeShort(r)
			if err != nil {
				return api.Journey{}, err
			}
			if rec.ID != d.ID {
				steps = append(steps, rec)
			}
		}
	}
	slices.SortStableFunc(steps, func(a, b record) int { return cmp.Compare(a.Time, b.Time) })
	j := api.Journey{Subject: d.Subject, Generation: d.Generation, TraceID: d.Trace, Outcome: "IN_PROGRESS"}
	accepted := steps[0].Time
	j.AcceptedAt = time.Unix(0, accepted).UTC()

	// The outcome is the subject's owner's: in the trace, or, when the
	// owner wrote it while reacting to something else (a reaction to
	// several events continues the newest one's trace), the subject's
	// first status at this generation after the change.
	var outcome *record
	for _, r := range steps {
		if r.Subject == d.Subject && outcomeOf(r, d.Generation) {
			outcome = &r
			break
		}
	}
	if outcome == nil {
		for _, r := range own[at+1:] {
			if isStatus(r) && r.Observed > d.Generation {
				break // a newer generation was observed first
			}
			if outcomeOf(r, d.Generation) {
				outcome = &r
				steps = append(steps, r)
				slices.SortStableFunc(steps, func(a, b record) int { return cmp.Compare(a.Time, b.Time) })
				break
			}
		}
	}
	switch {
	case d.Deleted:
		j.Outcome = "DELETED"
		took := steps[len(steps)-1].Time - accepted
		j.TookMS = ptr(time.Duration(took).Milliseconds())
	case outcome != nil:
		j.Outcome = outcome.Phase
		j.TookMS = ptr(time.Duration(outcome.Time - accepted).Milliseconds())
	case next != nil:
		j.Outcome, j.SupersededBy = "SUPERSEDED", next.Generation
	}
	prev := accepted
	for _, r := range steps {
		if outcome != nil && r.Time > outcome.Time && !d.Deleted {
			break // what followed belongs to later changes
		}
		j.Steps = append(j.Steps, step(r, prev, accepted))
		prev = r.Time
	}
	return j, nil
}

func ptr[T any](v T) *T { return &v }

// outcomeOf reports whether r is the owner's outcome of generation: a
// status that observed it, realized or failed.
func outcomeOf(r record, generation int64) bool {
	return isStatus(r) && r.Observed == generation && (r.Phase == resource.PhaseProvisioned || r.Phase == resource.PhaseFailed)
}

func isStatus(r record) bool { return r.Kind != "" && r.Method == r.Kind+"."+string(event.Status) }

// step is one record as a hop of a journey.
func step(r record, prev, accepted int64) api.JourneyStep {
	s := api.JourneyStep{At: time.Unix(0, r.Time).UTC(), Service: r.Source, Kind: r.Kind, Generation: r.Generation, Phase: r.Phase,
		SincePreviousMS: time.Duration(r.Time - prev).Milliseconds(), SinceAcceptedMS: time.Duration(r.Time - accepted).Milliseconds()}
	switch {
	case r.Kind == "":
		s.What = fmt.Sprintf("accepted %s %s (%d)", r.HTTPMethod, r.Path, r.Status)
	case r.Kind == resource.KindDelivery && isStatus(r):
		// sync writes what the satellite reported.
		s.Service, s.What = "satellite", "the satellite reported it "+r.Phase
	case isStatus(r):
		s.What = fmt.Sprintf("%s status %s", r.Kind, r.Phase)
	case r.Deleted:
		s.What = fmt.Sprintf("%s deleted", r.Kind)
	default:
		s.What = fmt.Sprintf("%s desired generation %d", r.Kind, r.Generation)
	}
	return s
}
