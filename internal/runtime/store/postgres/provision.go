package postgres

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// serviceName is what a service's name may be to name a role and a
// database without quoting.
var serviceName = regexp.MustCompile(`^[a-z][a-z0-9_]{0,39}$`)

// Name returns the role and the database of service: mothership_<service>.
func Name(service string) string {
	return "mothership_" + strings.ReplaceAll(service, "-", "_")
}

// Connection bounds of a service role, so that no role can take the
// connections another service needs (see CheckServer).
const (
	// PoolConns is the most connections a store's pool opens.
	PoolConns = 8
	// RoleConnLimit is each service role's CONNECTION LIMIT: the pool and
	// some to spare. (PostgreSQL does not count a role's replication
	// connections against it: those are bounded by max_wal_senders, for
	// the whole server.)
	RoleConnLimit = PoolConns + 2
	// ServicesGroup is the role (NOLOGIN) every service role is a member
	// of, for pg_hba.conf to name them all (HBARules).
	ServicesGroup = "mothership_services"
)

// HBARules are the lines pg_hba.conf must hold before any other
// replication line: they refuse a physical replication connection
// (pg_basebackup, a standby) to every service role. A service's logical
// replication connection is matched by its database's name instead, and
// the database's CONNECT right admits its own role only.
var HBARules = []string{
	"host    replication  +" + ServicesGroup + "  all  reject",
	"local   replication  +" + ServicesGroup + "       reject",
}

// Provision makes service's own role and database on the server of
// adminURL, a superuser's connection (PostgreSQL 15 lets only a superuser
// create a role with REPLICATION), and returns the service's connection URL: the same server,
// the role's name and password, its database.
//
// The role mothership_<service> may log in and replicate (it creates and
// reads the logical replication slot of its outbox); it owns the database
// mothership_<service>, on which PUBLIC has no right, so no other
// service's role can connect to it, let alone write it. Tables the store
// creates belong to the role, so even a role that was granted CONNECT
// cannot read or write them: the single-writer rule, enforced by the
// server. The role holds at most RoleConnLimit connections and is a
// member of ServicesGroup, which HBARules refuse physical replication;
// CheckServer tells whether the server applies them.
//
// Provision is idempotent: run again, it sets the password and ownership
// and revokes PUBLIC's rights again.
func Provision(ctx context.Context, adminURL, service, password string) (string, error) {
	name := Name(service)
	if !serviceName.MatchString(strings.ReplaceAll(service, "-", "_")) {
		return "", fmt.Errorf("postgres: provision %q: a service name is lower-case letters, digits, - and _, starting with a letter, at most 40 characters", service)
	}
	if password == "" {
		return "", fmt.Errorf("postgres: provision %s: a password is required", service)
	}
	u, err := url.Parse(adminURL)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", fmt.Errorf("postgres: provision %s: the admin URL must be a postgres:// URL", service)
	}
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return "", fmt.Errorf("postgres: provision %s: connect as admin: %w", service, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))

	// Two provisions at once would race between the existence checks and
	// the creations; the lock is the server's, so it holds across processes.
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock(7270618)`); err != nil {
		return "", fmt.Errorf("postgres: provision %s: lock: %w", service, err)
	}
	defer conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock(7270618)`)

	pw, err := conn.PgConn().EscapeString(password)
	if err != nil {
		return "", fmt.Errorf("postgres: provision %s: password: %w", service, err)
	}
	var roleExists, dbExists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1), EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).
		Scan(&roleExists, &dbExists); err != nil {
		return "", fmt.Errorf("postgres: provision %s: %w", service, err)
	}
	if _, err := conn.Exec(ctx, `DO $$ BEGIN
		IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '`+ServicesGroup+`') THEN CREATE ROLE `+ServicesGroup+` NOLOGIN; END IF;
		END $$`); err != nil {
		return "", fmt.Errorf("postgres: provision %s: role %s: %w", service, ServicesGroup, provisionErr(err))
	}
	role := `CREATE ROLE ` + name
	if roleExists {
		role = `ALTER ROLE ` + name
	}
	db := `CREATE DATABASE ` + name + ` OWNER ` + name
	if dbExists {
		db = `ALTER DATABASE ` + name + ` OWNER TO ` + name
	}
	for _, stmt := range []string{
		role + ` WITH LOGIN REPLICATION NOSUPERUSER NOCREATEDB NOCREATEROLE CONNECTION LIMIT ` + strconv.Itoa(RoleConnLimit) + ` PASSWORD '` + pw + `'`,
		`GRANT ` + ServicesGroup + ` TO ` + name,
		db,
		`REVOKE ALL ON DATABASE ` + name + ` FROM PUBLIC`,
	} {
		if _, err := conn.Exec(ctx, stmt); err != nil {
			return "", fmt.Errorf("postgres: provision %s: %s: %w", service, strings.SplitN(stmt, " WITH", 2)[0], provisionErr(err))
		}
	}

	// Before PostgreSQL 15 every role may create in schema public of every
	// database; the database's owner alone should.
	u.Path = "/" + name
	own, err := pgx.Connect(ctx, u.String())
	if err != nil {
		return "", fmt.Errorf("postgres: provision %s: connect to %s: %w", service, name, err)
	}
	defer own.Close(context.WithoutCancel(ctx))
	if _, err := own.Exec(ctx, `REVOKE CREATE ON SCHEMA public FROM PUBLIC`); err != nil {
		return "", fmt.Errorf("postgres: provision %s: schema public: %w", service, provisionErr(err))
	}

	u.User = url.UserPassword(name, password)
	return u.String(), nil
}

func provisionErr(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "42501" {
		return fmt.Errorf("%w (provisioning needs a superuser in the admin URL: only a superuser may create a role with REPLICATION)", err)
	}
	return err
}
