// Package sqlite is the embedded backend of the runtime store: one SQLite
// file per service (modernc.org/sqlite, no cgo), in WAL mode, with the outbox
// as a table that the relay tails.
//
// Writes go through a single connection that begins IMMEDIATE transactions,
// so outbox positions are assigned in commit order; reads use a pool of
// read-only connections.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mothership-dev/mothership/internal/runtime/store"

	json "github.com/segmentio/encoding/json"
	sqlite3 "modernc.org/sqlite"
	sqlite3lib "modernc.org/sqlite/lib"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Config configures a Store.
type Config struct {
	// Path is the database file.
	Path string
	// Owns, when not nil, lists the kinds the service may write; the
	// host passes the kinds the service declares.
	Owns []string
	// Service names the owning service; it is the source of every event.
	Service string
	// Synchronous is SQLite's synchronous pragma. NORMAL (the default) loses
	// nothing when the process crashes; FULL also survives a power loss, at
	// the price of an fsync per commit.
	Synchronous string
	// PollInterval is the change feed's fallback poll, for commits made by
	// another process. The feed is woken on every commit of this process.
	PollInterval time.Duration
	// Logger receives the store's logs.
	Logger *slog.Logger
	// Now returns the current time; tests may pin it.
	Now func() time.Time
}

// Store is a SQLite-backed store.Store.
type Store struct {
	cfg    Config
	writer *sql.DB
	reader *sql.DB
	notify chan struct{}
	feed   *feed

	// Statements prepared at Open, per pool: parsing SQL on every call
	// cost a fifth of a write's CPU. They cannot be prepared lazily: a
	// transaction holds the writer's only connection.
	writeStmts, readStmts map[string]*sql.Stmt

	// group queues the Update calls that wait for the writer.
	group group

	closeOnce sync.Once
	closeErr  error
}

var (
	_ store.Store       = (*Store)(nil)
	_ store.BacklogFeed = (*feed)(nil)
)

// Open opens (creating if needed) the database at cfg.Path and migrates it.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.Path == "" || cfg.Service == "" {
		return nil, errors.New("sqlite: open: Path and Service are required")
	}
	if cfg.Synchronous == "" {
		cfg.Synchronous = "NORMAL"
	}
	switch cfg.Synchronous {
	case "NORMAL", "FULL", "EXTRA":
	default:
		return nil, fmt.Errorf("sqlite: open: synchronous %q: want NORMAL, FULL or EXTRA", cfg.Synchronous)
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}

	dsn := func(extra ...string) string {
		q := url.Values{}
		q.Add("_pragma", "journal_mode(WAL)")
		q.Add("_pragma", "synchronous("+cfg.Synchronous+")")
		q.Add("_pragma", "busy_timeout(10000)")
		q.Add("_pragma", "foreign_keys(ON)")
		for i := 0; i+1 < len(extra); i += 2 {
			q.Add(extra[i], extra[i+1])
		}
		return "file:" + uriPath.Replace(cfg.Path) + "?" + q.Encode()
	}
	writer, err := sql.Open("sqlite", dsn("_txlock", "immediate"))
	if err != nil {
		return nil, fmt.Errorf("sqlite %s: open writer: %w", cfg.Path, err)
	}
	// One writer connection: SQLite has one writer anyway, and a single
	// connection makes commit order and outbox order the same thing.
	writer.SetMaxOpenConns(1)
	writer.SetConnMaxIdleTime(0)
	reader, err := sql.Open("sqlite", dsn("_pragma", "query_only(ON)"))
	if err != nil {
		writer.Close()
		return nil, fmt.Errorf("sqlite %s: open reader: %w", cfg.Path, err)
	}
	// Every reader stays open: database/sql keeps two idle by default,
	// and a third closed after its read costs an open (the schema parsed
	// again) and its page cache (read again from the file) on the next.
	reader.SetMaxOpenConns(4)
	reader.SetMaxIdleConns(4)
	reader.SetConnMaxIdleTime(0)

	s := &Store{cfg: cfg, writer: writer, reader: reader, notify: make(chan struct{}, 1)}
	if err := s.migrate(ctx); err != nil {
		s.Close()
		return nil, err
	}
	if err := s.prepare(ctx); err != nil {
		s.Close()
		return nil, err
	}
	s.feed = &feed{s: s}
	return s, nil
}

// The statements of the hot paths.
const (
	qGet = `SELECT ` + resourceColumns + ` FROM resources WHERE kind = ? AND id = ?`
	// qGetAll takes its ids as a JSON array, so that one prepared
	// statement serves any number of them.
	qGetAll  = `SELECT ` + resourceColumns + ` FROM resources WHERE kind = ? AND id IN (SELECT value FROM json_each(?)) ORDER BY id`
	qInsert  = `INSERT INTO resources (` + resourceColumns + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	qSave    = `UPDATE resources SET generation = ?, version = ?, spec = ?, status = ?, updated_at = ?, deleted_at = ?, purge_at = ? WHERE kind = ? AND id = ?`
	qAppend  = `INSERT INTO outbox (topic, key, value) VALUES (?, ?, ?)`
	qObserve = `INSERT INTO observed (topic, subject, version, event) VALUES (?, ?, ?, ?)
		ON CONFLICT (topic, subject) DO UPDATE SET version = excluded.version, event = excluded.event WHERE excluded.version > observed.version`
	qObserved    = `SELECT event FROM observed WHERE topic = ? AND subject = ?`
	qObservedAll = `SELECT subject, event FROM observed WHERE topic = ? AND subject IN (SELECT value FROM json_each(?))`
	qSubjects    = `SELECT subject FROM observed WHERE topic = ? ORDER BY subject`
	qIndexPut    = `INSERT INTO index_entries (name, key, value) VALUES (?, ?, ?) ON CONFLICT (name, key) DO UPDATE SET value = excluded.value`
	qIndexDelete = `DELETE FROM index_entries WHERE name = ? AND key = ?`
	qIndexGet    = `SELECT value FROM index_entries WHERE name = ? AND key = ?`
	qIndexGetAll = `SELECT key, value FROM index_entries WHERE name = ? AND key IN (SELECT value FROM json_each(?))`
	qIndexAdd    = `INSERT INTO index_entries (name, key, value) VALUES (?1, ?2, CAST(?3 + ?4 AS TEXT))
		ON CONFLICT (name, key) DO UPDATE SET value = CAST(CAST(value AS INTEGER) + ?3 AS TEXT) RETURNING CAST(value AS INTEGER)`
	qDelete    = `DELETE FROM resources WHERE kind = ? AND id = ?`
	qOutbox    = `SELECT seq, topic, key, value FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?`
	qConfirm   = `DELETE FROM outbox WHERE seq <= ?`
	qList      = `SELECT ` + resourceColumns + ` FROM resources`
	qIndexList = `SELECT key, value FROM index_entries`
)

// listQueries are the lists' statements, one for each shape of their
// parameters (the filters ListQuery and IndexListQuery build), so that
// they are prepared once rather than parsed on every call: an API
// request's authentication lists role bindings, and parsing was a twentieth
// of all the CPU under load.
func listQueries() []string {
	var out []string
	placeholder := func(int) string { return "?" }
	for _, org := range []string{"", "o"} {
		for _, env := range []string{"", "e"} {
			for _, deleted := range []bool{false, true} {
				for _, limit := range []int{0, 1} {
					q, _ := store.ListQuery(store.ListParams{Kind: "k", Organization: org, Environment: env, IncludeDeleted: deleted, Limit: limit}, placeholder)
					out = append(out, qList+q)
				}
			}
		}
	}
	for _, prefix := range []string{"", "p"} {
		for _, after := range []string{"", "a"} {
			for _, limit := range []int{0, 1} {
				q, _ := store.IndexListQuery(store.IndexListParams{Index: "i", Prefix: prefix, AfterKey: after, Limit: limit}, placeholder)
				out = append(out, qIndexList+q)
			}
		}
	}
	return out
}

func (s *Store) prepare(ctx context.Context) error {
	s.writeStmts, s.readStmts = map[string]*sql.Stmt{}, map[string]*sql.Stmt{}
	lists := listQueries()
	writes := []string{qInsert, qSave, qObserve, qIndexPut, qIndexDelete, qIndexAdd, qDelete, qConfirm}
	for _, n := range outboxSizes {
		writes = append(writes, qAppendRows(n))
	}
	for _, q := range slices.Concat([]string{qGet, qGetAll, qObserved, qObservedAll, qSubjects, qIndexGet, qIndexGetAll}, writes, lists) {
		st, err := s.writer.PrepareContext(ctx, q)
		if err != nil {
			return fmt.Errorf("sqlite %s: prepare: %w", s.cfg.Path, err)
		}
		s.writeStmts[q] = st
	}
	for _, q := range append([]string{qGet, qGetAll, qObserved, qObservedAll, qSubjects, qIndexGet, qIndexGetAll, qOutbox}, lists...) {
		st, err := s.reader.PrepareContext(ctx, q)
		if err != nil {
			return fmt.Errorf("sqlite %s: prepare: %w", s.cfg.Path, err)
		}
		s.readStmts[q] = st
	}
	return nil
}

// migrate applies the embedded migrations not yet recorded, each in its own
// transaction, in file-name order.
func (s *Store) migrate(ctx context.Context) error {
	if _, err := s.writer.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("sqlite %s: migrate: %w", s.cfg.Path, err)
	}
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return fmt.Errorf("sqlite: migrate: %w", err)
	}
	sort.Strings(names)
	for _, name := range names {
		base := strings.TrimPrefix(name, "migrations/")
		version, err := strconv.Atoi(strings.SplitN(base, "_", 2)[0])
		if err != nil {
			return fmt.Errorf("sqlite: migration %s: name must start with a version number", base)
		}
		body, err := migrations.ReadFile(name)
		if err != nil {
			return fmt.Errorf("sqlite: migration %s: %w", base, err)
		}
		err = s.inWriteTx(ctx, func(tx *sql.Tx) error {
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations WHERE version = ?`, version).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				return nil
			}
			if _, err := tx.ExecContext(ctx, string(body)); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`, version, s.cfg.Now().UnixNano())
			return err
		})
		if err != nil {
			return fmt.Errorf("sqlite %s: migration %s: %w", s.cfg.Path, base, err)
		}
	}
	return nil
}

func (s *Store) inWriteTx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.writer.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// Update runs fn in a read-write transaction and commits it if fn returns
// nil. Concurrent calls share one transaction (group commit): each runs in
// a savepoint of it, in the order they came, so that one that fails rolls
// back alone while the others commit together, and a burst of small
// writes (API requests, audit records) costs one commit instead of one
// each. fn runs on whichever caller's goroutine leads the group; a panic
// in it is raised again in its own caller.
//
// fn's statements do not stop when ctx ends: SQLite rolls back a whole
// transaction, the group's, when a statement in it is interrupted. A
// caller whose ctx ended before its turn is answered ctx's error without
// running.
func (s *Store) Update(ctx context.Context, fn func(context.Context, store.Tx) error) error {
	u := &update{ctx: ctx, fn: fn, done: make(chan updateResult, 1)}
	s.group.mu.Lock()
	s.group.queue = append(s.group.queue, u)
	lead := !s.group.leading
	s.group.leading = true
	s.group.mu.Unlock()
	if lead {
		s.lead()
	}
	res := <-u.done
	if res.panicked {
		panic(res.panic)
	}
	return res.err
}

// maxGroup bounds the calls one transaction runs.
const maxGroup = 64

// group is the queue of Update calls waiting for the writer.
type group struct {
	mu      sync.Mutex
	queue   []*update
	leading bool // a goroutine runs groups
}

// update is one Update call in the queue.
type update struct {
	ctx  context.Context
	fn   func(context.Context, store.Tx) error
	done chan updateResult
}

type updateResult struct {
	err      error
	panicked bool
	panic    any
}

// lead runs one group of queued calls, then hands the lead to a new
// goroutine if more came meanwhile, so that a leading caller returns as
// soon as its own call is done.
func (s *Store) lead() {
	s.group.mu.Lock()
	n := min(len(s.group.queue), maxGroup)
	batch := s.group.queue[:n:n]
	s.group.queue = s.group.queue[n:]
	s.group.mu.Unlock()

	s.runGroup(batch)

	s.group.mu.Lock()
	more := len(s.group.queue) > 0
	s.group.leading = more
	s.group.mu.Unlock()
	if more {
		go s.lead()
	}
}

// runGroup runs calls in one transaction, each in a savepoint when there
// are several, and commits the ones that succeeded.
func (s *Store) runGroup(calls []*update) {
	// The transaction is the group's: no one caller's context ends it.
	ctx := context.Background()
	sqlTx, err := s.writer.BeginTx(ctx, nil)
	if err != nil {
		for _, u := range calls {
			u.done <- updateResult{err: fmt.Errorf("sqlite %s: begin: %w", s.cfg.Service, mapErr(err))}
		}
		return
	}
	defer sqlTx.Rollback() // after a commit, a no-op
	savepoints := len(calls) > 1
	var committed []*update
	appended := 0
	for _, u := range calls {
		if err := u.ctx.Err(); err != nil {
			u.done <- updateResult{err: err}
			continue
		}
		if savepoints {
			if _, err := sqlTx.ExecContext(ctx, "SAVEPOINT g"); err != nil {
				u.done <- updateResult{err: fmt.Errorf("sqlite %s: savepoint: %w", s.cfg.Service, mapErr(err))}
				continue
			}
		}
		t := store.NewTx(&rows{s: s, tx: sqlTx}, store.TxConfig{Service: s.cfg.Service, Now: s.cfg.Now, Owns: s.cfg.Owns})
		res := runUpdate(context.WithoutCancel(u.ctx), t, u.fn)
		if res.err == nil && !res.panicked {
			if err := t.Finish(ctx); err != nil {
				res.err = fmt.Errorf("sqlite %s: not committing: %w", s.cfg.Service, err)
			}
		}
		if res.err != nil || res.panicked {
			if savepoints {
				_, rbErr := sqlTx.ExecContext(ctx, "ROLLBACK TO g")
				_, relErr := sqlTx.ExecContext(ctx, "RELEASE g")
				if err := errors.Join(rbErr, relErr); err != nil {
					// The transaction is in a state nobody can trust:
					// nobody of the group commits.
					res.err = errors.Join(res.err, fmt.Errorf("sqlite %s: roll back to savepoint: %w", s.cfg.Service, err))
					u.done <- res
					s.fail(committed, calls, u, err)
					return
				}
			} else {
				u.done <- res
				return
			}
			u.done <- res
			continue
		}
		if savepoints {
			if _, err := sqlTx.ExecContext(ctx, "RELEASE g"); err != nil {
				u.done <- updateResult{err: fmt.Errorf("sqlite %s: release savepoint: %w", s.cfg.Service, mapErr(err))}
				s.fail(committed, calls, u, err)
				return
			}
		}
		committed = append(committed, u)
		appended += t.Appended()
	}
	if len(committed) == 0 {
		return
	}
	var result updateResult
	if err := sqlTx.Commit(); err != nil {
		result.err = fmt.Errorf("sqlite %s: commit: %w", s.cfg.Service, mapErr(err))
	}
	for _, u := range committed {
		u.done <- result
	}
	if result.err == nil && appended > 0 {
		select {
		case s.notify <- struct{}{}:
		default:
		}
	}
}

// fail answers the calls of a group that cannot commit, after failed
// (answered already): those that succeeded before it and those not run.
func (s *Store) fail(committed, calls []*update, failed *update, err error) {
	err = fmt.Errorf("sqlite %s: another call of the same transaction failed it: %w", s.cfg.Service, mapErr(err))
	for _, u := range committed {
		u.done <- updateResult{err: err}
	}
	for i, u := range calls {
		if u == failed {
			for _, rest := range calls[i+1:] {
				rest.done <- updateResult{err: err}
			}
			return
		}
	}
}

// runUpdate runs fn, turning a panic into a result for its caller.
func runUpdate(ctx context.Context, t *store.RowsTx, fn func(context.Context, store.Tx) error) (res updateResult) {
	defer func() {
		if p := recover(); p != nil {
			res = updateResult{panicked: true, panic: p}
		}
	}()
	return updateResult{err: fn(ctx, t)}
}

// View runs fn in a read-only transaction.
func (s *Store) View(ctx context.Context, fn func(context.Context, store.Tx) error) error {
	sqlTx, err := s.reader.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("sqlite %s: begin read: %w", s.cfg.Service, mapErr(err))
	}
	defer sqlTx.Rollback()
	return fn(ctx, store.NewTx(&rows{s: s, tx: sqlTx, readOnly: true}, store.TxConfig{Service: s.cfg.Service, Now: s.cfg.Now, ReadOnly: true}))
}

// Feed returns the outbox tail.
func (s *Store) Feed() store.ChangeFeed { return s.feed }

// Close closes both connection pools; it is safe to call twice.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		// The prepared statements first: a connection closed with
		// statements still open is kept (SQLite's close_v2) until they
		// are.
		var errs []error
		for _, st := range s.readStmts {
			errs = append(errs, st.Close())
		}
		for _, st := range s.writeStmts {
			errs = append(errs, st.Close())
		}
		s.closeErr = errors.Join(append(errs, s.reader.Close(), s.writer.Close())...)
	})
	return s.closeErr
}

// mapErr maps driver errors to the store's sentinels.
func mapErr(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, sql.ErrNoRows) {
		return store.ErrNotFound
	}
	var se *sqlite3.Error
	if errors.As(err, &se) {
		switch se.Code() {
		case sqlite3lib.SQLITE_CONSTRAINT_PRIMARYKEY, sqlite3lib.SQLITE_CONSTRAINT_UNIQUE:
			return fmt.Errorf("%w: %v", store.ErrAlreadyExists, err)
		case sqlite3lib.SQLITE_READONLY:
			return fmt.Errorf("%w: %v", store.ErrReadOnly, err)
		}
	}
	return err
}

// rows implements store.Rows on one SQLite transaction.
type rows struct {
	s        *Store
	tx       *sql.Tx
	readOnly bool
}

// stmt returns the transaction's handle on the pool's prepared statement
// for query, or nil for a query not prepared at Open.
func (t *rows) stmt(ctx context.Context, query string) *sql.Stmt {
	cache := t.s.writeStmts
	if t.readOnly {
		cache = t.s.readStmts
	}
	if st := cache[query]; st != nil {
		return t.tx.StmtContext(ctx, st)
	}
	return nil
}

func (t *rows) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if st := t.stmt(ctx, query); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return t.tx.ExecContext(ctx, query, args...)
}

func (t *rows) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st := t.stmt(ctx, query); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return t.tx.QueryContext(ctx, query, args...)
}

func (t *rows) queryRow(ctx context.Context, query string, args ...any) *sql.Row {
	if st := t.stmt(ctx, query); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return t.tx.QueryRowContext(ctx, query, args...)
}

type rowScanner interface{ Scan(...any) error }

const resourceColumns = `kind, id, organization, environment, generation, version, spec, status, created_at, updated_at, deleted_at, purge_at`

func scanResource(row rowScanner) (store.Resource, error) {
	var (
		r                store.Resource
		spec, status     string
		created, updated int64
		deleted, purge   sql.NullInt64
	)
	if err := row.Scan(&r.Kind, &r.ID, &r.Organization, &r.Environment, &r.Generation, &r.Version, &spec, &status, &created, &updated, &deleted, &purge); err != nil {
		return store.Resource{}, mapErr(err)
	}
	r.Spec = json.RawMessage(spec)
	if err := json.Unmarshal([]byte(status), &r.Status); err != nil {
		return store.Resource{}, fmt.Errorf("%s %s: decode status: %w", r.Kind, r.ID, err)
	}
	r.CreatedAt = time.Unix(0, created).UTC()
	r.UpdatedAt = time.Unix(0, updated).UTC()
	r.DeletedAt, r.PurgeAt = fromNanos(deleted), fromNanos(purge)
	return r, nil
}

// GetResource needs no lock: the single writer connection serializes
// read-write transactions.
func (t *rows) GetResource(ctx context.Context, kind, id string) (store.Resource, error) {
	return scanResource(t.queryRow(ctx, qGet, kind, id))
}

// GetResources needs no lock either.
func (t *rows) GetResources(ctx context.Context, kind string, ids []string) ([]store.Resource, error) {
	list, err := json.Marshal(ids)
	if err != nil {
		return nil, err
	}
	return t.list(ctx, qGetAll, kind, string(list))
}

func (t *rows) ListResources(ctx context.Context, p store.ListParams) ([]store.Resource, error) {
	filter, args := store.ListQuery(p, func(int) string { return "?" })
	return t.list(ctx, qList+filter, args...)
}

// list runs a query answering resources.
func (t *rows) list(ctx context.Context, q string, args ...any) ([]store.Resource, error) {
	rs, err := t.query(ctx, q, args...)
	if err != nil {
		return nil, mapErr(err)
	}
	defer rs.Close()
	var out []store.Resource
	for rs.Next() {
		r, err := scanResource(rs)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, mapErr(rs.Err())
}

func fromNanos(n sql.NullInt64) *time.Time {
	if !n.Valid {
		return nil
	}
	t := time.Unix(0, n.Int64).UTC()
	return &t
}

func nanos(t *time.Time) sql.NullInt64 {
	if t == nil {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: t.UnixNano(), Valid: true}
}

func (t *rows) InsertResource(ctx context.Context, r store.Resource) error {
	status, _ := store.EncodeTrusted(r.Status)
	_, err := t.exec(ctx, qInsert, r.Kind, r.ID, r.Organization, r.Environment, r.Generation, r.Version,
		string(r.Spec), string(status), r.CreatedAt.UnixNano(), r.UpdatedAt.UnixNano(), nanos(r.DeletedAt), nanos(r.PurgeAt))
	return mapErr(err)
}

func (t *rows) UpdateResource(ctx context.Context, r store.Resource) error {
	status, _ := store.EncodeTrusted(r.Status)
	_, err := t.exec(ctx, qSave, r.Generation, r.Version, string(r.Spec), string(status), r.UpdatedAt.UnixNano(), nanos(r.DeletedAt), nanos(r.PurgeAt), r.Kind, r.ID)
	return mapErr(err)
}

// outboxSizes are the row counts of the outbox INSERTs prepared at Open,
// largest first: a transaction's events go in as few of them as add up to
// their number (37 = 32 + 4 + 1), each prepared once rather than one
// statement of its own size parsed on every commit.
var outboxSizes = []int{64, 32, 16, 8, 4, 2, 1}

// qAppendRows is the outbox INSERT of n rows.
func qAppendRows(n int) string {
	if n == 1 {
		return qAppend
	}
	return qAppend + strings.Repeat(`, (?, ?, ?)`, n-1)
}

func (t *rows) AppendOutbox(ctx context.Context, events []store.OutboxEvent) error {
	for len(events) > 0 {
		n := outboxSizes[slices.IndexFunc(outboxSizes, func(n int) bool { return n <= len(events) })]
		chunk := events[:n]
		events = events[n:]
		args := make([]any, 0, 3*n)
		for _, e := range chunk {
			args = append(args, e.Topic, e.Key, e.Value)
		}
		if _, err := t.exec(ctx, qAppendRows(n), args...); err != nil {
			return mapErr(err)
		}
	}
	return nil
}

// PutObserved writes row by row: SQLite is in the process, a statement
// costs no round trip.
func (t *rows) PutObserved(ctx context.Context, obs []store.ObservedRow) ([]bool, error) {
	ok := make([]bool, len(obs))
	for i, o := range obs {
		res, err := t.exec(ctx, qObserve, o.Topic, o.Subject, o.Version, o.Value)
		if err != nil {
			return nil, mapErr(err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return nil, err
		}
		ok[i] = n > 0
	}
	return ok, nil
}

func (t *rows) GetObserved(ctx context.Context, topic, subject string) ([]byte, error) {
	var value []byte
	if err := t.queryRow(ctx, qObserved, topic, subject).Scan(&value); err != nil {
		return nil, mapErr(err)
	}
	return value, nil
}

func (t *rows) GetObservedMany(ctx context.Context, topic string, subjects []string) (map[string][]byte, error) {
	return byKey[[]byte](ctx, t, qObservedAll, topic, subjects)
}

func (t *rows) ObservedSubjects(ctx context.Context, topic string) ([]string, error) {
	rs, err := t.query(ctx, qSubjects, topic)
	if err != nil {
		return nil, mapErr(err)
	}
	defer rs.Close()
	var out []string
	for rs.Next() {
		var s string
		if err := rs.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, mapErr(rs.Err())
}

func (t *rows) PutIndex(ctx context.Context, index, key, value string) error {
	_, err := t.exec(ctx, qIndexPut, index, key, value)
	return mapErr(err)
}

func (t *rows) AddIndex(ctx context.Context, index, key string, delta, base int64) (int64, error) {
	var v int64
	err := t.queryRow(ctx, qIndexAdd, index, key, delta, base).Scan(&v)
	return v, mapErr(err)
}

func (t *rows) DeleteResource(ctx context.Context, kind, id string) error {
	_, err := t.exec(ctx, qDelete, kind, id)
	return mapErr(err)
}

func (t *rows) DeleteIndex(ctx context.Context, index, key string) error {
	_, err := t.exec(ctx, qIndexDelete, index, key)
	return mapErr(err)
}

func (t *rows) GetIndex(ctx context.Context, index, key string) (string, error) {
	var value string
	if err := t.queryRow(ctx, qIndexGet, index, key).Scan(&value); err != nil {
		return "", mapErr(err)
	}
	return value, nil
}

func (t *rows) GetIndexes(ctx context.Context, index string, keys []string) (map[string]string, error) {
	return byKey[string](ctx, t, qIndexGetAll, index, keys)
}

// byKey runs q, a read of (key, value) rows of one name (a topic, an
// index) whose keys are in a JSON array, and returns the values by key.
func byKey[V any](ctx context.Context, t *rows, q, name string, keys []string) (map[string]V, error) {
	list, err := json.Marshal(keys)
	if err != nil {
		return nil, err
	}
	rs, err := t.query(ctx, q, name, string(list))
	if err != nil {
		return nil, mapErr(err)
	}
	defer rs.Close()
	out := map[string]V{}
	for rs.Next() {
		var key string
		var value V
		if err := rs.Scan(&key, &value); err != nil {
			return nil, mapErr(err)
		}
		out[key] = value
	}
	return out, mapErr(rs.Err())
}

func (t *rows) ListIndex(ctx context.Context, p store.IndexListParams) ([]store.IndexEntry, error) {
	filter, args := store.IndexListQuery(p, func(int) string { return "?" })
	rs, err := t.query(ctx, qIndexList+filter, args...)
	if err != nil {
		return nil, mapErr(err)
	}
	defer rs.Close()
	var out []store.IndexEntry
	for rs.Next() {
		var e store.IndexEntry
		if err := rs.Scan(&e.Key, &e.Value); err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, mapErr(rs.Err())
}

// feed tails the outbox table: the embedded change-data capture.
type feed struct {
	s *Store

	mu     sync.Mutex
	cursor int64 // last position returned by Next
}

func (f *feed) Next(ctx context.Context, max int) ([]store.Change, error) {
	if max <= 0 {
		max = 1
	}
	poll := time.NewTimer(f.s.cfg.PollInterval)
	defer poll.Stop()
	for {
		f.mu.Lock()
		cursor := f.cursor
		f.mu.Unlock()
		changes, err := f.read(ctx, cursor, max)
		if err != nil || len(changes) > 0 {
			if len(changes) > 0 {
				f.mu.Lock()
				f.cursor = changes[len(changes)-1].Position
				f.mu.Unlock()
			}
			return changes, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-f.s.notify:
		case <-poll.C:
			poll.Reset(f.s.cfg.PollInterval)
		}
	}
}

func (f *feed) read(ctx context.Context, after int64, max int) ([]store.Change, error) {
	rows, err := f.s.readStmts[qOutbox].QueryContext(ctx, after, max)
	if err != nil {
		return nil, fmt.Errorf("sqlite %s: read outbox: %w", f.s.cfg.Service, mapErr(err))
	}
	defer rows.Close()
	var out []store.Change
	for rows.Next() {
		var c store.Change
		if err := rows.Scan(&c.Position, &c.Topic, &c.Key, &c.Value); err != nil {
			return nil, fmt.Errorf("sqlite %s: read outbox: %w", f.s.cfg.Service, err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite %s: read outbox: %w", f.s.cfg.Service, mapErr(err))
	}
	return out, nil
}

// Backlog implements store.BacklogFeed.
func (f *feed) Backlog(ctx context.Context) (int64, error) {
	var n int64
	if err := f.s.reader.QueryRowContext(ctx, `SELECT count(*) FROM outbox`).Scan(&n); err != nil {
		return 0, fmt.Errorf("sqlite %s: count outbox: %w", f.s.cfg.Service, mapErr(err))
	}
	return n, nil
}

// Confirm deletes the rows Kafka has acknowledged: their absence is the
// relay's durable position.
func (f *feed) Confirm(ctx context.Context, pos int64) error {
	if _, err := f.s.writeStmts[qConfirm].ExecContext(ctx, pos); err != nil {
		return fmt.Errorf("sqlite %s: confirm outbox through %d: %w", f.s.cfg.Service, pos, mapErr(err))
	}
	return nil
}

// Rewind restarts Next after the confirmed position: every row still in the
// table is unconfirmed.
func (f *feed) Rewind(context.Context) error {
	f.mu.Lock()
	f.cursor = 0
	f.mu.Unlock()
	return nil
}

// uriPath escapes what would end the path of a file: URI early; SQLite
// decodes the escapes when it opens the file.
var uriPath = strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23")
