// Package postgres is the distributed backend of the runtime store: one
// PostgreSQL database per service (pgx), and change-data capture by logical
// replication of the outbox (pgoutput, a publication on the outbox table and
// a replication slot per service), the Debezium pattern.
package postgres

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mothership-dev/mothership/internal/runtime/store"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Config configures a Store.
type Config struct {
	// URL is the connection string of the service's own database.
	URL string
	// Owns, when not nil, lists the kinds the service may write; the
	// host passes the kinds the service declares.
	Owns []string
	// Service names the owning service; it is the source of every event
	// and names the replication slot.
	Service string
	// Slot is the replication slot. Slot names are global to a server, so
	// the default names it after the database: mothership_<database>, or
	// the database's name if it starts with mothership_ already (as
	// Provision names it).
	Slot string
	// Registerer receives the slot's metrics (MetricRetainedWAL,
	// MetricWALStatus); nil registers nothing. Stores of one service may
	// share it.
	Registerer prometheus.Registerer
	// SlotCheckEvery is how often the slot's retained WAL is sampled
	// (default 10s).
	SlotCheckEvery time.Duration
	// SlotWarnBytes is the retained WAL above which a warning is logged
	// (default 1 GiB; negative: never). The server's bound is
	// max_slot_wal_keep_size: see slotWatch.
	SlotWarnBytes int64
	Logger        *slog.Logger
	Now           func() time.Time
}

// Store is a PostgreSQL-backed store.Store.
type Store struct {
	cfg   Config
	pool  *pgxpool.Pool
	feed  *feed
	watch *slotWatch

	closeOnce sync.Once
}

var _ store.Store = (*Store)(nil)

// Open connects to cfg.URL, migrates the database, makes sure the
// replication slot exists and starts watching the WAL it retains.
//
// The URL's role must own the database and have LOGIN and REPLICATION, as
// Provision makes it; an error otherwise says so.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.URL == "" || cfg.Service == "" {
		return nil, errors.New("postgres: open: URL and Service are required")
	}
	if cfg.Slot == "" {
		pc, err := pgconn.ParseConfig(cfg.URL)
		if err != nil {
			return nil, fmt.Errorf("postgres %s: url: %w", cfg.Service, err)
		}
		db := strings.NewReplacer("-", "_", ".", "_").Replace(strings.ToLower(pc.Database))
		cfg.Slot = db
		if !strings.HasPrefix(db, "mothership_") {
			cfg.Slot = "mothership_" + db
		}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	cfg.Logger = cfg.Logger.With("component", "store", "service", cfg.Service)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.SlotCheckEvery <= 0 {
		cfg.SlotCheckEvery = 10 * time.Second
	}
	if cfg.SlotWarnBytes == 0 {
		cfg.SlotWarnBytes = 1 << 30
	}
	pool, err := pgxpool.New(ctx, cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("postgres %s: connect: %w", cfg.Service, err)
	}
	s := &Store{cfg: cfg, pool: pool}
	s.feed = &feed{s: s}
	if s.watch, err = newSlotWatch(s); err != nil {
		pool.Close()
		return nil, err
	}
	err = s.migrate(ctx)
	if err == nil {
		err = s.feed.ensureSlot(ctx)
	}
	if err == nil {
		err = s.watch.start(ctx)
	}
	if err != nil {
		s.watch.stop()
		pool.Close()
		return nil, openErr(cfg, err)
	}
	return s, nil
}

// openErr says what to do when the server refused the service's role.
func openErr(cfg Config, err error) error {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return err
	}
	switch pe.Code {
	case "42501", "28000", "28P01", "3D000": // insufficient_privilege, invalid_authorization_specification, invalid_password, invalid_catalog_name
		db := Name(cfg.Service)
		return fmt.Errorf("%w. The service's role must log in with its password, have REPLICATION and own its database: "+
			"run postgres.Provision with a superuser's URL, or as a superuser: CREATE ROLE %s LOGIN REPLICATION PASSWORD '...'; "+
			"CREATE DATABASE %s OWNER %s; REVOKE ALL ON DATABASE %s FROM PUBLIC; and use that role's URL for this service", err, db, db, db, db)
	}
	return err
}

// migrate applies the embedded migrations not yet recorded, under an
// advisory lock so that two processes of one service do not race.
func (s *Store) migrate(ctx context.Context) error {
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	sort.Strings(names)
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("postgres %s: migrate: %w", s.cfg.Service, err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(7270617)`); err != nil {
		return fmt.Errorf("postgres %s: migrate: lock: %w", s.cfg.Service, err)
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return fmt.Errorf("postgres %s: migrate: %w", s.cfg.Service, err)
	}
	for _, name := range names {
		base := strings.TrimPrefix(name, "migrations/")
		version, err := strconv.Atoi(strings.SplitN(base, "_", 2)[0])
		if err != nil {
			return fmt.Errorf("postgres: migration %s: name must start with a version number", base)
		}
		var n int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM schema_migrations WHERE version = $1`, version).Scan(&n); err != nil {
			return fmt.Errorf("postgres %s: migration %s: %w", s.cfg.Service, base, err)
		}
		if n > 0 {
			continue
		}
		body, err := migrations.ReadFile(name)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, string(body)); err != nil {
			return fmt.Errorf("postgres %s: migration %s: %w", s.cfg.Service, base, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version) VALUES ($1)`, version); err != nil {
			return fmt.Errorf("postgres %s: migration %s: %w", s.cfg.Service, base, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("postgres %s: migrate: commit: %w", s.cfg.Service, err)
	}
	return nil
}

// Update runs fn in one read-write transaction.
func (s *Store) Update(ctx context.Context, fn func(context.Context, store.Tx) error) error {
	if err := s.watch.err(); err != nil {
		return err
	}
	pgTx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("postgres %s: begin: %w", s.cfg.Service, err)
	}
	defer pgTx.Rollback(ctx)
	r := &rows{tx: pgTx, write: true}
	t := store.NewTx(r, store.TxConfig{Service: s.cfg.Service, Now: s.cfg.Now, Owns: s.cfg.Owns})
	if err := fn(ctx, t); err != nil {
		return err
	}
	if err := t.Finish(ctx); err != nil {
		return fmt.Errorf("postgres %s: not committing: %w", s.cfg.Service, err)
	}
	if err := r.emptyOutbox(ctx); err != nil {
		return err
	}
	if err := pgTx.Commit(ctx); err != nil {
		return fmt.Errorf("postgres %s: commit: %w", s.cfg.Service, mapErr(err))
	}
	return nil
}

// View runs fn in a read-only snapshot.
func (s *Store) View(ctx context.Context, fn func(context.Context, store.Tx) error) error {
	pgTx, err := s.pool.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly, IsoLevel: pgx.RepeatableRead})
	if err != nil {
		return fmt.Errorf("postgres %s: begin read: %w", s.cfg.Service, err)
	}
	defer pgTx.Rollback(ctx)
	return fn(ctx, store.NewTx(&rows{tx: pgTx}, store.TxConfig{Service: s.cfg.Service, Now: s.cfg.Now, ReadOnly: true}))
}

// Feed returns the logical-replication change feed.
func (s *Store) Feed() store.ChangeFeed { return s.feed }

// Close closes the replication connection and the pool; safe twice.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.watch.stop()
		s.feed.close()
		s.pool.Close()
	})
	return nil
}

func mapErr(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return store.ErrNotFound
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "23505": // unique_violation
			return fmt.Errorf("%w: %v", store.ErrAlreadyExists, err)
		case "25006": // read_only_sql_transaction
			return fmt.Errorf("%w: %v", store.ErrReadOnly, err)
		case "42501": // insufficient_privilege
			return fmt.Errorf("%w: %w: this database belongs to another service's role, and a service writes only its own: connect with the service's own URL (as postgres.Provision returns it)", store.ErrNotOwned, err)
		}
	}
	return err
}

// rows implements store.Rows on one PostgreSQL transaction.
type rows struct {
	tx     pgx.Tx
	write  bool
	outbox []int64 // outbox rows inserted, deleted again before commit
}

const resourceColumns = `kind, id, organization, environment, generation, version, spec, status, created_at, updated_at, deleted_at`

func scanResource(row pgx.Row) (store.Resource, error) {
	var (
		r            store.Resource
		spec, status string
	)
	if err := row.Scan(&r.Kind, &r.ID, &r.Organization, &r.Environment, &r.Generation, &r.Version, &spec, &status, &r.CreatedAt, &r.UpdatedAt, &r.DeletedAt); err != nil {
		return store.Resource{}, mapErr(err)
	}
	r.Spec = json.RawMessage(spec)
	if err := json.Unmarshal([]byte(status), &r.Status); err != nil {
		return store.Resource{}, fmt.Errorf("%s %s: decode status: %w", r.Kind, r.ID, err)
	}
	r.CreatedAt, r.UpdatedAt = r.CreatedAt.UTC(), r.UpdatedAt.UTC()
	if r.DeletedAt != nil {
		t := r.DeletedAt.UTC()
		r.DeletedAt = &t
	}
	return r, nil
}

// GetResource locks the row in a read-write transaction, so that two
// writers of one resource serialize instead of losing an update.
func (r *rows) GetResource(ctx context.Context, kind, id string) (store.Resource, error) {
	q := `SELECT ` + resourceColumns + ` FROM resources WHERE kind = $1 AND id = $2`
	if r.write {
		q += ` FOR UPDATE`
	}
	return scanResource(r.tx.QueryRow(ctx, q, kind, id))
}

func (r *rows) ListResources(ctx context.Context, p store.ListParams) ([]store.Resource, error) {
	filter, args := store.ListQuery(p, func(n int) string { return "$" + strconv.Itoa(n) })
	q := `SELECT ` + resourceColumns + ` FROM resources` + filter
	rs, err := r.tx.Query(ctx, q, args...)
	if err != nil {
		return nil, mapErr(err)
	}
	defer rs.Close()
	var out []store.Resource
	for rs.Next() {
		res, err := scanResource(rs)
		if err != nil {
			return nil, err
		}
		out = append(out, res)
	}
	return out, mapErr(rs.Err())
}

// InsertResource reports a taken id without failing the statement: in
// PostgreSQL a failed statement aborts the whole transaction, and a caller
// may well go on after ErrAlreadyExists (as it can on SQLite).
func (r *rows) InsertResource(ctx context.Context, res store.Resource) error {
	status, _ := json.Marshal(res.Status)
	tag, err := r.tx.Exec(ctx, `INSERT INTO resources (`+resourceColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (kind, id) DO NOTHING`,
		res.Kind, res.ID, res.Organization, res.Environment, res.Generation, res.Version, string(res.Spec), string(status), res.CreatedAt, res.UpdatedAt, res.DeletedAt)
	if err != nil {
		return mapErr(err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%w: %s %s", store.ErrAlreadyExists, res.Kind, res.ID)
	}
	return nil
}

func (r *rows) UpdateResource(ctx context.Context, res store.Resource) error {
	status, _ := json.Marshal(res.Status)
	_, err := r.tx.Exec(ctx, `UPDATE resources SET generation = $1, version = $2, spec = $3, status = $4, updated_at = $5, deleted_at = $6 WHERE kind = $7 AND id = $8`,
		res.Generation, res.Version, string(res.Spec), string(status), res.UpdatedAt, res.DeletedAt, res.Kind, res.ID)
	return mapErr(err)
}

// AppendOutbox inserts all events in one statement; the order of the
// arrays is the order of the inserts, and so of the log.
func (r *rows) AppendOutbox(ctx context.Context, events []store.OutboxEvent) error {
	topics := make([]string, len(events))
	keys := make([]string, len(events))
	values := make([][]byte, len(events))
	for i, e := range events {
		topics[i], keys[i], values[i] = e.Topic, e.Key, e.Value
	}
	rs, err := r.tx.Query(ctx, `INSERT INTO outbox (topic, key, value)
		SELECT topic, key, value FROM unnest($1::text[], $2::text[], $3::bytea[]) WITH ORDINALITY AS e(topic, key, value, n) ORDER BY n
		RETURNING seq`, topics, keys, values)
	if err != nil {
		return mapErr(err)
	}
	seqs, err := pgx.CollectRows(rs, pgx.RowTo[int64])
	if err != nil {
		return mapErr(err)
	}
	r.outbox = append(r.outbox, seqs...)
	return nil
}

// emptyOutbox deletes this transaction's outbox rows before it commits:
// the write-ahead log keeps the inserts for the relay, the table stays
// empty, and the publication does not publish deletes.
func (r *rows) emptyOutbox(ctx context.Context) error {
	if len(r.outbox) == 0 {
		return nil
	}
	if _, err := r.tx.Exec(ctx, `DELETE FROM outbox WHERE seq = ANY($1)`, r.outbox); err != nil {
		return fmt.Errorf("postgres: empty outbox: %w", mapErr(err))
	}
	return nil
}

func (r *rows) PutObserved(ctx context.Context, topic, subject string, version int64, value []byte) (bool, error) {
	tag, err := r.tx.Exec(ctx, `INSERT INTO observed (topic, subject, version, event) VALUES ($1, $2, $3, $4)
		ON CONFLICT (topic, subject) DO UPDATE SET version = excluded.version, event = excluded.event WHERE excluded.version > observed.version`,
		topic, subject, version, value)
	if err != nil {
		return false, mapErr(err)
	}
	return tag.RowsAffected() > 0, nil
}

func (r *rows) GetObserved(ctx context.Context, topic, subject string) ([]byte, error) {
	var value []byte
	if err := r.tx.QueryRow(ctx, `SELECT event FROM observed WHERE topic = $1 AND subject = $2`, topic, subject).Scan(&value); err != nil {
		return nil, mapErr(err)
	}
	return value, nil
}

func (r *rows) ObservedSubjects(ctx context.Context, topic string) ([]string, error) {
	rs, err := r.tx.Query(ctx, `SELECT subject FROM observed WHERE topic = $1 ORDER BY subject`, topic)
	if err != nil {
		return nil, mapErr(err)
	}
	subjects, err := pgx.CollectRows(rs, pgx.RowTo[string])
	return subjects, mapErr(err)
}
