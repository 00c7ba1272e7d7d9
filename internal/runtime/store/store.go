// Package store is the persistence contract of every Mothership service: a
// service's own database of resources, where writing a resource and
// appending the event that announces it are one call and one transaction.
//
// The package holds the interfaces, the resource type and the sentinel
// errors; each backend (sqlite, later postgres) lives in a sub-package and
// maps its driver's errors to these sentinels. storetest is the conformance
// suite every backend must pass.
package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	json "github.com/segmentio/encoding/json"

	"github.com/mothership-dev/mothership/internal/runtime/event"
)

// Sentinel errors every backend maps its driver errors to.
var (
	ErrNotFound          = errors.New("not found")
	ErrAlreadyExists     = errors.New("already exists")
	ErrGenerationChanged = errors.New("generation changed")
	ErrDeleted           = errors.New("resource is deleted")
	ErrInvalid           = errors.New("invalid")
	ErrReadOnly          = errors.New("read-only transaction")
	// ErrNotOwned refuses a write to a kind the service does not own:
	// each kind has a single writer.
	ErrNotOwned = errors.New("kind not owned by this service")
)

// Status is the observed state of a resource, written by its owner.
type Status struct {
	// ObservedGeneration is the generation the status describes.
	ObservedGeneration int64 `json:"observed_generation"`
	// Phase is the lifecycle phase (PROVISIONING, PROVISIONED, FAILED, …).
	Phase string `json:"phase,omitempty"`
	// Reason is a stable, machine-readable cause of the phase.
	Reason string `json:"reason,omitempty"`
	// Message is the human-readable explanation of Reason.
	Message string `json:"message,omitempty"`
	// Detail holds the owner's kind-specific status fields.
	Detail json.RawMessage `json:"detail,omitempty"`
	// PendingSince is, while a generation is unobserved, since when the
	// resource waits without progress: the acceptance of a generation
	// when all before it were observed, or the last time the observed
	// generation moved. The store keeps it; the owner cannot write it.
	PendingSince *time.Time `json:"pending_since,omitempty"`
	// Stuck is the STUCK condition, set by the owner's stuck watch (see
	// host.StuckWatch) when it waited too long. The store keeps it across
	// the owner's status writes until the observed generation moves, and
	// then drops it.
	Stuck *Stuck `json:"stuck,omitempty"`
}

// Equal reports whether s and o say the same, without encoding either: a
// reconcile that changes nothing compares its status with the stored one
// on every key. Two statuses json.Marshal writes the same are equal; so
// are two it writes apart only by a time's zone or a JSON null detail
// against none, which say the same.
func (s Status) Equal(o Status) bool {
	if s.ObservedGeneration != o.ObservedGeneration || s.Phase != o.Phase || s.Reason != o.Reason || s.Message != o.Message ||
		!equalTime(s.PendingSince, o.PendingSince) || (s.Stuck == nil) != (o.Stuck == nil) {
		return false
	}
	if s.Stuck != nil && (!s.Stuck.Since.Equal(o.Stuck.Since) || s.Stuck.Layer != o.Stuck.Layer || s.Stuck.Message != o.Stuck.Message) {
		return false
	}
	if bytes.Equal(s.Detail, o.Detail) {
		return true
	}
	// The same detail, written another way (a stored one has its HTML
	// characters escaped, a new one not yet): compare as stored.
	a, errA := EncodeTrusted(s.Detail)
	b, errB := EncodeTrusted(o.Detail)
	return errA == nil && errB == nil && bytes.Equal(a, b)
}

func equalTime(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(*b)
}

// EncodeTrusted is json.Marshal, byte for byte, for values the store
// built: their raw messages (a spec, a status detail) were checked and
// compacted on their way in, so they are not parsed again
// (TrustRawMessage), which was most of the cost of encoding a resource.
func EncodeTrusted(v any) ([]byte, error) {
	return json.Append(nil, v, json.EscapeHTML|json.SortMapKeys|json.TrustRawMessage)
}

// Stuck says a resource's accepted generation has not been observed in
// time, and which layer below has not caught up.
type Stuck struct {
	// Since is when the wait began (Status.PendingSince).
	Since time.Time `json:"since"`
	// Layer is the lowest layer that has not caught up: a service's
	// name, or "satellite", "cloud", "paused".
	Layer   string `json:"layer"`
	Message string `json:"message,omitempty"`
}

// Resource is one row of a service's own state. Its JSON form is the data of
// every event that announces it: the full state, never a delta.
type Resource struct {
	ID           string `json:"id"`
	Kind         string `json:"kind"`
	Organization string `json:"organization,omitempty"`
	Environment  string `json:"environment,omitempty"`
	// Generation is bumped on every change of Spec (and on delete).
	Generation int64 `json:"generation"`
	// Version is bumped on every write, spec or status; events carry it so
	// consumers can drop what is not newer than what they have.
	Version   int64           `json:"version"`
	Spec      json.RawMessage `json:"spec"`
	Status    Status          `json:"status"`
	CreatedAt time.Time       `json:"created_at"`
	UpdatedAt time.Time       `json:"updated_at"`
	DeletedAt *time.Time      `json:"deleted_at,omitempty"`
	// PurgeAt is when a deleted resource's retention ends: until then
	// its owner can restore it, and every layer keeps what it needs to
	// bring it back.
	PurgeAt *time.Time `json:"purge_at,omitempty"`
	// Purged is set only in the last event of a resource whose retention
	// ended (Tx.ResourceEndRetention): its row is gone, and what every
	// layer kept of it goes too.
	Purged bool `json:"purged,omitempty"`
}

// Deleted reports whether the resource has been deleted.
func (r Resource) Deleted() bool { return r.DeletedAt != nil }

// Retained reports whether the resource is deleted but kept, restorable,
// until its PurgeAt.
func (r Resource) Retained() bool { return r.DeletedAt != nil && r.PurgeAt != nil && !r.Purged }

// CreateParams are the arguments of Tx.ResourceCreate.
type CreateParams struct {
	Kind         string
	ID           string
	Organization string
	Environment  string
	Spec         json.RawMessage
}

// UpdateSpecParams are the arguments of Tx.ResourceUpdateSpec.
type UpdateSpecParams struct {
	Kind string
	ID   string
	Spec json.RawMessage
	// IfGeneration, when non-zero, makes the update fail with
	// ErrGenerationChanged unless the stored generation equals it.
	IfGeneration int64
}

// ListParams are the arguments of Tx.ResourceList: one kind, optionally
// narrowed to an organization and environment, ordered by id, paged by
// AfterID.
type ListParams struct {
	Kind           string
	Organization   string
	Environment    string
	AfterID        string
	Limit          int
	IncludeDeleted bool
}

// IndexEntry is one row of a service's private index: a key and the value
// it maps to.
type IndexEntry struct {
	Key   string
	Value string
}

// IndexListParams are the arguments of Tx.IndexList: the entries of one
// index whose keys start with Prefix, in key order (bytewise), after
// AfterKey, at most Limit (0: all).
type IndexListParams struct {
	Index    string
	Prefix   string
	AfterKey string
	Limit    int
}

// MaxIndexKeyBytes and MaxIndexValueBytes bound an index entry: an index
// holds lookups, not data.
const (
	MaxIndexKeyBytes   = 512
	MaxIndexValueBytes = 4096
)

// Observed is the newest event a service has received for one subject of one
// topic it reacts to: its local, durable view of another service's resource.
type Observed struct {
	Topic string
	Event event.Event
}

// Tx is one transaction on a service's own database. Every method that
// changes a resource appends the event announcing its new full state to the
// outbox in this same transaction, so no caller can write one without the
// other. A method that changes nothing appends nothing.
type Tx interface {
	// ResourceGet returns a live resource, or ErrNotFound. In a write
	// transaction, reading an id no resource holds takes that id until the
	// transaction ends, so that a concurrent read or creation of it waits:
	// a get-or-create serializes, and a service may read an id it never
	// creates to serialize a decision (one writer at a time on SQLite
	// gives the same).
	ResourceGet(ctx context.Context, kind, id string) (Resource, error)
	// ResourceGetAny returns a resource even when deleted, or ErrNotFound.
	ResourceGetAny(ctx context.Context, kind, id string) (Resource, error)
	// ResourceList returns resources of one kind in id order.
	ResourceList(ctx context.Context, p ListParams) ([]Resource, error)
	// ResourcePrefetch reads, in one statement, resources of kind the
	// transaction is about to read, locked as ResourceGet locks them, so
	// that ResourceGet and ResourceGetAny of them need no statement of
	// their own: a reaction to a batch of keys, or to a PKC's tenants,
	// costs one round trip instead of one per row. Ids no row holds are
	// left for ResourceGet (which then takes the id, as it does).
	ResourcePrefetch(ctx context.Context, kind string, ids []string) error
	// ResourceCreate inserts a resource at generation 1 and emits its
	// desired event; ErrAlreadyExists when the id is taken.
	ResourceCreate(ctx context.Context, p CreateParams) (Resource, error)
	// ResourceUpdateSpec replaces the spec, bumps the generation and emits
	// a desired event. An identical spec changes nothing.
	ResourceUpdateSpec(ctx context.Context, p UpdateSpecParams) (Resource, error)
	// ResourceSetStatus replaces the status and emits a status event. An
	// identical status changes nothing.
	ResourceSetStatus(ctx context.Context, kind, id string, s Status) (Resource, error)
	// ResourceDelete marks the resource deleted, bumps the generation and
	// emits a desired event carrying deleted_at. The row stays, so the
	// history and an undelete remain possible.
	ResourceDelete(ctx context.Context, kind, id string) (Resource, error)
	// ResourceDeleteRetained is ResourceDelete for a resource kept,
	// restorable, until until (PurgeAt): every event of it says so, so
	// that each layer below keeps what it needs to bring it back.
	ResourceDeleteRetained(ctx context.Context, kind, id string, until time.Time) (Resource, error)
	// ResourceRestore brings a deleted resource back: live again, its
	// retention over, the generation bumped and a desired event emitted.
	// ErrNotFound when no row holds it (never made, or purged);
	// ErrInvalid when it is live.
	ResourceRestore(ctx context.Context, kind, id string) (Resource, error)
	// ResourceEndRetention purges a deleted resource when its retention
	// ends: the row goes, and a last desired event, its state with Purged
	// set and the generation bumped, tells every layer to drop what it
	// kept. ErrNotFound when no row holds it; ErrInvalid when it is live.
	ResourceEndRetention(ctx context.Context, kind, id string) (Resource, error)
	// ResourcePurge removes a resource's row for good and emits nothing:
	// for records that are history rather than state (audit's, past
	// their retention), which nothing downstream follows. Purging an
	// absent row is no error.
	ResourcePurge(ctx context.Context, kind, id string) error

	// ObservedPut records ev as the newest event of its subject on topic if
	// its version is newer than the one recorded; it reports whether it was.
	ObservedPut(ctx context.Context, topic string, ev event.Event) (bool, error)
	// ObservedPutAll is ObservedPut for many events (no two of the same
	// topic and subject) in one round trip where the backend can; it
	// reports, event by event, whether each was newer.
	ObservedPutAll(ctx context.Context, evs []TopicEvent) ([]bool, error)
	// ObservedGet returns the newest recorded event of subject on topic.
	ObservedGet(ctx context.Context, topic, subject string) (event.Event, error)
	// ObservedPrefetch reads, in one statement, the newest events of
	// subjects on topic that the transaction is about to read, so that
	// ObservedGet of them, found or not, needs no statement of its own.
	ObservedPrefetch(ctx context.Context, topic string, subjects []string) error
	// ObservedSubjects lists the subjects recorded on topic, in order.
	ObservedSubjects(ctx context.Context, topic string) ([]string, error)

	// Indexes are the service's private lookups over its own resources
	// (which PKC hosts a tenant, which PKCs a site has), so that a
	// reaction finds the few rows it needs without listing a kind. An
	// index entry is written in the same transaction as the resources it
	// describes and publishes no event: it must be derivable from the
	// service's own resources alone, so that it can be rebuilt from them
	// and nothing downstream ever depends on it. Reads see the
	// transaction's own writes. They take no lock: an entry is a hint that
	// the caller confirms on the resource it names (ResourceGet locks it).
	//
	// An index name is lower-case letters, digits and _; a key is 1 to
	// MaxIndexKeyBytes of UTF-8 without NUL; a value up to
	// MaxIndexValueBytes of the same.

	// IndexPut sets key of index to value.
	IndexPut(ctx context.Context, index, key, value string) error
	// IndexAdd adds delta to the integer value of key in index (base if
	// the key is absent) and returns the sum. It is atomic against
	// concurrent transactions: a counter kept with IndexGet and IndexPut
	// loses updates on a backend whose writers run concurrently
	// (PostgreSQL at READ COMMITTED).
	IndexAdd(ctx context.Context, index, key string, delta, base int64) (int64, error)
	// IndexDelete removes key from index; removing an absent key is no
	// error.
	IndexDelete(ctx context.Context, index, key string) error
	// IndexGet returns the value of key in index, or ErrNotFound.
	IndexGet(ctx context.Context, index, key string) (string, error)
	// IndexGetMany returns the values of those of keys that index holds,
	// in one statement: a reaction that needs many entries makes one
	// round trip, not one each. The transaction keeps what it read, found
	// or not, so that IndexGet of those keys needs no statement (and sees
	// no commit made since: a caller that reads after taking a lock reads
	// with IndexGet).
	IndexGetMany(ctx context.Context, index string, keys []string) (map[string]string, error)
	// IndexList returns entries of one index in key order (see
	// IndexListParams).
	IndexList(ctx context.Context, p IndexListParams) ([]IndexEntry, error)
}

// Change is one committed outbox row, as the relay reads it.
type Change struct {
	// Position identifies the change to Confirm: the outbox row's
	// sequence number, stable across a Rewind. A feed returns changes in
	// commit order (PostgreSQL's sequence numbers may not be in it).
	Position int64
	Topic    string
	Key      string
	Value    []byte
}

// ChangeFeed is the change-data-capture side of a store: every committed
// outbox row, in commit order, from the last confirmed position. The SQLite
// backend tails its outbox table; a PostgreSQL backend reads a logical
// replication slot.
type ChangeFeed interface {
	// Next waits until changes after the last returned one are committed
	// and returns up to max of them in commit order.
	Next(ctx context.Context, max int) ([]Change, error)
	// Confirm durably records that every change returned up to and
	// including the one at pos reached Kafka; after a restart Next
	// resumes after it.
	Confirm(ctx context.Context, pos int64) error
	// Rewind makes Next start again after the last confirmed position,
	// for a relay that lost track of what it produced.
	Rewind(ctx context.Context) error
}

// BacklogFeed is a change feed that can count its backlog: the outbox
// rows committed and not yet confirmed (both backends delete a row once
// Kafka acknowledged it, so the table holds exactly those).
type BacklogFeed interface {
	ChangeFeed
	Backlog(ctx context.Context) (int64, error)
}

// Store is a service's own database.
type Store interface {
	// Update runs fn in one read-write transaction and commits it if fn
	// returns nil.
	Update(ctx context.Context, fn func(ctx context.Context, tx Tx) error) error
	// View runs fn in a read-only transaction.
	View(ctx context.Context, fn func(ctx context.Context, tx Tx) error) error
	// Feed returns the store's change feed. There is one per store.
	Feed() ChangeFeed
	// Close releases the database.
	Close() error
}

// ReadyChecker is implemented by a store whose events can stop flowing for
// a while without losing any (a PostgreSQL store whose replication slot
// was lost catches up from its outbox table). Ready returns why the store
// is not ready, nil when it is; a process answers /readyz with it.
type ReadyChecker interface {
	Ready() error
}

// indexPage is how many entries IndexEntries reads at a time.
const indexPage = 1000

// IndexEntries returns every entry of index whose key starts with prefix,
// in key order, read a page at a time.
func IndexEntries(ctx context.Context, tx Tx, index, prefix string) ([]IndexEntry, error) {
	var out []IndexEntry
	for after := ""; ; {
		page, err := tx.IndexList(ctx, IndexListParams{Index: index, Prefix: prefix, AfterKey: after, Limit: indexPage})
		if err != nil {
			return nil, err
		}
		out = append(out, page...)
		if len(page) < indexPage {
			return out, nil
		}
		after = page[len(page)-1].Key
	}
}

// resourcePage is how many resources EachResource reads at a time.
const resourcePage = 500

// EachResource calls fn with every live resource of kind, in id order,
// read a page at a time.
func EachResource(ctx context.Context, tx Tx, kind string, fn func(Resource) error) error {
	return EachResourceOf(ctx, tx, ListParams{Kind: kind}, fn)
}

// EachResourceOf calls fn with every resource p selects (its AfterID and
// Limit aside), a page at a time, in id order.
func EachResourceOf(ctx context.Context, tx Tx, p ListParams, fn func(Resource) error) error {
	for after := ""; ; {
		p.AfterID, p.Limit = after, resourcePage
		page, err := tx.ResourceList(ctx, p)
		if err != nil {
			return err
		}
		for _, r := range page {
			if err := fn(r); err != nil {
				return err
			}
		}
		if len(page) < resourcePage {
			return nil
		}
		after = page[len(page)-1].ID
	}
}

// ObservedResource returns the resource carried by the newest event of
// subject on topic, as recorded by ObservedPut: a service's local view of
// another service's resource. ErrNotFound when none was recorded.
func ObservedResource(ctx context.Context, tx Tx, topic, subject string) (Resource, error) {
	ev, err := tx.ObservedGet(ctx, topic, subject)
	if err != nil {
		return Resource{}, err
	}
	var r Resource
	if err := json.Unmarshal(ev.Data, &r); err != nil {
		return Resource{}, fmt.Errorf("observed %s %s: %w", topic, subject, err)
	}
	return r, nil
}
