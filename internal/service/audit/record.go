package audit

import (
	"encoding/hex"
	"strings"
	"time"

	json "github.com/segmentio/encoding/json"

	"github.com/mothership-dev/mothership/internal/api"
	"github.com/mothership-dev/mothership/internal/service/svcapi"
)

// record is the spec of an audit record. A record is written for every
// change, so it is kept short: one-letter keys, nothing the served event
// repeats (the event is built from it when read), and a digest of the
// state rather than the state.
type record struct {
	ID      string `json:"i"` // the served event's id
	Source  string `json:"s"` // the service that wrote it: "gateway", "kafka", …
	Method  string `json:"m"` // "lkc.desired", "PATCH /cmk/v2/clusters/{id}"
	Subject string `json:"u"`
	// Time is in Unix nanoseconds.
	Time int64 `json:"t"`
	// Trace is the W3C trace id the change or request carried: the
	// records of one trace are one change's journey (ixTrace).
	Trace string `json:"tr,omitempty"`
	// Principal is who acted: "User:u-…", "ApiKey:…", "System:pkc".
	Principal string `json:"p"`
	Denied    bool   `json:"n,omitempty"`
	// Org, Env and Cluster are where the resource lies, for
	// authorization.
	Org     string `json:"o,omitempty"`
	Env     string `json:"e,omitempty"`
	Cluster string `json:"c,omitempty"`

	// A change of a resource.
	Kind       string `json:"k,omitempty"`
	Generation int64  `json:"g,omitempty"`
	Version    int64  `json:"v,omitempty"`
	Phase      string `json:"ph,omitempty"`
	// Observed is a status's observed generation.
	Observed int64    `json:"og,omitempty"`
	Reason   string   `json:"rs,omitempty"`
	Deleted  bool     `json:"x,omitempty"`
	Digest   []byte   `json:"h,omitempty"` // SHA-256 of the state
	Changed  []string `json:"f,omitempty"` // nil: not known

	// An API request.
	HTTPMethod string `json:"hm,omitempty"`
	Path       string `json:"hp,omitempty"`
	KeyID      string `json:"hk,omitempty"`
	Status     int    `json:"hs,omitempty"`
	Code       string `json:"hc,omitempty"`
	// Suppressed counts the unauthenticated requests from the same client
	// counted, not recorded, before this one.
	Suppressed int `json:"hn,omitempty"`
}

func (r record) scope() svcapi.Scope { return svcapi.Scope{Org: r.Org, Env: r.Env, Cluster: r.Cluster} }

// event is the record as served: a CloudEvent in the shape of Confluent
// Cloud's audit log.
func (r record) event() api.AuditEvent {
	e := api.AuditEvent{
		SpecVersion: "1.0", ID: r.ID, Source: "/mothership/" + r.Source, Subject: r.Subject,
		Time: time.Unix(0, r.Time).UTC(), DataContentType: "application/json",
		Data: api.AuditData{
			ServiceName:        r.Source,
			MethodName:         r.Method,
			AuthenticationInfo: api.AuthenticationInfo{Principal: r.Principal},
			AuthorizationInfo:  api.AuthorizationInfo{Granted: !r.Denied},
		},
	}
	if r.Kind == "" {
		e.Type = "io.mothership.audit.api_request"
		e.Data.ResourceName = crn(r.scope(), "resource", r.Subject)
		e.Data.Request = map[string]any{"method": r.HTTPMethod, "path": r.Path, "api_key": r.KeyID}
		e.Data.Result = map[string]any{"status": r.Status, "code": r.Code}
		if r.Suppressed > 0 {
			e.Data.Result["unauthenticated_requests_before"] = r.Suppressed
		}
		return e
	}
	dir := strings.TrimPrefix(r.Method, r.Kind+".")
	e.Type = "io.mothership.audit.resource_changed"
	e.Data.ResourceName = crn(r.scope(), r.Kind, r.Subject)
	e.Data.AuthorizationInfo.Operation, e.Data.AuthorizationInfo.ResourceType = "write", r.Kind
	e.Data.Request = map[string]any{"generation": r.Generation, "version": r.Version, "topic": "mothership." + r.Kind + "." + dir}
	e.Data.Result = map[string]any{"phase": r.Phase, "reason": r.Reason, "deleted": r.Deleted,
		"digest": "sha256:" + hex.EncodeToString(r.Digest), "changed": r.Changed}
	return e
}

// legacyRecord is the record written before records were kept short:
// the event as served, and the scope.
type legacyRecord struct {
	Event *api.AuditEvent `json:"event"`
	Scope svcapi.Scope    `json:"scope"`
}

// decodeRecord reads a record of either shape, as its served event and
// its scope.
func decodeRecord(spec json.RawMessage) (api.AuditEvent, svcapi.Scope, error) {
	var legacy legacyRecord
	if err := json.Unmarshal(spec, &legacy); err == nil && legacy.Event != nil {
		return *legacy.Event, legacy.Scope, nil
	}
	var r record
	if err := json.Unmarshal(spec, &r); err != nil {
		return api.AuditEvent{}, svcapi.Scope{}, err
	}
	return r.event(), r.scope(), nil
}

// Served returns the event a stored audit record (the spec of a resource
// of kind audit) serves, in either shape: for tools and tests that read
// audit's database.
func Served(spec json.RawMessage) (api.AuditEvent, error) {
	ev, _, err := decodeRecord(spec)
	return ev, err
}
