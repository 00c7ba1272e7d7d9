package postgres_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/mothership-dev/mothership/internal/runtime/store"
	"github.com/mothership-dev/mothership/internal/runtime/store/postgres"
	"github.com/mothership-dev/mothership/internal/runtime/store/postgres/pgtest"
)

// withDatabase returns serviceURL pointing at another database.
func withDatabase(t *testing.T, serviceURL, db string) string {
	t.Helper()
	u, err := url.Parse(serviceURL)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + db
	return u.String()
}

func sqlState(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

func createItem(ctx context.Context, s store.Store, id string) error {
	return s.Update(ctx, func(ctx context.Context, tx store.Tx) error {
		_, err := tx.ResourceCreate(ctx, store.CreateParams{Kind: "organization", ID: id, Spec: json.RawMessage(`{"n":1}`)})
		return err
	})
}

// TestProvisionedRoleWritesOnlyItsOwnDatabase provisions two services the
// way a distributed deployment does, runs iam's store as iam's role, and
// shows that kafka's role cannot write iam's database: not by connecting,
// and not even once a superuser let it connect.
func TestProvisionedRoleWritesOnlyItsOwnDatabase(t *testing.T) {
	ctx := t.Context()
	srv := pgtest.Shared(t)
	admin := srv.URL("postgres")
	iamURL, err := postgres.Provision(ctx, admin, "iam", "iam-secret")
	if err != nil {
		t.Fatalf("provision iam: %v", err)
	}
	kafkaURL, err := postgres.Provision(ctx, admin, "kafka", "kafka-secret")
	if err != nil {
		t.Fatalf("provision kafka: %v", err)
	}
	if again, err := postgres.Provision(ctx, admin, "iam", "iam-secret"); err != nil || again != iamURL {
		t.Fatalf("provision iam again: %q, %v; want %q, nil", again, err, iamURL)
	}
	if u, _ := url.Parse(iamURL); u.User.Username() != "mothership_iam" || u.Path != "/mothership_iam" || u.Port() != strconv.Itoa(srv.Port) {
		t.Fatalf("iam URL %s: want role and database mothership_iam on the admin's server", iamURL)
	}

	// iam's store runs as iam's role: migrations, publication, slot, feed.
	iam, err := postgres.Open(ctx, postgres.Config{URL: iamURL, Service: "iam"})
	if err != nil {
		t.Fatalf("open iam's store as its role: %v", err)
	}
	defer iam.Close()
	if err := createItem(ctx, iam, "org-1"); err != nil {
		t.Fatalf("iam writes its own database: %v", err)
	}
	next, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	changes, err := iam.Feed().Next(next, 10)
	if err != nil || len(changes) != 1 || changes[0].Key != "org-1" {
		t.Fatalf("iam's feed, read as its role: %v, %v; want the change of org-1", changes, err)
	}
	if err := iam.Feed().Confirm(ctx, changes[0].Position); err != nil {
		t.Fatalf("confirm as iam's role: %v", err)
	}

	// kafka's store on kafka's database works; on iam's it is refused.
	kafka, err := postgres.Open(ctx, postgres.Config{URL: kafkaURL, Service: "kafka"})
	if err != nil {
		t.Fatalf("open kafka's store as its role: %v", err)
	}
	kafka.Close()

	kafkaOnIAM := withDatabase(t, kafkaURL, "mothership_iam")
	insert := `INSERT INTO resources (kind, id, generation, version, spec, status, created_at, updated_at) VALUES ('organization', 'org-evil', 1, 1, '{}', '{}', now(), now())`
	refused := func(t *testing.T, what string, err error, code string) {
		t.Helper()
		if sqlState(err) != code {
			t.Fatalf("%s: got %v (SQLSTATE %q), want SQLSTATE %s", what, err, sqlState(err), code)
		}
	}

	_, err = pgx.Connect(ctx, kafkaOnIAM)
	refused(t, "kafka's role connects to iam's database", err, "42501") // permission denied for database
	_, err = pgx.Connect(ctx, withDatabase(t, strings.Replace(iamURL, "iam-secret", "wrong", 1), "mothership_iam"))
	refused(t, "iam's role with a wrong password", err, "28P01")
	_, err = postgres.Open(ctx, postgres.Config{URL: kafkaOnIAM, Service: "kafka"})
	if sqlState(err) != "42501" || !strings.Contains(err.Error(), "Provision") {
		t.Fatalf("kafka's store on iam's database: %v; want 42501 and what to do", err)
	}

	// Even with CONNECT granted by a superuser, kafka's role owns nothing
	// in iam's database.
	su, err := pgx.Connect(ctx, srv.URL("mothership_iam"))
	if err != nil {
		t.Fatal(err)
	}
	defer su.Close(ctx)
	if _, err := su.Exec(ctx, `GRANT CONNECT ON DATABASE mothership_iam TO mothership_kafka`); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, kafkaOnIAM)
	if err != nil {
		t.Fatalf("kafka's role connects once granted CONNECT: %v", err)
	}
	defer conn.Close(ctx)
	for _, c := range []struct{ reason, sql string }{
		{"a resource of iam's", insert},
		{"an event in iam's outbox", `INSERT INTO outbox (topic, key, value) VALUES ('mothership.organization.desired', 'org-1', '\x00')`},
		{"iam's observed events", `DELETE FROM observed`},
		{"a table of its own in iam's database", `CREATE TABLE kafka_was_here (x int)`},
	} {
		_, err := conn.Exec(ctx, c.sql)
		refused(t, "kafka's role writes "+c.reason, err, "42501")
	}
	_, err = postgres.Open(ctx, postgres.Config{URL: kafkaOnIAM, Service: "kafka"})
	if sqlState(err) != "42501" || !strings.Contains(err.Error(), "CREATE DATABASE mothership_kafka OWNER mothership_kafka") {
		t.Fatalf("kafka's store on iam's database with CONNECT: %v; want 42501 and what to do", err)
	}
	t.Logf("what the operator is told: %v", err)
	var n int
	if err := su.QueryRow(ctx, `SELECT count(*) FROM resources WHERE id = 'org-evil'`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("iam's database holds %d rows written by kafka (%v)", n, err)
	}
}
