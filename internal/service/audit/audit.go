// Package audit is the audit log (layer 4, beside the gateway): every
// mutating API request, allowed or denied, and every change of every
// resource becomes one record (for a change: who, what, when, which
// generation, a digest of the state and the fields that changed, not the
// state itself), in the shape of Confluent Cloud's audit log,
// written to audit's own database and so, through its outbox, to the
// audit topic. GET /audit/v1/events?subject=… reads a resource's history
// back, in order, restricted to what the caller may read.
package audit

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	json "github.com/segmentio/encoding/json"

	"github.com/mothership-dev/mothership/internal/api"
	"github.com/mothership-dev/mothership/internal/resource"
	"github.com/mothership-dev/mothership/internal/runtime/event"
	"github.com/mothership-dev/mothership/internal/runtime/host"
	"github.com/mothership-dev/mothership/internal/runtime/reactor"
	"github.com/mothership-dev/mothership/internal/runtime/store"
	"github.com/mothership-dev/mothership/internal/runtime/trace"
	"github.com/mothership-dev/mothership/internal/service/svcapi"
)

// Name and Layer place the service in the layer cake: at the top, since
// it hears from every layer.
const (
	Name  = "audit"
	Layer = 4
)

// maxScan bounds the records one page of the log reads.
const maxScan = 5000

// EventsPath is where the log is read.
const EventsPath = "/audit/v1/events"

// DefaultRetention is how long records are kept unless configured.
const DefaultRetention = 90 * 24 * time.Hour

// Config configures the service.
type Config struct {
	// Retention is how long a record is kept (default DefaultRetention);
	// negative keeps records for ever. Records past it are purged hourly.
	Retention time.Duration
	Logger    *slog.Logger
	// Now returns the current time; tests may move it.
	Now func() time.Time
}

// Service is the audit service.
type Service struct {
	cfg Config
	log *slog.Logger
	st  store.Store

	// purgeAfter is where the purge goes on: the last record id it
	// looked at ("": a round begins). Only the upkeep uses it.
	purgeAfter string
	purged     int
}

// New returns the service.
func New(cfg Config) *Service {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Retention == 0 {
		cfg.Retention = DefaultRetention
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Service{cfg: cfg, log: cfg.Logger.With("service", Name)}
}

// Host declares the service: it owns the audit records and hears every
// event of every other kind, none coalesced.
func (s *Service) Host() host.Service {
	var topics []string
	for _, kind := range resource.Kinds {
		topics = append(topics, event.Topic(kind, event.Desired), event.Topic(kind, event.Status))
	}
	return host.Service{
		Name:     Name,
		Layer:    Layer,
		Owns:     []string{resource.KindAudit},
		ReactsTo: topics,
		OnEvent:  s.onEvent,
		// The fields each event's record compares with, read at once.
		PrefetchEvents: prefetchFields,
		Attach:         func(st store.Store) { s.st = st },
		// Every event waits in memory with its state until recorded
		// (nothing coalesces), so fewer wait than for a reconciler.
		Reactor: reactor.Config{MaxPending: 10_000},
		Upkeep:  s.purge,
	}
}

// purgePage is how many records one upkeep transaction looks at.
const purgePage = 1000

// purge removes the records older than the retention, a page per call,
// going through every record once a round (records are in id order, by
// subject then time, so age is known only by reading them).
func (s *Service) purge(ctx context.Context, tx store.Tx) (bool, error) {
	if s.cfg.Retention < 0 {
		return false, nil
	}
	cutoff := s.cfg.Now().Add(-s.cfg.Retention)
	rs, err := tx.ResourceList(ctx, store.ListParams{Kind: resource.KindAudit, AfterID: s.purgeAfter, Limit: purgePage})
	if err != nil {
		return false, err
	}
	for _, r := range rs {
		if r.CreatedAt.Before(cutoff) {
			if err := tx.ResourcePurge(ctx, resource.KindAudit, r.ID); err != nil {
				return false, err
			}
			var rec record
			if json.Unmarshal(r.Spec, &rec) == nil && rec.Trace != "" {
				if err := tx.IndexDelete(ctx, ixTrace, traceKey(rec.Trace, r.ID)); err != nil {
					return false, err
				}
			}
			s.purged++
		}
	}
	if len(rs) == purgePage {
		s.purgeAfter = rs[len(rs)-1].ID
		return true, nil
	}
	if s.purged > 0 {
		s.log.InfoContext(ctx, "audit records past their retention purged", "records", s.purged, "retention", s.cfg.Retention.String())
	}
	s.purgeAfter, s.purged = "", 0
	return false, nil
}

// id orders a subject's records by time: a prefix scan on "a-<subject>-"
// reads its history in order. suffix makes it unique (and, for a resource
// change, the same on a replay).
func id(subject string, at time.Time, suffix string) string {
	return fmt.Sprintf("a-%s-%019d-%s", subject, at.UnixNano(), suffix)
}

// onEvent records one change of a resource: who made it, what it is
// (kind, direction, generation, version, phase), a digest of the full
// state and which fields changed since the version before, not the state
// itself. The state is on its topic under the subject at that version,
// for as long as the event history keeps it.
func (s *Service) onEvent(ctx context.Context, tx store.Tx, topic string, ev event.Event) error {
	var r store.Resource
	if err := json.Unmarshal(ev.Data, &r); err != nil {
		return fmt.Errorf("audit: %s: %w", ev.ID, err)
	}
	scope := svcapi.Scope{Org: r.Organization, Env: r.Environment}
	if r.Kind == resource.KindLKC {
		scope.Cluster = r.ID
	}
	dir := strings.TrimPrefix(topic, "mothership."+r.Kind+".")
	changed, err := changedFields(ctx, tx, topic, ev.Version, r)
	if err != nil {
		return err
	}
	if dir == string(event.Status) && changed != nil && !slices.ContainsFunc(changed, statusTransition) {
		// Progress within a phase (a message, a detail) is in the event
		// history; the log keeps the status's transitions.
		return nil
	}
	digest := sha256.Sum256(ev.Data)
	source := strings.TrimPrefix(ev.Source, "/mothership/")
	rec := record{ID: ev.ID, Source: source, Method: r.Kind + "." + dir, Subject: ev.Subject, Time: ev.Time.UnixNano(),
		Principal: "System:" + source, Org: scope.Org, Env: scope.Env, Cluster: scope.Cluster,
		Kind: r.Kind, Generation: ev.Generation, Version: ev.Version, Phase: r.Status.Phase, Reason: r.Status.Reason, Observed: r.Status.ObservedGeneration,
		Deleted: r.Deleted(), Digest: digest[:], Changed: changed, Trace: trace.ID(ev.TraceParent)}
	return create(ctx, tx, rec, id(ev.Subject, ev.Time, dir+"-"+fmt.Sprint(ev.Version)), scope)
}

// ixTrace lists the records of each trace, but API requests':
// "TRACE/RECORD-ID" → "". It goes with the records, at their purge.
const ixTrace = "audit_trace"

func traceKey(trace, recordID string) string { return trace + "/" + recordID }

// create writes a record and its entry in ixTrace. A record written
// already (a replay) is left as it is.
func create(ctx context.Context, tx store.Tx, rec record, recordID string, scope svcapi.Scope) error {
	_, err := tx.ResourceCreate(ctx, store.CreateParams{Kind: resource.KindAudit, ID: recordID,
		Organization: scope.Org, Environment: scope.Env, Spec: resource.Encode(rec)})
	if errors.Is(err, store.ErrAlreadyExists) {
		return nil // a replay: recorded already
	}
	// A request's record is found among its subject's own, which a
	// journey reads anyway: indexing it would cost every request an
	// insert on its way.
	if err != nil || rec.Trace == "" || rec.Kind == "" || len(traceKey(rec.Trace, recordID)) > store.MaxIndexKeyBytes {
		return err
	}
	return tx.IndexPut(ctx, ixTrace, traceKey(rec.Trace, recordID), "")
}

// statusTransition reports whether a changed status field makes a
// transition: the phase, its reason or the generation observed.
func statusTransition(field string) bool {
	return field == "status.phase" || field == "status.reason" || field == "status.observed_generation"
}

// ixFields keeps, per topic and subject, the newest version audit
// recorded and a short hash of each of its fields, from which the next
// record names the fields that changed. It is bounded by the resources,
// not by their history.
const ixFields = "audit_fields"

// prefetchFields reads, in one statement, the ixFields entries that
// changedFields reads for each of evs.
func prefetchFields(ctx context.Context, tx store.Tx, evs []store.TopicEvent) error {
	keys := make([]string, 0, len(evs))
	for _, e := range evs {
		if key := e.Topic + "/" + e.Event.Subject; len(key) <= store.MaxIndexKeyBytes {
			keys = append(keys, key)
		}
	}
	_, err := tx.IndexGetMany(ctx, ixFields, keys)
	return err
}

// changedFields returns the fields of r (at version) whose values differ
// from the newest version recorded before it, and records r's if it is
// the newest. nil when nothing was recorded before: a first record, or an
// event older than one already recorded (events of a subject may arrive
// out of order).
func changedFields(ctx context.Context, tx store.Tx, topic string, version int64, r store.Resource) ([]string, error) {
	key := topic + "/" + r.ID
	fields, err := hashFields(r, strings.HasSuffix(topic, "."+string(event.Status)))
	if err != nil {
		return nil, fmt.Errorf("audit: %s %s: %w", r.Kind, r.ID, err)
	}
	stored, err := tx.IndexGet(ctx, ixFields, key)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	prevVersion, prev := parseFields(stored)
	if version <= prevVersion {
		return nil, nil
	}
	if value := formatFields(version, fields); len(value) <= store.MaxIndexValueBytes && len(key) <= store.MaxIndexKeyBytes {
		if err := tx.IndexPut(ctx, ixFields, key, value); err != nil {
			return nil, err
		}
	}
	if prev == nil {
		return nil, nil
	}
	changed := []string{}
	for _, path := range slices.Sorted(maps.Keys(fields)) {
		if prev[path] != fields[path] {
			changed = append(changed, path)
		}
	}
	for path := range prev {
		if _, ok := fields[path]; !ok {
			changed = append(changed, path)
		}
	}
	slices.Sort(changed)
	return changed, nil
}

// hashFields maps the fields of a state that its topic announces to a
// short hash of their values: for a desired event each field of the spec
// and the deletion; for a status event the status's phase, reason,
// message, observed generation and each field of its detail.
func hashFields(r store.Resource, status bool) (map[string]string, error) {
	out := map[string]string{}
	put := func(path string, value []byte) {
		h := fnv.New32a()
		h.Write(value)
		out[path] = hex.EncodeToString(h.Sum(nil))
	}
	object := func(prefix string, raw json.RawMessage) error {
		if len(raw) == 0 || raw[0] != '{' {
			if len(raw) > 0 {
				put(strings.TrimSuffix(prefix, "."), raw)
			}
			return nil
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(raw, &m); err != nil {
			return err
		}
		for k, v := range m {
			put(prefix+k, v)
		}
		return nil
	}
	if !status {
		if r.DeletedAt != nil {
			put("deleted_at", []byte(r.DeletedAt.String()))
		}
		return out, object("spec.", r.Spec)
	}
	put("status.phase", []byte(r.Status.Phase))
	put("status.reason", []byte(r.Status.Reason))
	put("status.message", []byte(r.Status.Message))
	put("status.observed_generation", strconv.AppendInt(nil, r.Status.ObservedGeneration, 10))
	return out, object("status.detail.", r.Status.Detail)
}

// formatFields and parseFields write and read an ixFields value:
// "VERSION path=hash path=hash …" (paths are JSON keys: no space, no =
// in the ones Mothership writes; a value that does not parse counts as
// none recorded).
func formatFields(version int64, fields map[string]string) string {
	var b strings.Builder
	b.WriteString(strconv.FormatInt(version, 10))
	for _, path := range slices.Sorted(maps.Keys(fields)) {
		b.WriteString(" " + path + "=" + fields[path])
	}
	return b.String()
}

func parseFields(s string) (int64, map[string]string) {
	parts := strings.Fields(s)
	if len(parts) == 0 {
		return 0, nil
	}
	version, err := strconv.ParseInt(parts[0], 10, 64)
	if err != nil {
		return 0, nil
	}
	fields := make(map[string]string, len(parts)-1)
	for _, p := range parts[1:] {
		path, hash, ok := strings.Cut(p, "=")
		if !ok {
			return version, nil
		}
		fields[path] = hash
	}
	return version, fields
}

func crn(s svcapi.Scope, kind, id string) string {
	if s.Org == "" {
		return "crn://mothership/" + kind + "=" + id
	}
	return s.CRN() + "/" + kind + "=" + id
}

// Request is one API request to record.
type Request struct {
	Principal svcapi.Principal
	// KeyID is the key presented, even when it did not authenticate.
	KeyID        string
	Method, Path string
	Route        string
	Subject      string
	Status       int
	Code         string
	At           time.Time
	// Suppressed counts the unauthenticated requests from the same
	// client that were counted, not recorded, before this one.
	Suppressed int
}

// Record writes the audit record of a mutating request, allowed or denied.
func (s *Service) Record(ctx context.Context, q Request) error {
	principal := "User:" + q.Principal.Owner
	if q.Principal.Owner == "" {
		principal = "ApiKey:" + q.KeyID // not authenticated
	}
	subject := q.Subject
	if subject == "" {
		subject = "request"
	}
	scope := svcapi.Scope{Org: q.Principal.Organization}
	granted := q.Status != http.StatusUnauthorized && q.Status != http.StatusForbidden
	rec := record{ID: randomID(), Source: "gateway", Method: q.Method + " " + q.Route, Subject: subject, Time: q.At.UnixNano(),
		Principal: principal, Denied: !granted, Org: scope.Org,
		HTTPMethod: q.Method, Path: q.Path, KeyID: q.KeyID, Status: q.Status, Code: q.Code, Suppressed: q.Suppressed,
		Trace: trace.IDOf(ctx)}
	err := s.st.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		return create(ctx, tx, rec, id(subject, q.At, rec.ID), scope)
	})
	if err != nil {
		return fmt.Errorf("audit: record %s %s: %w", q.Method, q.Path, err)
	}
	return nil
}

// Events returns a subject's history in order, what the caller may read of
// it: records of another organization are never shown.
func (s *Service) Events(ctx context.Context, p svcapi.Principal, subject string, page svcapi.Page) (api.List[api.AuditEvent], error) {
	out := api.List[api.AuditEvent]{APIVersion: "audit/v1", Kind: "AuditEventList", Data: []api.AuditEvent{}}
	if subject == "" {
		e := api.Errorf(http.StatusBadRequest, api.CodeBadRequest, "subject must be a resource id, like lkc-abc123")
		e.Parameter = "subject"
		return out, e
	}
	prefix := "a-" + subject + "-"
	after := max(page.After, prefix)
	var ids []string
	err := s.st.View(ctx, func(ctx context.Context, tx store.Tx) error {
		// The scan is bounded: a page reads at most maxScan records, and
		// says where to go on.
		for scanned := 0; len(out.Data) <= page.Size && scanned < maxScan; scanned += page.Size + 1 {
			rs, err := tx.ResourceList(ctx, store.ListParams{Kind: resource.KindAudit, Organization: p.Organization, AfterID: after, Limit: page.Size + 1})
			if err != nil {
				return err
			}
			for _, r := range rs {
				if !strings.HasPrefix(r.ID, prefix) {
					rs = nil
					break
				}
				after = r.ID
				ev, scope, err := decodeRecord(r.Spec)
				if err != nil {
					return fmt.Errorf("audit: record %s: %w", r.ID, err)
				}
				// The id's prefix matches other subjects that begin
				// with this one; only this subject's records count.
				if ev.Subject == subject && p.Can(svcapi.Read, scope) {
					out.Data = append(out.Data, ev)
					ids = append(ids, r.ID)
					if len(out.Data) > page.Size {
						break
					}
				}
			}
			if len(rs) <= page.Size {
				break
			}
		}
		return nil
	})
	next := ""
	if len(out.Data) > page.Size {
		out.Data = out.Data[:page.Size]
		next = ids[page.Size-1]
	}
	out.Metadata = svcapi.ListMeta(EventsPath, map[string][]string{"subject": {subject}}, page, svcapi.Token(next))
	return out, err
}

func randomID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go ≥ 1.24)
	return hex.EncodeToString(b)
}
