// Package event defines the envelope every Mothership event travels in: a
// CloudEvents 1.0 JSON document whose data is the full state of one resource,
// and the naming of the topics events are published to.
//
// It is a leaf package: it imports nothing of Mothership, so every service
// and the runtime can depend on it.
package event

import (
	"bytes"
	"fmt"
	"regexp"
	"time"

	json "github.com/segmentio/encoding/json"
)

// SpecVersion is the CloudEvents specification version of the envelope.
const SpecVersion = "1.0"

// Direction says which half of a resource an event announces.
type Direction string

const (
	// Desired events announce a new desired state (a spec change, a create or a delete).
	Desired Direction = "desired"
	// Status events announce a new observed status.
	Status Direction = "status"
)

// kindPattern restricts kinds to what is safe in a topic name and a type.
var kindPattern = regexp.MustCompile(`^[a-z][a-z0-9_]{0,39}$`)

// ValidKind reports whether kind can name a resource kind (and so a topic).
func ValidKind(kind string) bool { return kindPattern.MatchString(kind) }

// Topic is the topic that carries events of kind in direction d:
// mothership.<kind>.<desired|status>. The record key is the resource id.
func Topic(kind string, d Direction) string {
	return "mothership." + kind + "." + string(d)
}

// Type is the CloudEvents type of an event of kind in direction d.
func Type(kind string, d Direction) string {
	return "io.mothership." + kind + "." + string(d)
}

// Event is a CloudEvents 1.0 envelope (JSON format) carrying one resource's
// full state. Generation and Version are CloudEvents extension attributes:
// generation counts spec changes, version orders every change of the
// resource (spec or status), so a consumer can drop anything not newer than
// what it has already seen.
type Event struct {
	SpecVersion     string    `json:"specversion"`
	ID              string    `json:"id"`
	Source          string    `json:"source"`
	Type            string    `json:"type"`
	Subject         string    `json:"subject"`
	Time            time.Time `json:"time"`
	DataContentType string    `json:"datacontenttype"`
	Generation      int64     `json:"generation"`
	Version         int64     `json:"resourceversion"`
	// TraceParent is the W3C trace context of the change (CloudEvents'
	// distributed tracing extension): the API request that made it, or
	// the event a service reacted to when it wrote it.
	TraceParent string          `json:"traceparent,omitempty"`
	Data        json.RawMessage `json:"data,omitempty"`

	// raw is the encoding Decode read the event from, so that storing a
	// received event does not encode it again.
	raw []byte
}

// Encode returns the event's JSON encoding: the bytes it was decoded from,
// if it was decoded, else a fresh encoding. Data must be valid JSON.
func (e Event) Encode() ([]byte, error) {
	if e.raw != nil {
		return e.raw, nil
	}
	// Data (the full state, already JSON) is spliced in rather than
	// encoded again: encoding a RawMessage re-validates and compacts it,
	// which cost as much as encoding the state in the first place.
	data := e.Data
	e.Data = nil
	b, err := json.Marshal(e)
	if err != nil || len(data) == 0 {
		return b, err
	}
	out := make([]byte, 0, len(b)+len(data)+9)
	out = append(out, b[:len(b)-1]...)
	out = append(out, `,"data":`...)
	out = append(out, data...)
	return append(out, '}'), nil
}

// New builds the event that announces state (already JSON) of resource id,
// written by service at version. The event id is derived from the resource
// and its version, so a replayed event keeps its identity.
func New(service, kind string, d Direction, id string, generation, version int64, at time.Time, state json.RawMessage) Event {
	return Event{
		SpecVersion:     SpecVersion,
		ID:              fmt.Sprintf("%s/%s/%s/%d", kind, id, d, version),
		Source:          "/mothership/" + service,
		Type:            Type(kind, d),
		Subject:         id,
		Time:            at.UTC(),
		DataContentType: "application/json",
		Generation:      generation,
		Version:         version,
		Data:            state,
	}
}

// Decode parses an event and checks the attributes a consumer relies on.
func Decode(b []byte) (Event, error) {
	var e Event
	if err := json.Unmarshal(b, &e); err != nil {
		return Event{}, fmt.Errorf("event: decode: %w", err)
	}
	switch {
	case e.SpecVersion != SpecVersion:
		return Event{}, fmt.Errorf("event %q: specversion %q, want %q", e.ID, e.SpecVersion, SpecVersion)
	case e.ID == "" || e.Source == "" || e.Type == "" || e.Subject == "":
		return Event{}, fmt.Errorf("event %q: missing id, source, type or subject", e.ID)
	case e.Version <= 0:
		return Event{}, fmt.Errorf("event %q: resourceversion %d is not positive", e.ID, e.Version)
	}
	e.raw = b
	return e, nil
}

// timeKey starts an event's time attribute in its encoding. It cannot
// occur inside a string value (a quote there is escaped), and the
// envelope's attributes come before its data.
var timeKey = []byte(`"time":"`)

// TimeOf reads an encoded event's time without decoding the rest, for
// those who only time events (the relay's lag).
func TimeOf(b []byte) (time.Time, bool) {
	i := bytes.Index(b, timeKey)
	if i < 0 {
		return time.Time{}, false
	}
	rest := b[i+len(timeKey):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, string(rest[:j]))
	return t, err == nil
}
