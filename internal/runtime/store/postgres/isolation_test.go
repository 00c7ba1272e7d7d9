package postgres_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/mothership-dev/mothership/internal/runtime/store"
	"github.com/mothership-dev/mothership/internal/runtime/store/postgres"
	"github.com/mothership-dev/mothership/internal/runtime/store/postgres/pgtest"
)

// TestServiceRolesCannotReplicatePhysically: with the usual `host
// replication all` line of pg_hba.conf, a service role's REPLICATION would
// let it copy the whole server with pg_basebackup. CheckServer finds that
// and says which lines to add where; once they are in, the real
// pg_basebackup is refused to the role, while its logical replication of
// its own database goes on.
func TestServiceRolesCannotReplicatePhysically(t *testing.T) {
	ctx := t.Context()
	srv, err := pgtest.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	admin := srv.URL("postgres")
	roles := map[string]string{}
	for _, s := range []string{"kafka", "pkc"} {
		if roles[s], err = postgres.Provision(ctx, admin, s, s+"-secret"); err != nil {
			t.Fatal(err)
		}
	}

	err = postgres.CheckServer(ctx, admin, roles)
	if err == nil || !strings.Contains(err.Error(), "mothership_kafka, mothership_pkc open a physical replication connection") ||
		!strings.Contains(err.Error(), postgres.HBARules[0]) || !strings.Contains(err.Error(), "pg_hba.conf") {
		t.Fatalf("CheckServer on a server that lets service roles replicate physically: %v; want the roles named and the lines to add", err)
	}
	t.Logf("what the operator is told:\n%v", err)

	if err := srv.PrependHBA(postgres.HBARules...); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "CheckServer passes once the lines are in", func() (bool, string) {
		err := postgres.CheckServer(ctx, admin, roles)
		return err == nil, fmt.Sprint(err)
	})

	// The real pg_basebackup, as kafka's role.
	cmd := exec.CommandContext(ctx, srv.Bin("pg_basebackup"), "-D", filepath.Join(t.TempDir(), "copy"), "-h", "127.0.0.1",
		"-p", strconv.Itoa(srv.Port), "-U", "mothership_kafka", "-w", "-X", "none")
	cmd.Env = append(os.Environ(), "PGPASSWORD=kafka-secret")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "rejects replication connection") {
		t.Fatalf("pg_basebackup as a service role: %v\n%s\nwant it refused by pg_hba.conf", err, out)
	}
	t.Logf("pg_basebackup as mothership_kafka: %s", strings.TrimSpace(string(out)))

	// Its own database's logical replication still works.
	pkc, err := postgres.Open(ctx, postgres.Config{URL: roles["pkc"], Service: "pkc"})
	if err != nil {
		t.Fatalf("open pkc's store as its role after the lines are in: %v", err)
	}
	defer pkc.Close()
	if err := createItem(ctx, pkc, "org-1"); err != nil {
		t.Fatal(err)
	}
	next, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if cs, err := pkc.Feed().Next(next, 10); err != nil || len(cs) != 1 {
		t.Fatalf("pkc's feed: %d changes, %v; want its one change", len(cs), err)
	}
}

// TestOneRoleCannotStarveAnother: one service role holds every connection
// it may (its CONNECTION LIMIT of normal ones, and every WAL sender of the
// server, which PostgreSQL bounds per server only). Another service still
// starts, accepts writes and relays them, from its outbox table, saying so
// in its readiness; once a WAL sender is free it streams again. On a
// server with too few WAL senders, CheckServer says what to set.
func TestOneRoleCannotStarveAnother(t *testing.T) {
	ctx := t.Context()
	small, err := pgtest.Start("max_wal_senders=5", "max_replication_slots=10")
	if err != nil {
		t.Fatal(err)
	}
	defer small.Stop()
	roles := map[string]string{}
	for _, s := range []string{"a", "b", "c", "d", "e"} {
		if roles[s], err = postgres.Provision(ctx, small.URL("postgres"), s, s+"-secret"); err != nil {
			t.Fatal(err)
		}
	}
	if err := small.PrependHBA(postgres.HBARules...); err != nil {
		t.Fatal(err)
	}
	need := postgres.RequirementsFor(5, 3)
	waitUntil(t, "CheckServer asks for more WAL senders", func() (bool, string) {
		err := postgres.CheckServer(ctx, small.URL("postgres"), roles)
		want := fmt.Sprintf("ALTER SYSTEM SET max_wal_senders = %d", need.MaxWALSenders)
		return err != nil && strings.Contains(err.Error(), want) && !strings.Contains(err.Error(), "physical"), fmt.Sprintf("%v; want %q", err, want)
	})
	small.Stop()

	need = postgres.RequirementsFor(2, 3)
	srv, err := pgtest.Start("max_wal_senders="+strconv.Itoa(need.MaxWALSenders), "max_replication_slots="+strconv.Itoa(need.MaxReplicationSlots),
		"max_connections="+strconv.Itoa(need.MaxConnections))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	admin := srv.URL("postgres")
	roles = map[string]string{}
	for _, s := range []string{"hog", "victim"} {
		if roles[s], err = postgres.Provision(ctx, admin, s, s+"-secret"); err != nil {
			t.Fatal(err)
		}
	}
	if err := srv.PrependHBA(postgres.HBARules...); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "CheckServer passes", func() (bool, string) {
		err := postgres.CheckServer(ctx, admin, roles)
		return err == nil, fmt.Sprint(err)
	})

	// hog takes every connection it can: normal ones up to its limit,
	// then WAL senders until the server has none left.
	var held, senders []*pgconn.PgConn
	defer func() {
		for _, c := range append(held, senders...) {
			c.Close(context.WithoutCancel(ctx))
		}
	}()
	grab := func(dsn string, into *[]*pgconn.PgConn, refusal string) {
		for {
			c, err := pgconn.Connect(ctx, dsn)
			if err != nil {
				if sqlState(err) != "53300" || !strings.Contains(err.Error(), refusal) {
					t.Fatalf("hog's connection %d: %v, want %q", len(*into)+1, err, refusal)
				}
				t.Logf("hog refused after %d: %v", len(*into), err)
				return
			}
			*into = append(*into, c)
			if len(*into) > 100 {
				t.Fatal("hog holds 100 connections: no limit")
			}
		}
	}
	grab(roles["hog"], &held, "too many connections for role")
	if len(held) != postgres.RoleConnLimit {
		t.Fatalf("hog held %d connections, want its limit %d", len(held), postgres.RoleConnLimit)
	}
	grab(roles["hog"]+"&replication=database", &senders, "max_wal_senders")

	// victim starts, writes and relays all the same.
	victim, err := postgres.Open(ctx, postgres.Config{URL: roles["victim"], Service: "victim"})
	if err != nil {
		t.Fatalf("victim cannot start while hog holds all it may: %v", err)
	}
	defer victim.Close()
	want := versions{}
	want.write(t, victim, "org", 3, 2)
	var got []store.Change
	waitUntil(t, "victim relays from its table", func() (bool, string) {
		got = append(got, drain(t, victim)...)
		return len(got) >= 6, fmt.Sprintf("%d changes", len(got))
	})
	if err := victim.Ready(); err == nil || !strings.Contains(err.Error(), "WAL sender") {
		t.Fatalf("victim's readiness while it has no WAL sender: %v, want it said", err)
	}

	// hog lets go: victim streams from its slot again.
	for _, c := range senders {
		c.Close(ctx)
	}
	senders = nil
	want.write(t, victim, "org", 3, 1)
	waitUntil(t, "victim streams again and is ready", func() (bool, string) {
		got = append(got, drain(t, victim)...)
		err := victim.Ready()
		return err == nil && len(got) >= 9, fmt.Sprintf("%d changes; %v", len(got), err)
	})
	want.check(t, got)
}
