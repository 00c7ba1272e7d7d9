package postgres

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/mothership-dev/mothership/internal/runtime/store"
)

// standbyEvery is how often the feed tells the server where it is; the
// server drops a replication connection silent for wal_sender_timeout (60s
// by default).
const standbyEvery = 10 * time.Second

// bufferedWait is how long Next waits for more of what the server is
// sending once it has a transaction to return.
const bufferedWait = 100 * time.Microsecond

// feed reads the outbox inserts from the service's replication slot.
//
// A transaction's changes are returned together: Next returns whole
// transactions only, so confirming a change never confirms half a
// transaction's WAL. The server resends, after a reconnect, every
// transaction that ended after the confirmed position.
//
// The slot is the fast path, not the only copy: an outbox row stays in its
// table until Kafka acknowledged it (Confirm deletes it). A slot that was
// lost (dropped by anyone, invalidated by the server) is made again, and
// before it streams, the feed returns every row still in the table, in
// insertion order: every committed change reaches Kafka even then. Rows of
// one key are inserted in their commit order, since every event of a
// resource is written with its row locked, so the catch-up keeps the order
// per key. The new slot's stream then holds rows the catch-up returned
// already (committed after the slot was made) or that Kafka has (returned
// and confirmed by an earlier pass of the catch-up): the filter drops
// them, so that no key's change comes again after a newer one.
type feed struct {
	s *Store

	mu        sync.Mutex
	conn      *pgconn.PgConn
	relations map[uint32]*pglogrepl.RelationMessage
	inTx      bool     // between a Begin and its Commit
	tx        []change // inserts of the transaction being received
	ready     []change // committed changes not yet returned
	pending   []change // returned by Next, not confirmed yet, in order
	confirmed pglogrepl.LSN
	received  pglogrepl.LSN
	standby   time.Time // when the next status update is due

	// The catch-up from the table after a slot was made (again): from
	// then until every row the table held reached Kafka, catchingUp is
	// set, here and in cdc_slot.catch_up.
	catchingUp bool
	reading    bool // the table is read before the slot's stream
	caughtUp   int  // rows of the catch-up confirmed so far
	// fromTable are the seqs of the rows read from the table and not
	// confirmed yet.
	fromTable map[int64]struct{}
	filter    *streamFilter
	// polling is set while the server refuses the feed a WAL sender (all
	// taken): the table is read every pollEvery instead, and the stream
	// tried again at nextConnect.
	polling     bool
	nextConnect time.Time
}

// Polling the table when the server has no WAL sender to spare.
const (
	pollEvery    = 100 * time.Millisecond
	connectEvery = 5 * time.Second
)

// streamFilter drops, from the stream of a connection that follows a read
// of the table, what the read returned or Kafka already has.
type streamFilter struct {
	// until is the WAL position once the table was last read to its end:
	// every transaction ending after it committed after the reads, so it
	// was neither returned by them nor confirmed before it.
	until pglogrepl.LSN
}

// change is one outbox row as the feed holds it. Its Position is the row's
// seq; Confirm deletes the row and confirms its transaction's end in the
// WAL (lsn) to the slot. A row read from the table has no lsn.
type change struct {
	store.Change
	lsn pglogrepl.LSN
}

func (f *feed) replicationURL() (string, error) {
	u, err := url.Parse(f.s.cfg.URL)
	if err != nil {
		return "", fmt.Errorf("postgres %s: replication url: %w", f.s.cfg.Service, err)
	}
	q := u.Query()
	q.Set("replication", "database")
	u.RawQuery = q.Encode()
	return u.String(), nil
}

func (f *feed) dial(ctx context.Context) (*pgconn.PgConn, error) {
	dsn, err := f.replicationURL()
	if err != nil {
		return nil, err
	}
	conn, err := pgconn.Connect(ctx, dsn)
	if err != nil {
		return nil, fmt.Errorf("postgres %s: replication connect: %w", f.s.cfg.Service, err)
	}
	return conn, nil
}

// ensureSlot creates the replication slot unless it exists. Open calls it
// before the store accepts a write: a slot streams only what is committed
// after its creation. A slot made here starts a catch-up from the table;
// one that existed before (cdc_slot says so) was lost while the service
// was away, and that is said loudly. A catch-up a crash interrupted goes
// on.
func (f *feed) ensureSlot(ctx context.Context) error {
	var before, catchUp bool
	err := f.s.pool.QueryRow(ctx, `SELECT true, catch_up FROM cdc_slot WHERE slot = $1`, f.s.cfg.Slot).Scan(&before, &catchUp)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("postgres %s: cdc_slot: %w", f.s.cfg.Service, err)
	}
	made, err := f.createSlot(ctx)
	switch {
	case err != nil:
		return err
	case made && before:
		f.s.health.lost(ctx, "dropped")
		f.s.health.remade()
	case !made && catchUp:
		f.s.health.lost(ctx, "resumed")
		f.startCatchUp()
	}
	return nil
}

// createSlot creates the slot and reports whether it did (false: it
// existed). A slot made starts a catch-up, recorded in cdc_slot first: a
// crash between the two resumes it, never loses it. The slot is made with
// SQL, not over a replication connection: a server whose WAL senders are
// all taken does not keep the service from starting.
func (f *feed) createSlot(ctx context.Context) (bool, error) {
	if _, err := f.s.pool.Exec(ctx, `INSERT INTO cdc_slot (slot, catch_up) SELECT $1::text, NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1::text)
		ON CONFLICT (slot) DO UPDATE SET catch_up = cdc_slot.catch_up OR excluded.catch_up`, f.s.cfg.Slot); err != nil {
		return false, fmt.Errorf("postgres %s: cdc_slot: %w", f.s.cfg.Service, err)
	}
	_, err := f.s.pool.Exec(ctx, `SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, f.s.cfg.Slot)
	if isCode(err, "42710") { // duplicate_object: the slot exists
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("postgres %s: create replication slot %s: %w", f.s.cfg.Service, f.s.cfg.Slot, err)
	}
	f.startCatchUp()
	return true, nil
}

// startCatchUp makes Next read the table from its first row before the
// slot's stream.
func (f *feed) startCatchUp() {
	f.catchingUp, f.reading = true, true
	f.fromTable, f.filter = map[int64]struct{}{}, &streamFilter{}
}

// errRemade tells Next that connect made the slot again: the table comes
// first.
var errRemade = errors.New("replication slot made again")

// connect opens the replication connection and starts streaming after the
// slot's confirmed position. A slot found dropped or invalidated is made
// again (errRemade).
func (f *feed) connect(ctx context.Context) error {
	conn, err := f.dial(ctx)
	if err != nil {
		return err
	}
	err = pglogrepl.StartReplication(ctx, conn, f.s.cfg.Slot, 0, pglogrepl.StartReplicationOptions{
		PluginArgs: []string{"proto_version '1'", "publication_names 'mothership_outbox'"},
	})
	if err != nil {
		conn.Close(ctx)
		var pe *pgconn.PgError
		switch {
		case !errors.As(err, &pe):
		case pe.Code == "55000" && (strings.Contains(pe.Detail, "invalidated") || strings.Contains(pe.Message+pe.Detail, "no longer get changes")): // the slot was invalidated
			return f.remake(ctx, "lost")
		case pe.Code == "42704": // undefined_object: the slot was dropped
			return f.remake(ctx, "dropped")
		}
		return fmt.Errorf("postgres %s: start replication: %w", f.s.cfg.Service, err)
	}
	f.conn, f.relations, f.tx, f.ready = conn, map[uint32]*pglogrepl.RelationMessage{}, nil, nil
	f.standby = time.Now().Add(standbyEvery)
	return nil
}

// remake drops what is left of a lost slot, makes it again and starts the
// catch-up from the table.
func (f *feed) remake(ctx context.Context, status string) error {
	f.s.health.lost(ctx, status)
	if status == "lost" {
		// The WAL sender that refused the slot may hold it a moment
		// longer (object_in_use): wait for it, a while.
		for attempt := 0; ; attempt++ {
			_, err := f.s.pool.Exec(ctx, `SELECT pg_drop_replication_slot($1)`, f.s.cfg.Slot)
			if err == nil || isCode(err, "42704") {
				break
			}
			if !isCode(err, "55006") || attempt == 100 {
				return fmt.Errorf("postgres %s: drop the invalidated slot %s: %w", f.s.cfg.Service, f.s.cfg.Slot, err)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	if _, err := f.createSlot(ctx); err != nil {
		return err
	}
	f.s.health.remade()
	// The new slot knows nothing of the old one's positions.
	f.confirmed, f.received, f.pending = 0, 0, nil
	return errRemade
}

func isCode(err error, code string) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == code
}

// Next returns the next whole committed transaction(s), at least one
// change, and up to about max: whole transactions only. It does not wait
// for more to reach max: a short wait for a fuller batch (1 ms per
// receive) tripled the hop's latency at 1,000/s; it takes only what has
// arrived (bufferedWait). During a catch-up it returns the table's rows
// first.
func (f *feed) Next(ctx context.Context, max int) ([]store.Change, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for f.conn == nil {
		if f.reading {
			out, err := f.readTable(ctx, max)
			if err != nil || len(out) > 0 {
				return out, err
			}
		}
		if f.polling && time.Now().Before(f.nextConnect) {
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(pollEvery):
			}
			f.reading = true
			continue
		}
		err := f.connect(ctx)
		switch {
		case errors.Is(err, errRemade):
			continue
		case isCode(err, "53300"): // too_many_connections: no WAL sender to spare
			f.polling, f.nextConnect, f.reading = true, time.Now().Add(connectEvery), true
			f.s.health.noSender(ctx, err)
			continue
		case err != nil:
			return nil, err
		}
		if f.polling {
			f.polling = false
			f.s.health.streaming(ctx)
		}
	}
	for len(f.ready) == 0 {
		if _, err := f.receive(ctx, f.standby); err != nil {
			return nil, err
		}
	}
	// What the server has sent already joins the batch, waiting no
	// longer than bufferedWait for it: under load a relay round then
	// carries every transaction committed during the previous round (one
	// produce for many), while an idle feed adds at most that wait.
	for len(f.ready) < max {
		timedOut, err := f.receive(ctx, time.Now().Add(bufferedWait))
		if err != nil {
			return nil, err
		}
		if timedOut {
			break
		}
	}
	return f.hand(), nil
}

// hand returns what is ready and keeps it until confirmed.
func (f *feed) hand() []store.Change {
	out := make([]store.Change, len(f.ready))
	for i, c := range f.ready {
		out[i] = c.Change
	}
	f.pending = append(f.pending, f.ready...)
	f.ready = nil
	return out
}

// readTable returns the next rows of the table that it has not returned
// yet, in insertion order; none once the table was read to its end. The
// slot exists before the first read: a row committed after a read is
// streamed by it, or read by the next poll. A row inserted before another
// may commit after it; by then, rows it was read with are of other keys.
func (f *feed) readTable(ctx context.Context, max int) ([]store.Change, error) {
	if f.fromTable == nil {
		f.fromTable = map[int64]struct{}{}
	}
	if f.filter == nil {
		f.filter = &streamFilter{}
	}
	seen := make([]int64, 0, len(f.fromTable))
	for seq := range f.fromTable {
		seen = append(seen, seq)
	}
	rows, err := f.s.pool.Query(ctx, `SELECT seq, topic, key, value FROM outbox WHERE seq <> ALL($1) ORDER BY seq LIMIT $2`, seen, max)
	if err != nil {
		return nil, fmt.Errorf("postgres %s: catch up from the outbox table: %w", f.s.cfg.Service, err)
	}
	for rows.Next() {
		var c change
		if err := rows.Scan(&c.Position, &c.Topic, &c.Key, &c.Value); err != nil {
			rows.Close()
			return nil, fmt.Errorf("postgres %s: catch up from the outbox table: %w", f.s.cfg.Service, err)
		}
		f.ready = append(f.ready, c)
		f.fromTable[c.Position] = struct{}{}
	}
	if err := rows.Err(); err != nil {
		f.ready = nil
		return nil, fmt.Errorf("postgres %s: catch up from the outbox table: %w", f.s.cfg.Service, err)
	}
	if n := len(f.ready); n > 0 && !f.polling {
		f.s.cfg.Logger.InfoContext(ctx, "catching up from the outbox table", "slot", f.s.cfg.Slot, "rows", n, "last_seq", f.ready[n-1].Position)
	}
	if len(f.ready) < max {
		if err := f.s.pool.QueryRow(ctx, `SELECT pg_current_wal_lsn()`).Scan(&f.filter.until); err != nil {
			f.ready = nil
			return nil, fmt.Errorf("postgres %s: catch up: WAL position: %w", f.s.cfg.Service, err)
		}
		f.reading = false
		if err := f.maybeCaughtUp(ctx); err != nil {
			f.ready = nil
			return nil, err
		}
	}
	return f.hand(), nil
}

// maybeCaughtUp ends the catch-up once the table was read to its end and
// every row it returned was confirmed.
func (f *feed) maybeCaughtUp(ctx context.Context) error {
	if !f.catchingUp || f.reading || len(f.fromTable) > 0 {
		return nil
	}
	if _, err := f.s.pool.Exec(ctx, `UPDATE cdc_slot SET catch_up = false WHERE slot = $1`, f.s.cfg.Slot); err != nil {
		return fmt.Errorf("postgres %s: end the catch-up: %w", f.s.cfg.Service, err)
	}
	f.catchingUp = false
	f.s.health.caughtUp(ctx, f.caughtUp)
	f.caughtUp = 0
	return nil
}

// receive reads one message, waiting until deadline at the latest (and
// reporting a timeout), and keeps the server informed.
func (f *feed) receive(ctx context.Context, deadline time.Time) (timedOut bool, err error) {
	if time.Now().After(f.standby) {
		if err := f.sendStandby(ctx); err != nil {
			return false, err
		}
	}
	wait, cancel := context.WithDeadline(ctx, earliest(deadline, f.standby))
	msg, err := f.conn.ReceiveMessage(wait)
	cancel()
	if err != nil {
		if pgconn.Timeout(err) && ctx.Err() == nil {
			return true, nil // nothing yet, or time for a status update
		}
		if ctx.Err() != nil {
			return false, ctx.Err()
		}
		f.drop()
		return false, fmt.Errorf("postgres %s: replication receive: %w", f.s.cfg.Service, err)
	}
	switch msg := msg.(type) {
	case *pgproto3.ErrorResponse:
		f.drop()
		return false, fmt.Errorf("postgres %s: replication: %s", f.s.cfg.Service, msg.Message)
	case *pgproto3.CopyData:
		return false, f.handle(ctx, msg.Data)
	}
	return false, nil
}

func earliest(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func (f *feed) handle(ctx context.Context, data []byte) error {
	switch data[0] {
	case pglogrepl.PrimaryKeepaliveMessageByteID:
		pkm, err := pglogrepl.ParsePrimaryKeepaliveMessage(data[1:])
		if err != nil {
			return fmt.Errorf("postgres %s: keepalive: %w", f.s.cfg.Service, err)
		}
		// A keepalive's position is where the server's decoding is: every
		// transaction of ours that ended before it was sent already. When
		// all of them were confirmed and none is half received, the
		// position can be confirmed too, so that the slot does not hold
		// the WAL other databases of the server write while this service
		// is idle (Debezium's heartbeat does the same).
		idle := !f.inTx && len(f.ready) == 0 && f.received <= f.confirmed && len(f.fromTable) == 0 && !f.reading
		if idle && pkm.ServerWALEnd > f.confirmed {
			f.confirmed = pkm.ServerWALEnd
			return f.sendStandby(ctx)
		}
		if pkm.ReplyRequested {
			return f.sendStandby(ctx)
		}
	case pglogrepl.XLogDataByteID:
		xld, err := pglogrepl.ParseXLogData(data[1:])
		if err != nil {
			return fmt.Errorf("postgres %s: xlog data: %w", f.s.cfg.Service, err)
		}
		return f.decode(ctx, xld.WALData)
	}
	return nil
}

func (f *feed) decode(ctx context.Context, wal []byte) error {
	msg, err := pglogrepl.Parse(wal)
	if err != nil {
		return fmt.Errorf("postgres %s: decode pgoutput: %w", f.s.cfg.Service, err)
	}
	switch msg := msg.(type) {
	case *pglogrepl.RelationMessage:
		f.relations[msg.RelationID] = msg
	case *pglogrepl.BeginMessage:
		f.tx, f.inTx = f.tx[:0], true
	case *pglogrepl.InsertMessage:
		rel, ok := f.relations[msg.RelationID]
		if !ok {
			return fmt.Errorf("postgres %s: insert into unknown relation %d", f.s.cfg.Service, msg.RelationID)
		}
		var c change
		for i, col := range msg.Tuple.Columns {
			switch rel.Columns[i].Name {
			case "seq":
				seq, err := strconv.ParseInt(string(col.Data), 10, 64)
				if err != nil {
					return fmt.Errorf("postgres %s: outbox seq: %w", f.s.cfg.Service, err)
				}
				c.Position = seq
			case "topic":
				c.Topic = string(col.Data)
			case "key":
				c.Key = string(col.Data)
			case "value":
				v, err := decodeBytea(col.Data)
				if err != nil {
					return fmt.Errorf("postgres %s: outbox value: %w", f.s.cfg.Service, err)
				}
				c.Value = v
			}
		}
		f.tx = append(f.tx, c)
	case *pglogrepl.CommitMessage:
		txn, err := f.filtered(ctx, f.tx, msg.TransactionEndLSN)
		if err != nil {
			return err
		}
		for _, c := range txn {
			c.lsn = msg.TransactionEndLSN
			f.ready = append(f.ready, c)
		}
		// A transaction the filter dropped whole has nothing to confirm:
		// an idle keepalive may confirm past it.
		if len(txn) > 0 {
			f.received = msg.TransactionEndLSN
		}
		f.tx, f.inTx = f.tx[:0], false
	}
	return nil
}

// filtered drops, from a streamed transaction that ended at end, the rows
// the catch-up's read of the table returned, and those no longer in the
// table: Kafka acknowledged them (returned by an earlier pass), and to send
// them again after the read's newer rows would turn their key back.
func (f *feed) filtered(ctx context.Context, txn []change, end pglogrepl.LSN) ([]change, error) {
	if f.filter == nil || len(txn) == 0 {
		return txn, nil
	}
	if f.filter.until != 0 && end > f.filter.until {
		f.filter = nil // the stream is past what the read saw
		return txn, nil
	}
	seqs := make([]int64, 0, len(txn))
	for _, c := range txn {
		if _, ok := f.fromTable[c.Position]; !ok {
			seqs = append(seqs, c.Position)
		}
	}
	kept := map[int64]bool{}
	if len(seqs) > 0 {
		rows, err := f.s.pool.Query(ctx, `SELECT seq FROM outbox WHERE seq = ANY($1)`, seqs)
		if err != nil {
			return nil, fmt.Errorf("postgres %s: catch up: filter the stream: %w", f.s.cfg.Service, err)
		}
		seq, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			return nil, fmt.Errorf("postgres %s: catch up: filter the stream: %w", f.s.cfg.Service, err)
		}
		for _, s := range seq {
			kept[s] = true
		}
	}
	out := txn[:0]
	for _, c := range txn {
		if kept[c.Position] {
			out = append(out, c)
		}
	}
	return out, nil
}

// decodeBytea decodes bytea's text form, \x followed by hex digits.
func decodeBytea(text []byte) ([]byte, error) {
	if len(text) < 2 || text[0] != '\\' || text[1] != 'x' {
		return nil, errors.New("bytea not in hex format")
	}
	hexText := text[2:]
	out := make([]byte, len(hexText)/2)
	for i := range out {
		hi, ok1 := unhex(hexText[2*i])
		lo, ok2 := unhex(hexText[2*i+1])
		if !ok1 || !ok2 {
			return nil, errors.New("bytea: bad hex digit")
		}
		out[i] = hi<<4 | lo
	}
	return out, nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

func (f *feed) sendStandby(ctx context.Context) error {
	err := pglogrepl.SendStandbyStatusUpdate(ctx, f.conn, pglogrepl.StandbyStatusUpdate{
		WALWritePosition: f.confirmed, WALFlushPosition: f.confirmed, WALApplyPosition: f.confirmed,
	})
	if err != nil {
		f.drop()
		return fmt.Errorf("postgres %s: replication status: %w", f.s.cfg.Service, err)
	}
	f.standby = time.Now().Add(standbyEvery)
	return nil
}

// Confirm records that every change returned up to the one at pos reached
// Kafka: their rows leave the outbox table, then the slot may release
// their WAL, and a reconnect starts after them. In that order: a crash
// between the two makes the slot send again changes whose rows are gone
// (produced twice, in order), never leaves a row the slot will not send.
func (f *feed) Confirm(ctx context.Context, pos int64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for i, c := range f.pending {
		if c.Position == pos {
			n = i + 1
		}
	}
	if n == 0 {
		return nil // not returned since the last rewind
	}
	seqs := make([]int64, n)
	lsn, fromTable := f.confirmed, 0
	for i, c := range f.pending[:n] {
		seqs[i] = c.Position
		lsn = max(lsn, c.lsn)
	}
	if _, err := f.s.pool.Exec(ctx, `DELETE FROM outbox WHERE seq = ANY($1)`, seqs); err != nil {
		return fmt.Errorf("postgres %s: confirm: delete %d relayed outbox rows: %w", f.s.cfg.Service, n, err)
	}
	for _, c := range f.pending[:n] {
		if c.lsn == 0 {
			fromTable++
			delete(f.fromTable, c.Position)
		}
	}
	f.pending = f.pending[n:]
	f.confirmed = lsn
	if fromTable > 0 {
		f.caughtUp += fromTable
		if err := f.maybeCaughtUp(ctx); err != nil {
			return err
		}
	}
	if f.conn == nil {
		return nil // sent on the next connection's first status update
	}
	return f.sendStandby(ctx)
}

// Rewind drops the connection: the next Next reconnects and the server
// streams again from the slot's confirmed position. A catch-up not done
// yet reads the table again from its first row still there.
func (f *feed) Rewind(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.drop()
	f.pending, f.filter, f.fromTable = nil, nil, nil
	if f.catchingUp {
		f.startCatchUp()
	}
	return nil
}

func (f *feed) drop() {
	if f.conn != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		f.conn.Close(ctx)
		cancel()
		f.conn = nil
	}
	f.tx, f.ready, f.inTx = nil, nil, false
}

func (f *feed) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.drop()
}

// Backlog implements store.BacklogFeed.
func (f *feed) Backlog(ctx context.Context) (int64, error) {
	var n int64
	if err := f.s.pool.QueryRow(ctx, `SELECT count(*) FROM outbox`).Scan(&n); err != nil {
		return 0, fmt.Errorf("postgres %s: count outbox: %w", f.s.cfg.Service, err)
	}
	return n, nil
}
