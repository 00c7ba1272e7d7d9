// Package pgtest starts a private PostgreSQL server for tests: initdb and
// pg_ctl on a free port in a temporary directory, with logical replication
// enabled. As root, the server runs as the postgres user, which PostgreSQL
// requires.
//
// Connections over TCP authenticate with a password (scram-sha-256), as in
// production: the superuser's is random and part of URL, and a role made by
// postgres.Provision logs in with its own, for normal and replication
// connections alike (pg_hba: host all/replication all 127.0.0.1/32).
//
// A missing PostgreSQL installation fails the test rather than skipping it:
// CI installs it (see .ci/run), and a silent skip would hide the gap.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Server is a running private PostgreSQL server.
type Server struct {
	Port     int
	password string // the superuser's
	dataDir  string
	opts     string // the server's options, for a restart
	bin      string
	asUser   string
	dbs      atomic.Int64
}

var (
	shared     *Server
	sharedErr  error
	sharedOnce sync.Once
)

// Shared returns the server shared by the tests of this test binary,
// starting it on first use. Call Stop from TestMain after m.Run.
func Shared(t testing.TB) *Server {
	t.Helper()
	sharedOnce.Do(func() { shared, sharedErr = Start() })
	if sharedErr != nil {
		t.Fatalf("pgtest: %v (run the tests with ./test.sh, which installs PostgreSQL)", sharedErr)
	}
	return shared
}

// StopShared stops the shared server, if one was started.
func StopShared() {
	if shared != nil {
		shared.Stop()
	}
}

// binDir finds PostgreSQL's server binaries.
func binDir() (string, error) {
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		if _, err := exec.LookPath("initdb"); err == nil {
			return filepath.Dir(p), nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Strings(dirs)
	for i := len(dirs) - 1; i >= 0; i-- {
		if _, err := os.Stat(filepath.Join(dirs[i], "initdb")); err == nil {
			return dirs[i], nil
		}
	}
	return "", fmt.Errorf("initdb and pg_ctl not found on PATH nor under /usr/lib/postgresql/*/bin")
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// Start initializes and starts a new server. Settings ("name=value") are
// given to the server after the package's own, so they take precedence.
func Start(settings ...string) (*Server, error) {
	bin, err := binDir()
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "mothership-pg-")
	if err != nil {
		return nil, err
	}
	pw := make([]byte, 16)
	rand.Read(pw)
	s := &Server{Port: port, password: hex.EncodeToString(pw), dataDir: filepath.Join(dir, "data"), bin: bin}
	pwFile := filepath.Join(dir, "pwfile")
	if err := os.WriteFile(pwFile, []byte(s.password+"\n"), 0o644); err != nil {
		return nil, err
	}
	if os.Geteuid() == 0 {
		s.asUser = "postgres"
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("running as root needs a postgres user: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			return nil, err
		}
	}
	if out, err := s.run("initdb", "-D", s.dataDir, "-U", "postgres", "--auth-local=trust", "--auth-host=scram-sha-256",
		"--pwfile="+pwFile, "--no-sync", "-E", "UTF8"); err != nil {
		return nil, fmt.Errorf("initdb: %v: %s", err, out)
	}
	os.Remove(pwFile)
	s.opts = strings.Join([]string{
		"-p " + strconv.Itoa(port), "-k " + dir, "-c listen_addresses=127.0.0.1",
		"-c wal_level=logical", "-c max_replication_slots=64", "-c max_wal_senders=64",
		"-c fsync=off", "-c synchronous_commit=on", "-c max_connections=200",
	}, " ")
	for _, kv := range settings {
		s.opts += " -c " + kv
	}
	if err := s.start(); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Server) start() error {
	logFile := filepath.Join(filepath.Dir(s.dataDir), "log")
	if out, err := s.run("pg_ctl", "-D", s.dataDir, "-o", s.opts, "-l", logFile, "-w", "-t", "60", "start"); err != nil {
		return fmt.Errorf("pg_ctl start: %v: %s", err, out)
	}
	return nil
}

func (s *Server) run(name string, args ...string) ([]byte, error) {
	cmd := exec.Command(filepath.Join(s.bin, name), args...)
	if s.asUser != "" {
		cmd = exec.Command("su", s.asUser, "-s", "/bin/sh", "-c", shellQuote(append([]string{filepath.Join(s.bin, name)}, args...)))
	}
	return cmd.CombinedOutput()
}

func shellQuote(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(q, " ")
}

// Restart stops the server immediately (as a crash would) and starts it again.
func (s *Server) Restart() error {
	if out, err := s.run("pg_ctl", "-D", s.dataDir, "-m", "immediate", "-w", "stop"); err != nil {
		return fmt.Errorf("pg_ctl stop: %v: %s", err, out)
	}
	return s.start()
}

// PrependHBA puts lines first in the server's pg_hba.conf and reloads it.
func (s *Server) PrependHBA(lines ...string) error {
	file := filepath.Join(s.dataDir, "pg_hba.conf")
	old, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	// Writing the existing file keeps its owner (the postgres user).
	if err := os.WriteFile(file, append([]byte(strings.Join(lines, "\n")+"\n"), old...), 0o600); err != nil {
		return err
	}
	if out, err := s.run("pg_ctl", "-D", s.dataDir, "reload"); err != nil {
		return fmt.Errorf("pg_ctl reload: %v: %s", err, out)
	}
	return nil
}

// Stop stops the server and removes its files.
func (s *Server) Stop() {
	s.run("pg_ctl", "-D", s.dataDir, "-m", "fast", "-w", "stop")
	os.RemoveAll(filepath.Dir(s.dataDir))
}

// URL is the connection string of database db as the superuser.
func (s *Server) URL(db string) string {
	return fmt.Sprintf("postgres://postgres:%s@127.0.0.1:%d/%s?sslmode=disable", s.password, s.Port, db)
}

// Bin returns the path of one of PostgreSQL's programs (pgbench, psql):
// beside the server's, else in the newest /usr/lib/postgresql/*/bin, else
// on PATH.
func (s *Server) Bin(name string) string {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Sort(sort.Reverse(sort.StringSlice(dirs)))
	for _, dir := range append([]string{s.bin}, dirs...) {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			return filepath.Join(dir, name)
		}
	}
	return name
}

// NewDatabase creates a fresh database and returns its URL.
func (s *Server) NewDatabase(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("t%d_%d", os.Getpid(), s.dbs.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.URL("postgres"))
	if err != nil {
		t.Fatalf("pgtest: connect: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	return s.URL(name)
}
