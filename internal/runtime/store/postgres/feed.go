package postgres

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pglogrepl"
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
// A change's position is the end LSN of the transaction that committed it,
// so every change of a transaction shares one position and Next returns
// whole transactions only: confirming a position then never confirms half
// a transaction. The server resends, after a reconnect, every transaction
// that ended after the confirmed position.
type feed struct {
	s *Store

	mu        sync.Mutex
	conn      *pgconn.PgConn
	relations map[uint32]*pglogrepl.RelationMessage
	inTx      bool           // between a Begin and its Commit
	tx        []store.Change // inserts of the transaction being received
	ready     []store.Change // committed changes not yet returned
	confirmed pglogrepl.LSN
	received  pglogrepl.LSN
	standby   time.Time // when the next status update is due
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
// after its creation.
func (f *feed) ensureSlot(ctx context.Context) error {
	conn, err := f.dial(ctx)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = pglogrepl.CreateReplicationSlot(ctx, conn, f.s.cfg.Slot, "pgoutput", pglogrepl.CreateReplicationSlotOptions{})
	var pe *pgconn.PgError
	if err != nil && !(errors.As(err, &pe) && pe.Code == "42710") { // duplicate_object: the slot exists
		return fmt.Errorf("postgres %s: create replication slot %s: %w", f.s.cfg.Service, f.s.cfg.Slot, err)
	}
	return nil
}

// connect opens the replication connection and starts streaming after the
// slot's confirmed position.
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
		case pe.Code == "55000" && strings.Contains(pe.Message+pe.Detail, "no longer get changes"): // the slot was invalidated
			return f.s.watch.markLost(ctx, "lost")
		case pe.Code == "42704": // undefined_object: the slot was dropped
			return f.s.watch.markLost(ctx, "dropped")
		}
		return fmt.Errorf("postgres %s: start replication: %w", f.s.cfg.Service, err)
	}
	f.conn, f.relations, f.tx, f.ready = conn, map[uint32]*pglogrepl.RelationMessage{}, nil, nil
	f.standby = time.Now().Add(standbyEvery)
	return nil
}

// Next returns the next whole committed transaction(s), at least one
// change, and up to about max: whole transactions only. It does not wait
// for more to reach max: a short wait for a fuller batch (1 ms per
// receive) tripled the hop's latency at 1,000/s; it takes only what has
// arrived (bufferedWait).
func (f *feed) Next(ctx context.Context, max int) ([]store.Change, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.s.watch.err(); err != nil {
		return nil, err
	}
	if f.conn == nil {
		if err := f.connect(ctx); err != nil {
			return nil, err
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
	out := f.ready
	f.ready = nil
	return out, nil
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
		idle := !f.inTx && len(f.ready) == 0 && f.received <= f.confirmed
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
		return f.decode(xld.WALData)
	}
	return nil
}

func (f *feed) decode(wal []byte) error {
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
		var c store.Change
		for i, col := range msg.Tuple.Columns {
			switch rel.Columns[i].Name {
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
		for _, c := range f.tx {
			c.Position = int64(msg.TransactionEndLSN)
			f.ready = append(f.ready, c)
		}
		f.tx, f.inTx = f.tx[:0], false
		f.received = msg.TransactionEndLSN
	}
	return nil
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

// Confirm tells the server that every transaction ending at or before pos
// reached Kafka: the slot may release their WAL, and a reconnect starts
// after them.
func (f *feed) Confirm(ctx context.Context, pos int64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if lsn := pglogrepl.LSN(pos); lsn > f.confirmed {
		f.confirmed = lsn
	}
	if f.conn == nil {
		return nil // sent on the next connection's first status update
	}
	return f.sendStandby(ctx)
}

// Rewind drops the connection: the next Next reconnects and the server
// streams again from the slot's confirmed position.
func (f *feed) Rewind(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.drop()
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
