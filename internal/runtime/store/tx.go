package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	json "github.com/segmentio/encoding/json"

	"github.com/mothership-dev/mothership/internal/runtime/event"
	"github.com/mothership-dev/mothership/internal/runtime/trace"
)

// Rows is what a backend provides within one of its transactions:
// row-level access to its tables. The store's rules (validation,
// generations and versions, one event per change, no event for no change)
// live in NewTx, once for every backend. Methods return the package's
// sentinel errors (ErrNotFound, ErrAlreadyExists).
type Rows interface {
	// GetResource reads a resource, deleted or not. In a read-write
	// transaction it locks the row against concurrent writers.
	GetResource(ctx context.Context, kind, id string) (Resource, error)
	// GetResources reads the resources of kind with these ids that a row
	// holds, deleted or not, in one statement, locked as GetResource
	// locks them (in id order, so that two such reads cannot deadlock).
	GetResources(ctx context.Context, kind string, ids []string) ([]Resource, error)
	ListResources(ctx context.Context, p ListParams) ([]Resource, error)
	InsertResource(ctx context.Context, r Resource) error
	UpdateResource(ctx context.Context, r Resource) error
	// DeleteResource removes a row, if present.
	DeleteResource(ctx context.Context, kind, id string) error
	// AppendOutbox appends events to the outbox, in the order given,
	// in as few statements as the backend can.
	AppendOutbox(ctx context.Context, events []OutboxEvent) error
	// PutObserved stores each row's value as the newest event of its
	// subject on its topic unless one at its version or later is stored,
	// in as few round trips as the backend can; it reports, row by row,
	// whether it did. No two rows name the same topic and subject.
	PutObserved(ctx context.Context, rows []ObservedRow) ([]bool, error)
	GetObserved(ctx context.Context, topic, subject string) ([]byte, error)
	// GetObservedMany reads the newest events of those of subjects that
	// topic has, in one statement.
	GetObservedMany(ctx context.Context, topic string, subjects []string) (map[string][]byte, error)
	ObservedSubjects(ctx context.Context, topic string) ([]string, error)
	// PutIndex inserts or replaces an index entry; DeleteIndex removes one
	// if present. Neither appends to the outbox.
	PutIndex(ctx context.Context, index, key, value string) error
	// AddIndex adds delta to the integer value of an entry (base + delta
	// when absent) in one statement, atomic against concurrent writers,
	// and returns the new value.
	AddIndex(ctx context.Context, index, key string, delta, base int64) (int64, error)
	DeleteIndex(ctx context.Context, index, key string) error
	// GetIndex and ListIndex read entries, seeing the transaction's own
	// writes, without locking them.
	GetIndex(ctx context.Context, index, key string) (string, error)
	// GetIndexes reads the entries of index under those of keys it holds,
	// in one statement.
	GetIndexes(ctx context.Context, index string, keys []string) (map[string]string, error)
	ListIndex(ctx context.Context, p IndexListParams) ([]IndexEntry, error)
}

// OutboxEvent is an event waiting in a transaction for the outbox.
type OutboxEvent struct {
	Topic, Key string
	Value      []byte
}

// ObservedRow is an observed event as a backend stores it.
type ObservedRow struct {
	Topic, Subject string
	Version        int64
	Value          []byte
}

// TopicEvent is an event and the topic it was observed on.
type TopicEvent struct {
	Topic string
	Event event.Event
}

// TxConfig configures a transaction built by NewTx.
type TxConfig struct {
	// Service owns the store; it is the source of the events.
	Service string
	// Now returns the current time.
	Now func() time.Time
	// ReadOnly makes every write fail with ErrReadOnly.
	ReadOnly bool
	// Owns, when not nil, lists the only kinds the transaction may write
	// (others fail with ErrNotOwned): the single-writer rule, enforced.
	Owns []string
}

// RowsTx implements Tx over a backend's Rows.
//
// It remembers the rows it read or wrote, so that the usual reaction
// (record an event, read it back, read the resource, update it) reads each
// row once. The cache lives as long as the transaction, and the rows it
// holds are locked by it (or, in a read-only transaction, are a snapshot).
type RowsTx struct {
	rows     Rows
	cfg      TxConfig
	appended int
	outbox   []OutboxEvent // events of this transaction, written by Finish
	failed   error         // the first failed write; the transaction must not commit

	resources map[[2]string]Resource    // (kind, id) → row, deleted ones too
	observed  map[[2]string]event.Event // (topic, subject) → newest event
	// unobserved holds the (topic, subject) pairs a prefetch found
	// without an event; an event recorded since takes its pair out.
	unobserved map[[2]string]bool
	// entries holds the index entries read by IndexGetMany, and those
	// written since: (index, key) → value, ok false when absent.
	entries map[[2]string]entry
	// subjects holds, per topic, the subjects ObservedSubjects listed.
	subjects map[string][]string
}

// entry is an index entry as the transaction knows it.
type entry struct {
	value string
	ok    bool
}

var _ Tx = (*RowsTx)(nil)

// NewTx returns the Tx of one backend transaction.
func NewTx(rows Rows, cfg TxConfig) *RowsTx {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &RowsTx{rows: rows, cfg: cfg}
}

// Appended is the number of events the transaction appended to the outbox.
func (t *RowsTx) Appended() int { return t.appended }

// Finish writes the transaction's events to the outbox, in the order of
// the writes that made them (one statement for many, instead of one each),
// and reports any failed write. A backend calls it before every commit and
// does not commit if it fails.
func (t *RowsTx) Finish(ctx context.Context) error {
	if t.failed == nil && len(t.outbox) > 0 {
		if err := t.rows.AppendOutbox(ctx, t.outbox); err != nil {
			t.fail(fmt.Errorf("append %d events to the outbox: %w", len(t.outbox), err))
		}
		t.outbox = nil
	}
	return t.failed
}

// Err is the first write that failed. A backend refuses to commit a
// transaction with one, even if the caller ignored it: the failure may lie
// between a resource's row and its event, and committing half of that
// would break the store's promise.
func (t *RowsTx) Err() error { return t.failed }

// fail records a write failure.
func (t *RowsTx) fail(err error) error {
	if t.failed == nil {
		t.failed = err
	}
	return err
}

func (t *RowsTx) remember(r Resource) {
	if t.resources == nil {
		t.resources = make(map[[2]string]Resource)
	}
	t.resources[[2]string{r.Kind, r.ID}] = r
}

// ResourceGetAny implements Tx.
func (t *RowsTx) ResourceGetAny(ctx context.Context, kind, id string) (Resource, error) {
	if r, ok := t.resources[[2]string{kind, id}]; ok {
		return r, nil
	}
	r, err := t.rows.GetResource(ctx, kind, id)
	if err != nil {
		return Resource{}, fmt.Errorf("%s %s: get: %w", kind, id, err)
	}
	t.remember(r)
	return r, nil
}

// ResourcePrefetch implements Tx.
func (t *RowsTx) ResourcePrefetch(ctx context.Context, kind string, ids []string) error {
	missing := unknown(ids, func(id string) bool {
		_, ok := t.resources[[2]string{kind, id}]
		return ok
	})
	if len(missing) == 0 {
		return nil
	}
	rs, err := t.rows.GetResources(ctx, kind, missing)
	if err != nil {
		return fmt.Errorf("%s: prefetch %d: %w", kind, len(missing), err)
	}
	for _, r := range rs {
		t.remember(r)
	}
	return nil
}

// unknown returns, sorted and once each, the ids the transaction does not
// know yet: those a prefetch reads.
func unknown(ids []string, known func(string) bool) []string {
	var out []string
	for _, id := range ids {
		if !known(id) {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// ResourceGet implements Tx.
func (t *RowsTx) ResourceGet(ctx context.Context, kind, id string) (Resource, error) {
	r, err := t.ResourceGetAny(ctx, kind, id)
	if err != nil {
		return r, err
	}
	if r.Deleted() {
		return Resource{}, fmt.Errorf("%s %s: get: %w", kind, id, ErrNotFound)
	}
	return r, nil
}

// ResourceList implements Tx.
func (t *RowsTx) ResourceList(ctx context.Context, p ListParams) ([]Resource, error) {
	rs, err := t.rows.ListResources(ctx, p)
	if err != nil {
		return nil, fmt.Errorf("%s: list: %w", p.Kind, err)
	}
	return rs, nil
}

// MaxSpecBytes bounds a spec, so that a resource's event always fits in
// a Kafka record (1 MB by default) with its status.
const MaxSpecBytes = 256 << 10

// validate refuses what must never reach the database, and returns the
// spec in its compact form (so that equal specs compare equal).
func validate(kind, id string, spec json.RawMessage) (json.RawMessage, error) {
	if !event.ValidKind(kind) {
		return nil, fmt.Errorf("%w: kind %q: want lower-case letters, digits and _", ErrInvalid, kind)
	}
	if id == "" || len(id) > 255 || strings.ContainsAny(id, "\x00\n\r") {
		return nil, fmt.Errorf("%w: id %q: want 1 to 255 printable characters", ErrInvalid, id)
	}
	if spec == nil {
		return nil, nil
	}
	if len(spec) > MaxSpecBytes {
		return nil, fmt.Errorf("%w: %s %s: spec is %d bytes, at most %d", ErrInvalid, kind, id, len(spec), MaxSpecBytes)
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, spec); err != nil || buf.Len() == 0 || buf.Bytes()[0] != '{' {
		return nil, fmt.Errorf("%w: %s %s: spec must be a JSON object", ErrInvalid, kind, id)
	}
	return buf.Bytes(), nil
}

func (t *RowsTx) writable(op, kind, id string) error {
	if t.cfg.ReadOnly {
		return fmt.Errorf("%s %s: %s: %w", kind, id, op, ErrReadOnly)
	}
	if t.failed != nil {
		return fmt.Errorf("%s %s: %s: an earlier write of this transaction failed: %w", kind, id, op, t.failed)
	}
	if t.cfg.Owns != nil && !slices.Contains(t.cfg.Owns, kind) {
		return fmt.Errorf("%s %s: %s: service %s owns %v: %w", kind, id, op, t.cfg.Service, t.cfg.Owns, ErrNotOwned)
	}
	return nil
}

// ResourceCreate implements Tx.
func (t *RowsTx) ResourceCreate(ctx context.Context, p CreateParams) (Resource, error) {
	if err := t.writable("create", p.Kind, p.ID); err != nil {
		return Resource{}, err
	}
	spec, err := validate(p.Kind, p.ID, p.Spec)
	if err != nil {
		return Resource{}, err
	}
	if spec == nil {
		spec = json.RawMessage(`{}`)
	}
	now := t.cfg.Now().UTC()
	r := Resource{
		ID: p.ID, Kind: p.Kind, Organization: p.Organization, Environment: p.Environment,
		Generation: 1, Version: 1, Spec: spec, CreatedAt: now, UpdatedAt: now, Status: Status{PendingSince: &now},
	}
	if err := t.rows.InsertResource(ctx, r); err != nil {
		err = fmt.Errorf("%s %s: create: %w", p.Kind, p.ID, err)
		if errors.Is(err, ErrAlreadyExists) {
			return Resource{}, err // nothing was written
		}
		return Resource{}, t.fail(err)
	}
	t.remember(r)
	if err := t.emit(ctx, r, event.Desired); err != nil {
		return Resource{}, err
	}
	return r, nil
}

// ResourceUpdateSpec implements Tx.
func (t *RowsTx) ResourceUpdateSpec(ctx context.Context, p UpdateSpecParams) (Resource, error) {
	if err := t.writable("update", p.Kind, p.ID); err != nil {
		return Resource{}, err
	}
	spec, err := validate(p.Kind, p.ID, p.Spec)
	if err != nil {
		return Resource{}, err
	}
	if spec == nil {
		return Resource{}, fmt.Errorf("%w: %s %s: update: spec is required", ErrInvalid, p.Kind, p.ID)
	}
	r, err := t.ResourceGet(ctx, p.Kind, p.ID)
	if err != nil {
		return Resource{}, err
	}
	if p.IfGeneration != 0 && r.Generation != p.IfGeneration {
		return Resource{}, fmt.Errorf("%s %s: update at generation %d: now %d: %w", p.Kind, p.ID, p.IfGeneration, r.Generation, ErrGenerationChanged)
	}
	if bytes.Equal(r.Spec, spec) {
		return r, nil
	}
	r.Spec = spec
	r.pending(t.cfg.Now().UTC())
	if err := t.save(ctx, &r, event.Desired); err != nil {
		return Resource{}, err
	}
	return r, nil
}

// pending bumps r's generation: a resource that had every generation
// observed starts waiting now; one already waiting waits on.
func (r *Resource) pending(now time.Time) {
	if r.Status.ObservedGeneration >= r.Generation || r.Status.PendingSince == nil {
		r.Status.PendingSince = &now
	}
	r.Generation++
}

// ResourceSetStatus implements Tx.
func (t *RowsTx) ResourceSetStatus(ctx context.Context, kind, id string, s Status) (Resource, error) {
	if err := t.writable("set status", kind, id); err != nil {
		return Resource{}, err
	}
	if s.Detail != nil {
		var buf bytes.Buffer
		if err := json.Compact(&buf, s.Detail); err != nil {
			return Resource{}, fmt.Errorf("%w: %s %s: status detail must be JSON", ErrInvalid, kind, id)
		}
		s.Detail = buf.Bytes()
	}
	r, err := t.ResourceGetAny(ctx, kind, id)
	if err != nil {
		return Resource{}, err
	}
	if s.ObservedGeneration > r.Generation {
		return Resource{}, fmt.Errorf("%w: %s %s: observed generation %d is ahead of generation %d", ErrInvalid, kind, id, s.ObservedGeneration, r.Generation)
	}
	// The wait is the store's to time; the STUCK condition stays until
	// the observed generation moves, whatever the owner writes meanwhile
	// (a retry's new reason is no progress).
	s.PendingSince = r.Status.PendingSince
	switch {
	case s.ObservedGeneration >= r.Generation:
		s.PendingSince, s.Stuck = nil, nil
	case s.ObservedGeneration > r.Status.ObservedGeneration:
		now := t.cfg.Now().UTC()
		s.PendingSince, s.Stuck = &now, nil
	case s.Stuck == nil:
		s.Stuck = r.Status.Stuck
	}
	if r.Status.Equal(s) {
		return r, nil
	}
	r.Status = s
	if err := t.save(ctx, &r, event.Status); err != nil {
		return Resource{}, err
	}
	return r, nil
}

// ResourceDelete implements Tx.
func (t *RowsTx) ResourceDelete(ctx context.Context, kind, id string) (Resource, error) {
	return t.delete(ctx, kind, id, nil)
}

// ResourceDeleteRetained implements Tx.
func (t *RowsTx) ResourceDeleteRetained(ctx context.Context, kind, id string, until time.Time) (Resource, error) {
	// Microseconds, as PostgreSQL keeps it: the time read back is the
	// time written, on every backend.
	until = until.UTC().Truncate(time.Microsecond)
	return t.delete(ctx, kind, id, &until)
}

func (t *RowsTx) delete(ctx context.Context, kind, id string, until *time.Time) (Resource, error) {
	if err := t.writable("delete", kind, id); err != nil {
		return Resource{}, err
	}
	r, err := t.ResourceGet(ctx, kind, id)
	if err != nil {
		return Resource{}, err
	}
	now := t.cfg.Now().UTC()
	r.DeletedAt, r.PurgeAt = &now, until
	r.pending(now)
	if err := t.save(ctx, &r, event.Desired); err != nil {
		return Resource{}, err
	}
	return r, nil
}

// ResourceRestore implements Tx.
func (t *RowsTx) ResourceRestore(ctx context.Context, kind, id string) (Resource, error) {
	if err := t.writable("restore", kind, id); err != nil {
		return Resource{}, err
	}
	r, err := t.ResourceGetAny(ctx, kind, id)
	if err != nil {
		return Resource{}, err
	}
	if !r.Deleted() {
		return Resource{}, fmt.Errorf("%w: %s %s: restore: it is not deleted", ErrInvalid, kind, id)
	}
	r.DeletedAt, r.PurgeAt = nil, nil
	r.pending(t.cfg.Now().UTC())
	if err := t.save(ctx, &r, event.Desired); err != nil {
		return Resource{}, err
	}
	return r, nil
}

// ResourceEndRetention implements Tx.
func (t *RowsTx) ResourceEndRetention(ctx context.Context, kind, id string) (Resource, error) {
	if err := t.writable("purge", kind, id); err != nil {
		return Resource{}, err
	}
	r, err := t.ResourceGetAny(ctx, kind, id)
	if err != nil {
		return Resource{}, err
	}
	if !r.Deleted() {
		return Resource{}, fmt.Errorf("%w: %s %s: purge: it is not deleted", ErrInvalid, kind, id)
	}
	delete(t.resources, [2]string{kind, id})
	if err := t.rows.DeleteResource(ctx, kind, id); err != nil {
		return Resource{}, t.fail(fmt.Errorf("%s %s: purge: %w", kind, id, err))
	}
	r.Generation++
	r.Version++
	r.UpdatedAt = t.cfg.Now().UTC()
	r.Purged = true
	if err := t.emit(ctx, r, event.Desired); err != nil {
		return Resource{}, err
	}
	return r, nil
}

// ResourcePurge implements Tx.
func (t *RowsTx) ResourcePurge(ctx context.Context, kind, id string) error {
	if err := t.writable("purge", kind, id); err != nil {
		return err
	}
	delete(t.resources, [2]string{kind, id})
	if err := t.rows.DeleteResource(ctx, kind, id); err != nil {
		return t.fail(fmt.Errorf("%s %s: purge: %w", kind, id, err))
	}
	return nil
}

// save writes r at its next version and emits its event.
func (t *RowsTx) save(ctx context.Context, r *Resource, d event.Direction) error {
	r.Version++
	r.UpdatedAt = t.cfg.Now().UTC()
	if err := t.rows.UpdateResource(ctx, *r); err != nil {
		return t.fail(fmt.Errorf("%s %s: save: %w", r.Kind, r.ID, err))
	}
	t.remember(*r)
	return t.emit(ctx, *r, d)
}

// emit appends the event announcing r's full state to the outbox.
func (t *RowsTx) emit(ctx context.Context, r Resource, d event.Direction) error {
	state, err := EncodeTrusted(r)
	if err != nil {
		return t.fail(fmt.Errorf("%s %s: encode state: %w", r.Kind, r.ID, err))
	}
	ev := event.New(t.cfg.Service, r.Kind, d, r.ID, r.Generation, r.Version, r.UpdatedAt, state)
	// The change continues the trace of what caused it (the request,
	// the event reacted to); a write with no cause in ctx (an upkeep, a
	// timer) starts a trace of its own.
	if ev.TraceParent = trace.Parent(ctx); ev.TraceParent == "" {
		ev.TraceParent = trace.Parent(trace.Start(ctx))
	}
	value, err := ev.Encode()
	if err != nil {
		return t.fail(fmt.Errorf("%s %s: encode event: %w", r.Kind, r.ID, err))
	}
	t.outbox = append(t.outbox, OutboxEvent{Topic: event.Topic(r.Kind, d), Key: r.ID, Value: value})
	t.appended++
	return nil
}

// ObservedPut implements Tx.
func (t *RowsTx) ObservedPut(ctx context.Context, topic string, ev event.Event) (bool, error) {
	ok, err := t.ObservedPutAll(ctx, []TopicEvent{{Topic: topic, Event: ev}})
	if err != nil {
		return false, err
	}
	return ok[0], nil
}

// ObservedPutAll implements Tx.
func (t *RowsTx) ObservedPutAll(ctx context.Context, evs []TopicEvent) ([]bool, error) {
	if len(evs) == 0 {
		return nil, nil
	}
	if t.cfg.ReadOnly {
		return nil, fmt.Errorf("observe %s %s: %w", evs[0].Topic, evs[0].Event.Subject, ErrReadOnly)
	}
	if t.failed != nil {
		return nil, fmt.Errorf("observe %s %s: an earlier write of this transaction failed: %w", evs[0].Topic, evs[0].Event.Subject, t.failed)
	}
	rows := make([]ObservedRow, len(evs))
	for i, te := range evs {
		value, err := te.Event.Encode()
		if err != nil {
			return nil, fmt.Errorf("observe %s %s: encode: %w", te.Topic, te.Event.Subject, err)
		}
		rows[i] = ObservedRow{Topic: te.Topic, Subject: te.Event.Subject, Version: te.Event.Version, Value: value}
	}
	ok, err := t.rows.PutObserved(ctx, rows)
	if err != nil {
		if len(evs) == 1 {
			return nil, fmt.Errorf("observe %s %s: %w", evs[0].Topic, evs[0].Event.Subject, err)
		}
		return nil, fmt.Errorf("observe %d events: %w", len(evs), err)
	}
	for i, te := range evs {
		key := [2]string{te.Topic, te.Event.Subject}
		delete(t.unobserved, key)
		if !ok[i] {
			continue
		}
		if cached, listed := t.subjects[te.Topic]; listed {
			if at, found := slices.BinarySearch(cached, te.Event.Subject); !found {
				t.subjects[te.Topic] = slices.Insert(cached, at, te.Event.Subject)
			}
		}
		if t.observed == nil {
			t.observed = make(map[[2]string]event.Event)
		}
		t.observed[[2]string{te.Topic, te.Event.Subject}] = te.Event
	}
	return ok, nil
}

// ObservedGet implements Tx.
func (t *RowsTx) ObservedGet(ctx context.Context, topic, subject string) (event.Event, error) {
	if ev, ok := t.observed[[2]string{topic, subject}]; ok {
		return ev, nil
	}
	if t.unobserved[[2]string{topic, subject}] {
		return event.Event{}, fmt.Errorf("observed %s %s: %w", topic, subject, ErrNotFound)
	}
	value, err := t.rows.GetObserved(ctx, topic, subject)
	if errors.Is(err, ErrNotFound) {
		t.unobserve(topic, subject)
	}
	if err != nil {
		return event.Event{}, fmt.Errorf("observed %s %s: %w", topic, subject, err)
	}
	ev, err := event.Decode(value)
	if err != nil {
		return event.Event{}, fmt.Errorf("observed %s %s: %w", topic, subject, err)
	}
	t.observe(topic, ev)
	return ev, nil
}

// observe and unobserve keep what the transaction knows of a subject's
// newest event on topic: each is read once per transaction.
func (t *RowsTx) observe(topic string, ev event.Event) {
	if t.observed == nil {
		t.observed = make(map[[2]string]event.Event)
	}
	t.observed[[2]string{topic, ev.Subject}] = ev
}

func (t *RowsTx) unobserve(topic, subject string) {
	if t.unobserved == nil {
		t.unobserved = make(map[[2]string]bool)
	}
	t.unobserved[[2]string{topic, subject}] = true
}

// ObservedPrefetch implements Tx.
func (t *RowsTx) ObservedPrefetch(ctx context.Context, topic string, subjects []string) error {
	missing := unknown(subjects, func(subject string) bool {
		_, ok := t.observed[[2]string{topic, subject}]
		return ok || t.unobserved[[2]string{topic, subject}]
	})
	if len(missing) == 0 {
		return nil
	}
	values, err := t.rows.GetObservedMany(ctx, topic, missing)
	if err != nil {
		return fmt.Errorf("observed %s: prefetch %d: %w", topic, len(missing), err)
	}
	for _, subject := range missing {
		value, ok := values[subject]
		if !ok {
			t.unobserve(topic, subject)
			continue
		}
		ev, err := event.Decode(value)
		if err != nil {
			return fmt.Errorf("observed %s %s: %w", topic, subject, err)
		}
		t.observe(topic, ev)
	}
	return nil
}

// ObservedSubjects implements Tx. The list is read once per transaction
// and kept current with the events it records.
func (t *RowsTx) ObservedSubjects(ctx context.Context, topic string) ([]string, error) {
	if s, ok := t.subjects[topic]; ok {
		return slices.Clone(s), nil
	}
	s, err := t.rows.ObservedSubjects(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("observed %s: list: %w", topic, err)
	}
	if t.subjects == nil {
		t.subjects = make(map[string][]string)
	}
	t.subjects[topic] = slices.Clone(s)
	return s, nil
}

// validIndex refuses an index name, key or value the store does not take.
func validIndex(index, key string) error {
	if !event.ValidKind(index) {
		return fmt.Errorf("%w: index %q: want lower-case letters, digits and _", ErrInvalid, index)
	}
	if key == "" || len(key) > MaxIndexKeyBytes || !utf8.ValidString(key) || strings.ContainsRune(key, 0) {
		return fmt.Errorf("%w: index %s: key %q: want 1 to %d bytes of UTF-8 without NUL", ErrInvalid, index, key, MaxIndexKeyBytes)
	}
	return nil
}

// indexWritable is writable for index entries.
func (t *RowsTx) indexWritable(op, index, key string) error {
	if t.cfg.ReadOnly {
		return fmt.Errorf("index %s %s: %s: %w", index, key, op, ErrReadOnly)
	}
	if t.failed != nil {
		return fmt.Errorf("index %s %s: %s: an earlier write of this transaction failed: %w", index, key, op, t.failed)
	}
	return validIndex(index, key)
}

// IndexPut implements Tx.
func (t *RowsTx) IndexPut(ctx context.Context, index, key, value string) error {
	if err := t.indexWritable("put", index, key); err != nil {
		return err
	}
	if len(value) > MaxIndexValueBytes || !utf8.ValidString(value) || strings.ContainsRune(value, 0) {
		return fmt.Errorf("%w: index %s %s: value of %d bytes: want at most %d bytes of UTF-8 without NUL", ErrInvalid, index, key, len(value), MaxIndexValueBytes)
	}
	if err := t.rows.PutIndex(ctx, index, key, value); err != nil {
		return t.fail(fmt.Errorf("index %s %s: put: %w", index, key, err))
	}
	t.known(index, key, entry{value: value, ok: true})
	return nil
}

// known updates an index entry the transaction holds (it holds only
// those IndexGetMany read: other reads go to the backend, which sees the
// transaction's writes).
func (t *RowsTx) known(index, key string, e entry) {
	if _, held := t.entries[[2]string{index, key}]; held {
		t.entries[[2]string{index, key}] = e
	}
}

// IndexAdd implements Tx.
func (t *RowsTx) IndexAdd(ctx context.Context, index, key string, delta, base int64) (int64, error) {
	if err := t.indexWritable("add", index, key); err != nil {
		return 0, err
	}
	v, err := t.rows.AddIndex(ctx, index, key, delta, base)
	if err != nil {
		return 0, t.fail(fmt.Errorf("index %s %s: add: %w", index, key, err))
	}
	t.known(index, key, entry{value: strconv.FormatInt(v, 10), ok: true})
	return v, nil
}

// IndexDelete implements Tx.
func (t *RowsTx) IndexDelete(ctx context.Context, index, key string) error {
	if err := t.indexWritable("delete", index, key); err != nil {
		return err
	}
	if err := t.rows.DeleteIndex(ctx, index, key); err != nil {
		return t.fail(fmt.Errorf("index %s %s: delete: %w", index, key, err))
	}
	t.known(index, key, entry{})
	return nil
}

// IndexGet implements Tx.
func (t *RowsTx) IndexGet(ctx context.Context, index, key string) (string, error) {
	if err := validIndex(index, key); err != nil {
		return "", err
	}
	if e, held := t.entries[[2]string{index, key}]; held {
		if !e.ok {
			return "", fmt.Errorf("index %s %s: get: %w", index, key, ErrNotFound)
		}
		return e.value, nil
	}
	v, err := t.rows.GetIndex(ctx, index, key)
	if err != nil {
		return "", fmt.Errorf("index %s %s: get: %w", index, key, err)
	}
	return v, nil
}

// IndexGetMany implements Tx.
func (t *RowsTx) IndexGetMany(ctx context.Context, index string, keys []string) (map[string]string, error) {
	for _, key := range keys {
		if err := validIndex(index, key); err != nil {
			return nil, err
		}
	}
	out := make(map[string]string, len(keys))
	var missing []string
	for _, key := range keys {
		if e, held := t.entries[[2]string{index, key}]; !held {
			missing = append(missing, key)
		} else if e.ok {
			out[key] = e.value
		}
	}
	if len(missing) == 0 {
		return out, nil
	}
	vs, err := t.rows.GetIndexes(ctx, index, missing)
	if err != nil {
		return nil, fmt.Errorf("index %s: get %d keys: %w", index, len(missing), err)
	}
	if t.entries == nil {
		t.entries = make(map[[2]string]entry)
	}
	for _, key := range missing {
		v, ok := vs[key]
		t.entries[[2]string{index, key}] = entry{value: v, ok: ok}
		if ok {
			out[key] = v
		}
	}
	return out, nil
}

// IndexList implements Tx.
func (t *RowsTx) IndexList(ctx context.Context, p IndexListParams) ([]IndexEntry, error) {
	if !event.ValidKind(p.Index) {
		return nil, fmt.Errorf("%w: index %q: want lower-case letters, digits and _", ErrInvalid, p.Index)
	}
	for _, s := range []string{p.Prefix, p.AfterKey} {
		if !utf8.ValidString(s) || strings.ContainsRune(s, 0) {
			return nil, fmt.Errorf("%w: index %s: list from %q: want UTF-8 without NUL", ErrInvalid, p.Index, s)
		}
	}
	es, err := t.rows.ListIndex(ctx, p)
	if err != nil {
		return nil, fmt.Errorf("index %s: list %q: %w", p.Index, p.Prefix, err)
	}
	return es, nil
}
