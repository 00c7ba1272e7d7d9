package postgres

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Requirements are the server settings that services need on one
// PostgreSQL server: their slots, their WAL senders and their connections.
type Requirements struct {
	MaxWALSenders, MaxReplicationSlots, MaxConnections int
}

// RequirementsFor sizes a server for n services: a WAL sender and a slot
// for each, and two more of each for an operator's tools; every role's
// CONNECTION LIMIT, plus the superuser's reserve. PostgreSQL bounds WAL
// senders per server only, not per role: a role that takes them all slows
// the others down (their relays read their outbox tables instead of their
// slots, and their readiness says so) but stops none.
func RequirementsFor(n, superuserReserved int) Requirements {
	return Requirements{
		MaxWALSenders:       n + 2,
		MaxReplicationSlots: n + 2,
		MaxConnections:      n*RoleConnLimit + superuserReserved,
	}
}

// CheckServer checks what Provision cannot make: that the server of
// adminURL refuses every service role (roles: service → its URL, as
// Provision returned it) a physical replication connection, and that its
// settings are sized for the services (RequirementsFor), counting the
// slots others hold on it. The error lists every problem with exactly what
// to change; nil means the server is fit.
func CheckServer(ctx context.Context, adminURL string, roles map[string]string) error {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return fmt.Errorf("postgres: check server: connect as admin: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var problems []string

	services := make([]string, 0, len(roles))
	for s := range roles {
		services = append(services, s)
	}
	sort.Strings(services)
	var open []string
	for _, s := range services {
		refused, err := physicalRefused(ctx, roles[s])
		if err != nil {
			return fmt.Errorf("postgres: check server: %s: %w", s, err)
		}
		if !refused {
			open = append(open, Name(s))
		}
	}
	if len(open) > 0 {
		var hbaFile string
		if err := conn.QueryRow(ctx, `SHOW hba_file`).Scan(&hbaFile); err != nil {
			return fmt.Errorf("postgres: check server: hba_file: %w", err)
		}
		problems = append(problems, fmt.Sprintf("the server lets %s open a physical replication connection (pg_basebackup could copy every database of the server with it). "+
			"Put these lines first in %s, before any other line that names replication, then reload (SELECT pg_reload_conf()):\n    %s",
			strings.Join(open, ", "), hbaFile, strings.Join(HBARules, "\n    ")))
	}

	settings := map[string]int{}
	for _, name := range []string{"max_wal_senders", "max_replication_slots", "max_connections", "superuser_reserved_connections"} {
		var v string
		if err := conn.QueryRow(ctx, `SELECT current_setting($1)`, name).Scan(&v); err != nil {
			return fmt.Errorf("postgres: check server: %s: %w", name, err)
		}
		if settings[name], err = strconv.Atoi(v); err != nil {
			return fmt.Errorf("postgres: check server: %s = %q: %w", name, v, err)
		}
	}
	var others int
	slots := make([]string, 0, len(services))
	for _, s := range services {
		slots = append(slots, Name(s))
	}
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_replication_slots WHERE NOT slot_name = ANY($1)`, slots).Scan(&others); err != nil {
		return fmt.Errorf("postgres: check server: slots: %w", err)
	}
	need := RequirementsFor(len(roles), settings["superuser_reserved_connections"])
	need.MaxReplicationSlots += others
	for _, c := range []struct {
		name string
		need int
		why  string
	}{
		{"max_wal_senders", need.MaxWALSenders, "one per service, 2 to spare"},
		{"max_replication_slots", need.MaxReplicationSlots, fmt.Sprintf("one per service, %d held by others, 2 to spare", others)},
		{"max_connections", need.MaxConnections, fmt.Sprintf("%d services × CONNECTION LIMIT %d, and the superuser's reserve", len(roles), RoleConnLimit)},
	} {
		if settings[c.name] < c.need {
			problems = append(problems, fmt.Sprintf("%s is %d, and must be at least %d (%s): ALTER SYSTEM SET %s = %d, then restart the server",
				c.name, settings[c.name], c.need, c.why, c.name, c.need))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("postgres: the server is not ready for the services:\n  - %s", strings.Join(problems, "\n  - "))
	}
	return nil
}

// physicalRefused tries a physical replication connection as the role of
// roleURL and reports whether the server refused it.
func physicalRefused(ctx context.Context, roleURL string) (bool, error) {
	u, err := url.Parse(roleURL)
	if err != nil {
		return false, err
	}
	q := u.Query()
	q.Set("replication", "true")
	u.RawQuery = q.Encode()
	conn, err := pgconn.Connect(ctx, u.String())
	if err == nil {
		conn.Close(ctx)
		return false, nil
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "28000" { // invalid_authorization_specification: pg_hba.conf rejects it
		return true, nil
	}
	return false, fmt.Errorf("physical replication connection: %w", err)
}
