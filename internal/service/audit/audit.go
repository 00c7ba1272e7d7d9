// Package audit is the audit log (layer 4, beside the gateway): every
// mutating API request, allowed or denied, and every change of every
// resource becomes one record, in the shape of Confluent Cloud's audit log,
// written to audit's own database and so, through its outbox, to the
// audit topic. GET /audit/v1/events?subject=… reads a resource's history
// back, in order, restricted to what the caller may read.
package audit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/mothership-dev/mothership/internal/api"
	"github.com/mothership-dev/mothership/internal/resource"
	"github.com/mothership-dev/mothership/internal/runtime/event"
	"github.com/mothership-dev/mothership/internal/runtime/host"
	"github.com/mothership-dev/mothership/internal/runtime/reactor"
	"github.com/mothership-dev/mothership/internal/runtime/store"
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

// record is the spec of an audit record: the event as served, and where
// its resource lies, for authorization.
type record struct {
	Event api.AuditEvent `json:"event"`
	Scope svcapi.Scope   `json:"scope"`
}

// Config configures the service.
type Config struct {
	Logger *slog.Logger
}

// Service is the audit service.
type Service struct {
	log *slog.Logger
	st  store.Store
}

// New returns the service.
func New(cfg Config) *Service {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Service{log: cfg.Logger.With("service", Name)}
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
		Attach:   func(st store.Store) { s.st = st },
		// Every event waits in memory with its state until recorded
		// (nothing coalesces), so fewer wait than for a reconciler.
		Reactor: reactor.Config{MaxPending: 10_000},
	}
}

// id orders a subject's records by time: a prefix scan on "a-<subject>-"
// reads its history in order. suffix makes it unique (and, for a resource
// change, the same on a replay).
func id(subject string, at time.Time, suffix string) string {
	return fmt.Sprintf("a-%s-%019d-%s", subject, at.UnixNano(), suffix)
}

// onEvent records one change of a resource.
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
	state, err := redact(r, ev.Data)
	if err != nil {
		return err
	}
	rec := record{Scope: scope, Event: api.AuditEvent{
		SpecVersion: "1.0", ID: ev.ID, Source: ev.Source, Type: "io.mothership.audit.resource_changed",
		Subject: ev.Subject, Time: ev.Time, DataContentType: "application/json",
		Data: api.AuditData{
			ServiceName:        strings.TrimPrefix(ev.Source, "/mothership/"),
			MethodName:         r.Kind + "." + dir,
			ResourceName:       crn(scope, r.Kind, r.ID),
			AuthenticationInfo: api.AuthenticationInfo{Principal: "System:" + strings.TrimPrefix(ev.Source, "/mothership/")},
			AuthorizationInfo:  api.AuthorizationInfo{Granted: true, Operation: "write", ResourceType: r.Kind},
			Request:            map[string]any{"generation": ev.Generation, "version": ev.Version},
			Result:             map[string]any{"phase": r.Status.Phase, "reason": r.Status.Reason, "deleted": r.Deleted(), "state": state},
		},
	}}
	_, err = tx.ResourceCreate(ctx, store.CreateParams{Kind: resource.KindAudit, ID: id(ev.Subject, ev.Time, dir+"-"+fmt.Sprint(ev.Version)),
		Organization: scope.Org, Environment: scope.Env, Spec: resource.Encode(rec)})
	if errors.Is(err, store.ErrAlreadyExists) {
		return nil // a replay: recorded already
	}
	return err
}

// maxState bounds the state a record keeps: a record must always fit the
// store's limits, or the change would never be recorded.
const maxState = 64 << 10

// redact returns the state a record may show: an API key's secret hash
// and sealed SCRAM credential are left out (they are never served), and a
// state too large is replaced by a note.
func redact(r store.Resource, state json.RawMessage) (json.RawMessage, error) {
	if r.Kind == resource.KindAPIKey {
		var spec map[string]json.RawMessage
		if err := json.Unmarshal(r.Spec, &spec); err != nil {
			return nil, err
		}
		delete(spec, "secret")
		delete(spec, "scram")
		r.Spec = resource.Encode(spec)
		state = resource.Encode(r)
	}
	if len(state) > maxState {
		return json.RawMessage(fmt.Sprintf(`{"omitted":"the state is %d bytes"}`, len(state))), nil
	}
	return state, nil
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
	rec := record{Scope: scope, Event: api.AuditEvent{
		SpecVersion: "1.0", ID: randomID(), Source: "/mothership/gateway", Type: "io.mothership.audit.api_request",
		Subject: subject, Time: q.At.UTC(), DataContentType: "application/json",
		Data: api.AuditData{
			ServiceName:        "gateway",
			MethodName:         q.Method + " " + q.Route,
			ResourceName:       crn(scope, "resource", subject),
			AuthenticationInfo: api.AuthenticationInfo{Principal: principal},
			AuthorizationInfo:  api.AuthorizationInfo{Granted: granted},
			Request:            map[string]any{"method": q.Method, "path": q.Path, "api_key": q.KeyID},
			Result:             map[string]any{"status": q.Status, "code": q.Code},
		},
	}}
	if q.Suppressed > 0 {
		rec.Event.Data.Result["unauthenticated_requests_before"] = q.Suppressed
	}
	err := s.st.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		_, err := tx.ResourceCreate(ctx, store.CreateParams{Kind: resource.KindAudit, ID: id(subject, q.At, rec.Event.ID),
			Organization: scope.Org, Spec: resource.Encode(rec)})
		return err
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
				rec, err := resource.Decode[record](r.Spec)
				if err != nil {
					return err
				}
				// The id's prefix matches other subjects that begin
				// with this one; only this subject's records count.
				if rec.Event.Subject == subject && p.Can(svcapi.Read, rec.Scope) {
					out.Data = append(out.Data, rec.Event)
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
