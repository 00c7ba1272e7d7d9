package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	json "github.com/segmentio/encoding/json"

	"github.com/mothership-dev/mothership/internal/runtime/store"
)

// rows implements store.Rows on one PostgreSQL transaction, in as few
// round trips as its reads need.
//
// Each round trip is one pgx batch (pipelined statements, one Sync): the
// transaction's BEGIN is sent with its first statement; a write whose
// answer is not needed (an update, the outbox) waits in pending and goes
// with the next statement, or with COMMIT. A source transaction that
// updates a resource is so two round trips (BEGIN + read; update + outbox +
// COMMIT) instead of six.
//
// A pending write that fails makes the statement it went with fail, and
// the transaction never commits (err).
type rows struct {
	conn    *pgxpool.Conn
	begin   string // the statement that begins the transaction
	write   bool
	begun   bool // BEGIN was sent
	done    bool // COMMIT was sent
	pending []pendingWrite
	err     error // the first failed statement: the transaction must not commit
}

type pendingWrite struct {
	sql  string
	args []any
}

// send sends, in one round trip, BEGIN if not yet sent, the pending
// writes, and the statements last queues. An error of any of them is the
// error of the whole, and of the transaction.
func (r *rows) send(ctx context.Context, last func(b *pgx.Batch)) error {
	if r.err != nil {
		return fmt.Errorf("an earlier statement of this transaction failed: %w", r.err)
	}
	b := &pgx.Batch{}
	if !r.begun {
		b.Queue(r.begin)
		r.begun = true
	}
	for _, w := range r.pending {
		b.Queue(w.sql, w.args...)
	}
	r.pending = r.pending[:0]
	last(b)
	if err := r.conn.SendBatch(ctx, b).Close(); err != nil {
		r.err = err
		return err
	}
	return nil
}

// commit sends the pending writes and COMMIT; a transaction that sent
// nothing has nothing to commit.
func (r *rows) commit(ctx context.Context) error {
	if r.err != nil {
		return fmt.Errorf("a statement of this transaction failed: %w", r.err)
	}
	if !r.begun && len(r.pending) == 0 {
		return nil
	}
	var tag pgconn.CommandTag
	err := r.send(ctx, func(b *pgx.Batch) {
		b.Queue("COMMIT").Exec(func(ct pgconn.CommandTag) error { tag = ct; return nil })
	})
	r.done = true
	if err != nil {
		return err
	}
	if tag.String() != "COMMIT" { // the server rolled back
		return pgx.ErrTxCommitRollback
	}
	return nil
}

// end rolls back what was not committed and returns the connection; the
// pool drops a connection left in a transaction or broken.
func (r *rows) end(ctx context.Context) {
	if r.begun && !r.done {
		r.conn.Exec(ctx, "ROLLBACK")
	}
	r.conn.Release()
}

// queryRow runs a statement answering one row; scan reads it.
func (r *rows) queryRow(ctx context.Context, scan func(pgx.Row) error, sql string, args ...any) error {
	var scanErr error
	err := r.send(ctx, func(b *pgx.Batch) {
		b.Queue(sql, args...).QueryRow(func(row pgx.Row) error {
			scanErr = scan(row)
			if errors.Is(scanErr, pgx.ErrNoRows) {
				return nil // an answer, not a failure of the transaction
			}
			return scanErr
		})
	})
	if err != nil {
		return mapErr(err)
	}
	return mapErr(scanErr)
}

// query runs a statement answering rows; each is passed to scan.
func (r *rows) query(ctx context.Context, scan func(pgx.Rows) error, sql string, args ...any) error {
	err := r.send(ctx, func(b *pgx.Batch) {
		b.Queue(sql, args...).Query(func(rs pgx.Rows) error {
			for rs.Next() {
				if err := scan(rs); err != nil {
					return err
				}
			}
			return rs.Err()
		})
	})
	return mapErr(err)
}

// exec runs a statement and returns how many rows it changed.
func (r *rows) exec(ctx context.Context, sql string, args ...any) (int64, error) {
	var n int64
	err := r.send(ctx, func(b *pgx.Batch) {
		b.Queue(sql, args...).Exec(func(ct pgconn.CommandTag) error { n = ct.RowsAffected(); return nil })
	})
	return n, mapErr(err)
}

// later queues a write whose answer is not needed.
func (r *rows) later(sql string, args ...any) error {
	if r.err != nil {
		return fmt.Errorf("an earlier statement of this transaction failed: %w", r.err)
	}
	r.pending = append(r.pending, pendingWrite{sql: sql, args: args})
	return nil
}

const resourceColumns = `kind, id, organization, environment, generation, version, spec, status, created_at, updated_at, deleted_at, purge_at`

func scanResource(row pgx.Row) (store.Resource, error) {
	var (
		r            store.Resource
		spec, status string
	)
	if err := row.Scan(&r.Kind, &r.ID, &r.Organization, &r.Environment, &r.Generation, &r.Version, &spec, &status, &r.CreatedAt, &r.UpdatedAt, &r.DeletedAt, &r.PurgeAt); err != nil {
		return store.Resource{}, err
	}
	r.Spec = json.RawMessage(spec)
	if err := json.Unmarshal([]byte(status), &r.Status); err != nil {
		return store.Resource{}, fmt.Errorf("%s %s: decode status: %w", r.Kind, r.ID, err)
	}
	r.CreatedAt, r.UpdatedAt = r.CreatedAt.UTC(), r.UpdatedAt.UTC()
	r.DeletedAt, r.PurgeAt = inUTC(r.DeletedAt), inUTC(r.PurgeAt)
	return r, nil
}

func inUTC(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// GetResource locks the row in a read-write transaction, so that two
// writers of one resource serialize instead of losing an update.
//
// A row that is not there cannot be locked: two transactions that both
// find it missing would both create it, and the second would fail with
// ErrAlreadyExists where SQLite, one writer at a time, shows the first's
// row (a get-or-create, such as quota's per organization). So a miss
// takes the id's lock (idLock), which InsertResource takes too, and reads
// again: a creator that got there first has committed by then, and this
// statement sees its row. The extra round trip is on a miss only.
func (r *rows) GetResource(ctx context.Context, kind, id string) (store.Resource, error) {
	q := `SELECT ` + resourceColumns + ` FROM resources WHERE kind = $1 AND id = $2`
	if r.write {
		q += ` FOR UPDATE`
	}
	var res store.Resource
	scan := func(row pgx.Row) error {
		var err error
		res, err = scanResource(row)
		return err
	}
	err := r.queryRow(ctx, scan, q, kind, id)
	if r.write && errors.Is(err, store.ErrNotFound) {
		r.pending = append(r.pending, idLock(kind, id))
		err = r.queryRow(ctx, scan, q, kind, id)
	}
	return res, err
}

// GetResources locks the rows it finds in id order, as GetResource
// locks one; the ids it does not find are left for GetResource.
func (r *rows) GetResources(ctx context.Context, kind string, ids []string) ([]store.Resource, error) {
	q := `SELECT ` + resourceColumns + ` FROM resources WHERE kind = $1 AND id = ANY($2) ORDER BY id`
	if r.write {
		q += ` FOR UPDATE`
	}
	var out []store.Resource
	err := r.query(ctx, func(rs pgx.Rows) error {
		res, err := scanResource(rs)
		out = append(out, res)
		return err
	}, q, kind, ids)
	return out, err
}

// idLock takes, until the transaction ends, the lock on a resource's id
// that serializes its creation (see GetResource).
func idLock(kind, id string) pendingWrite {
	return pendingWrite{sql: `SELECT pg_advisory_xact_lock(hashtextextended($1 || '/' || $2, 0))`, args: []any{kind, id}}
}

func (r *rows) ListResources(ctx context.Context, p store.ListParams) ([]store.Resource, error) {
	filter, args := store.ListQuery(p, func(n int) string { return "$" + strconv.Itoa(n) })
	var out []store.Resource
	err := r.query(ctx, func(rs pgx.Rows) error {
		res, err := scanResource(rs)
		out = append(out, res)
		return err
	}, `SELECT `+resourceColumns+` FROM resources`+filter, args...)
	return out, err
}

// InsertResource reports a taken id without failing the statement: in
// PostgreSQL a failed statement aborts the whole transaction, and a caller
// may well go on after ErrAlreadyExists (as it can on SQLite).
func (r *rows) InsertResource(ctx context.Context, res store.Resource) error {
	status, _ := store.EncodeTrusted(res.Status)
	r.pending = append(r.pending, idLock(res.Kind, res.ID))
	n, err := r.exec(ctx, `INSERT INTO resources (`+resourceColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT (kind, id) DO NOTHING`,
		res.Kind, res.ID, res.Organization, res.Environment, res.Generation, res.Version, string(res.Spec), string(status), res.CreatedAt, res.UpdatedAt, res.DeletedAt, res.PurgeAt)
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("%w: %s %s", store.ErrAlreadyExists, res.Kind, res.ID)
	}
	return nil
}

// UpdateResource is sent with the next statement: the row is locked by
// the read that preceded it, so it cannot fail but with the transaction.
func (r *rows) UpdateResource(_ context.Context, res store.Resource) error {
	status, _ := store.EncodeTrusted(res.Status)
	return r.later(`UPDATE resources SET generation = $1, version = $2, spec = $3, status = $4, updated_at = $5, deleted_at = $6, purge_at = $7 WHERE kind = $8 AND id = $9`,
		res.Generation, res.Version, string(res.Spec), string(status), res.UpdatedAt, res.DeletedAt, res.PurgeAt, res.Kind, res.ID)
}

// DeleteResource is sent with the next statement, as UpdateResource.
func (r *rows) DeleteResource(_ context.Context, kind, id string) error {
	return r.later(`DELETE FROM resources WHERE kind = $1 AND id = $2`, kind, id)
}

// AppendOutbox appends the events and deletes them again in one statement
// (mothership_outbox_append), sent with COMMIT: the write-ahead log keeps
// the inserts for the relay, the table stays empty, and the publication
// does not publish deletes.
func (r *rows) AppendOutbox(_ context.Context, events []store.OutboxEvent) error {
	topics := make([]string, len(events))
	keys := make([]string, len(events))
	values := make([][]byte, len(events))
	for i, e := range events {
		topics[i], keys[i], values[i] = e.Topic, e.Key, e.Value
	}
	return r.later(`SELECT mothership_outbox_append($1::text[], $2::text[], $3::bytea[])`, topics, keys, values)
}

// PutObserved writes every row in one statement, one round trip however
// many events a reaction batch records. Rows are written in (topic,
// subject) order, so that concurrent batches lock them in one order.
func (r *rows) PutObserved(ctx context.Context, obs []store.ObservedRow) ([]bool, error) {
	if len(obs) == 1 {
		o := obs[0]
		n, err := r.exec(ctx, `INSERT INTO observed (topic, subject, version, event) VALUES ($1, $2, $3, $4)
			ON CONFLICT (topic, subject) DO UPDATE SET version = excluded.version, event = excluded.event WHERE excluded.version > observed.version`,
			o.Topic, o.Subject, o.Version, o.Value)
		return []bool{n > 0}, err
	}
	order := make([]int, len(obs))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int {
		return cmp.Or(cmp.Compare(obs[a].Topic, obs[b].Topic), cmp.Compare(obs[a].Subject, obs[b].Subject))
	})
	topics, subjects := make([]string, len(obs)), make([]string, len(obs))
	versions, values := make([]int64, len(obs)), make([][]byte, len(obs))
	for i, j := range order {
		topics[i], subjects[i], versions[i], values[i] = obs[j].Topic, obs[j].Subject, obs[j].Version, obs[j].Value
	}
	// RETURNING names the rows inserted or updated; a row the WHERE kept
	// (not newer) is not returned.
	written := make(map[[2]string]bool, len(obs))
	err := r.query(ctx, func(rs pgx.Rows) error {
		var k [2]string
		if err := rs.Scan(&k[0], &k[1]); err != nil {
			return err
		}
		written[k] = true
		return nil
	}, `INSERT INTO observed (topic, subject, version, event)
		SELECT e.topic, e.subject, e.version, e.event
		FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bytea[]) WITH ORDINALITY AS e(topic, subject, version, event, n) ORDER BY e.n
		ON CONFLICT (topic, subject) DO UPDATE SET version = excluded.version, event = excluded.event WHERE excluded.version > observed.version
		RETURNING topic, subject`, topics, subjects, versions, values)
	if err != nil {
		return nil, err
	}
	ok := make([]bool, len(obs))
	for i, o := range obs {
		ok[i] = written[[2]string{o.Topic, o.Subject}]
	}
	return ok, nil
}

func (r *rows) GetObserved(ctx context.Context, topic, subject string) ([]byte, error) {
	var value []byte
	err := r.queryRow(ctx, func(row pgx.Row) error { return row.Scan(&value) },
		`SELECT event FROM observed WHERE topic = $1 AND subject = $2`, topic, subject)
	return value, err
}

func (r *rows) GetObservedMany(ctx context.Context, topic string, subjects []string) (map[string][]byte, error) {
	return byKey[[]byte](ctx, r, `SELECT subject, event FROM observed WHERE topic = $1 AND subject = ANY($2)`, topic, subjects)
}

func (r *rows) ObservedSubjects(ctx context.Context, topic string) ([]string, error) {
	var subjects []string
	err := r.query(ctx, func(rs pgx.Rows) error {
		var s string
		err := rs.Scan(&s)
		subjects = append(subjects, s)
		return err
	}, `SELECT subject FROM observed WHERE topic = $1 ORDER BY subject`, topic)
	return subjects, err
}

// PutIndex and DeleteIndex are sent with the next statement, like
// UpdateResource: a read that follows them in the transaction goes in the
// same batch, after them, and so sees them.
func (r *rows) PutIndex(_ context.Context, index, key, value string) error {
	return r.later(`INSERT INTO index_entries (name, key, value) VALUES ($1, $2, $3) ON CONFLICT (name, key) DO UPDATE SET value = excluded.value`,
		index, key, value)
}

// AddIndex locks the entry (ON CONFLICT DO UPDATE takes the row's lock
// and adds to its newest committed value), so concurrent adds all count.
func (r *rows) AddIndex(ctx context.Context, index, key string, delta, base int64) (int64, error) {
	var v int64
	err := r.queryRow(ctx, func(row pgx.Row) error { return row.Scan(&v) },
		`INSERT INTO index_entries (name, key, value) VALUES ($1, $2, ($3::bigint + $4::bigint)::text)
		ON CONFLICT (name, key) DO UPDATE SET value = (index_entries.value::bigint + $3::bigint)::text RETURNING value::bigint`,
		index, key, delta, base)
	return v, err
}

func (r *rows) DeleteIndex(_ context.Context, index, key string) error {
	return r.later(`DELETE FROM index_entries WHERE name = $1 AND key = $2`, index, key)
}

// GetIndex does not lock: an entry is a hint that the caller confirms on
// the resource it names, which GetResource locks. Locking entries too would
// take locks in another order than the resources' and could deadlock.
func (r *rows) GetIndex(ctx context.Context, index, key string) (string, error) {
	var value string
	err := r.queryRow(ctx, func(row pgx.Row) error { return row.Scan(&value) },
		`SELECT value FROM index_entries WHERE name = $1 AND key = $2`, index, key)
	return value, err
}

func (r *rows) GetIndexes(ctx context.Context, index string, keys []string) (map[string]string, error) {
	return byKey[string](ctx, r, `SELECT key, value FROM index_entries WHERE name = $1 AND key = ANY($2)`, index, keys)
}

// byKey runs q, a read of (key, value) rows of one name (a topic, an
// index) among keys, and returns the values by key.
func byKey[V any](ctx context.Context, r *rows, q, name string, keys []string) (map[string]V, error) {
	out := map[string]V{}
	err := r.query(ctx, func(rs pgx.Rows) error {
		var key string
		var value V
		if err := rs.Scan(&key, &value); err != nil {
			return err
		}
		out[key] = value
		return nil
	}, q, name, keys)
	return out, err
}

func (r *rows) ListIndex(ctx context.Context, p store.IndexListParams) ([]store.IndexEntry, error) {
	filter, args := store.IndexListQuery(p, func(n int) string { return "$" + strconv.Itoa(n) })
	var out []store.IndexEntry
	err := r.query(ctx, func(rs pgx.Rows) error {
		var e store.IndexEntry
		err := rs.Scan(&e.Key, &e.Value)
		out = append(out, e)
		return err
	}, `SELECT key, value FROM index_entries`+filter, args...)
	return out, err
}
