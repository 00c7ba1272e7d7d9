// Package postgres is the distributed backend of the runtime store: one
// PostgreSQL database per service (pgx), and change-data capture by logical
// replication of the outbox (pgoutput, a publication on the outbox table and
// a replication slot per service), the Debezium pattern.
package postgres

import (
	"context"
	"embed"
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
	cfg    Config
	pool   *pgxpool.Pool
	feed   *feed
	watch  *slotWatch
	health *health

	closeOnce sync.Once
}

var (
	_ store.Store       = (*Store)(nil)
	_ store.BacklogFeed = (*feed)(nil)
)

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
	poolCfg, err := pgxpool.ParseConfig(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("postgres %s: url: %w", cfg.Service, err)
	}
	if !strings.Contains(cfg.URL, "pool_max_conns") {
		// Within the role's CONNECTION LIMIT (RoleConnLimit), with room
		// for the replication connections.
		poolCfg.MaxConns = PoolConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, poolCfg)
	if err != nil {
		return nil, fmt.Errorf("postgres %s: connect: %w", cfg.Service, err)
	}
	s := &Store{cfg: cfg, pool: pool}
	s.feed = &feed{s: s}
	if s.health, err = newHealth(s); err != nil {
		pool.Close()
		return nil, err
	}
	if s.watch, err = newSlotWatch(s); err != nil {
		s.health.stop()
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
		s.health.stop()
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
//
// The transaction costs as few round trips as its reads: BEGIN goes with
// the first statement, writes whose answer nobody waits for go with the
// next one, and the last writes, the outbox and COMMIT go together (see
// rows).
func (s *Store) Update(ctx context.Context, fn func(context.Context, store.Tx) error) error {
	r, err := s.begin(ctx, "BEGIN", true)
	if err != nil {
		return err
	}
	defer r.end(ctx)
	t := store.NewTx(r, store.TxConfig{Service: s.cfg.Service, Now: s.cfg.Now, Owns: s.cfg.Owns})
	if err := fn(ctx, t); err != nil {
		return err
	}
	if err := t.Finish(ctx); err != nil {
		return fmt.Errorf("postgres %s: not committing: %w", s.cfg.Service, err)
	}
	if err := r.commit(ctx); err != nil {
		return fmt.Errorf("postgres %s: commit: %w", s.cfg.Service, mapErr(err))
	}
	return nil
}

// View runs fn in a read-only snapshot.
func (s *Store) View(ctx context.Context, fn func(context.Context, store.Tx) error) error {
	r, err := s.begin(ctx, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", false)
	if err != nil {
		return err
	}
	defer r.end(ctx)
	return fn(ctx, store.NewTx(r, store.TxConfig{Service: s.cfg.Service, Now: s.cfg.Now, ReadOnly: true}))
}

func (s *Store) begin(ctx context.Context, begin string, write bool) (*rows, error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("postgres %s: connect: %w", s.cfg.Service, err)
	}
	return &rows{conn: conn, begin: begin, write: write}, nil
}

// Ready says why the store is not ready, if it is not: its replication
// slot was lost and the relay has not caught up from the outbox table yet.
// Writes are accepted meanwhile; they reach Kafka after the catch-up.
func (s *Store) Ready() error { return s.health.err() }

// Feed returns the logical-replication change feed.
func (s *Store) Feed() store.ChangeFeed { return s.feed }

// Close closes the replication connection and the pool; safe twice.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.watch.stop()
		s.health.stop()
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
