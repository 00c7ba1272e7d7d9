package controlplane

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/mothership-dev/mothership/internal/runtime/atomicfile"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mothership-dev/mothership/internal/pki"
	"github.com/mothership-dev/mothership/internal/resource"
	"github.com/mothership-dev/mothership/internal/runtime/broker"
	"github.com/mothership-dev/mothership/internal/runtime/store/postgres"
	"github.com/mothership-dev/mothership/internal/service/gateway"
	syncsvc "github.com/mothership-dev/mothership/internal/service/sync"
)

// SetupConfig describes a distributed deployment on one or more machines.
type SetupConfig struct {
	// Dir receives everything the processes need: the satellites'
	// directories, the enrollment, the internal token, the TLS files, the
	// passwords, and one environment file per process (env/NAME.env).
	Dir string
	// Sites get one satellite each.
	Sites []resource.Site
	// Host is the address the processes listen on and reach each other at;
	// BasePort the first of their ports (the gateway serves the public API
	// on APIPort, sync the satellite link on LinkPort).
	Host                        string
	BasePort, APIPort, LinkPort int
	// ClusterDomains are the DNS domains of the clusters' endpoints on
	// Kubernetes sites: the satellites' certificate covers *.DOMAIN.
	ClusterDomains []string
	// DBAdmin is a PostgreSQL superuser's URL: each service gets its own
	// role and database there. Empty gives each service a SQLite file.
	DBAdmin string
	// Kafka is the event cluster's bootstrap; with KafkaAdminUser (a
	// superuser), each service gets its own SCRAM principal and ACLs.
	Kafka                              string
	KafkaAdminUser, KafkaAdminPassword string
	// Out receives a summary of what was written.
	Out io.Writer
}

// Setup prepares a distributed deployment: it enrolls the satellites,
// makes the internal token and the satellite link's certificates, gives
// each service its own database role and event-cluster principal, and
// writes the settings of every process as an environment file
// (MOTHERSHIP_<FLAG>=value lines, which `serve` and `satellite` read).
// Run again, it keeps the secrets it made and sets them again.
func Setup(ctx context.Context, cfg SetupConfig) error {
	if cfg.Dir == "" || len(cfg.Sites) == 0 || cfg.Kafka == "" {
		return fmt.Errorf("controlplane: setup needs a directory, sites and the event cluster's bootstrap")
	}
	if cfg.Host == "" {
		cfg.Host = "127.0.0.1"
	}
	if cfg.Out == nil {
		cfg.Out = io.Discard
	}
	subs := []string{"env", "secrets", "tls"}
	if cfg.DBAdmin == "" {
		subs = append(subs, "db")
	}
	for _, sub := range subs {
		if err := os.MkdirAll(filepath.Join(cfg.Dir, sub), 0o700); err != nil {
			return fmt.Errorf("controlplane: setup: %w", err)
		}
	}
	abs, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return err
	}
	path := func(parts ...string) string { return filepath.Join(append([]string{abs}, parts...)...) }

	es, err := Enroll(abs, cfg.Sites)
	if err != nil {
		return err
	}
	if err := WriteSites(path(SitesFile), es); err != nil {
		return err
	}
	tokenFile := path("secrets", "internal-token")
	if _, err := secret(tokenFile); err != nil {
		return err
	}

	// The satellite link's CA and sync's certificate: satellites dial
	// across networks, so the link is TLS from the start.
	caFile := path("tls", "ca.pem")
	ca, err := pki.LoadOrCreateCA(caFile, path("tls", "ca-key.pem"), "Mothership CA")
	if err != nil {
		return err
	}
	hosts := []string{cfg.Host, "localhost"}
	if ip := net.ParseIP(cfg.Host); ip == nil || !ip.IsLoopback() {
		hosts = append(hosts, "127.0.0.1")
	}
	kp, err := ca.Issue(hosts...)
	if err != nil {
		return err
	}
	if err := kp.Write(path("tls", "sync.pem"), path("tls", "sync-key.pem")); err != nil {
		return err
	}

	var admin *kgo.Client
	if cfg.KafkaAdminUser != "" {
		if admin, err = kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(strings.Split(cfg.Kafka, ",")...)},
			broker.SASLOpts(cfg.KafkaAdminUser, cfg.KafkaAdminPassword)...)...); err != nil {
			return fmt.Errorf("controlplane: setup: event cluster: %w", err)
		}
		defer admin.Close()
	}
	urls := map[string]string{}
	port := map[string]int{}
	dbRoles := map[string]string{}
	for i, name := range Services {
		port[name] = cfg.BasePort + i
		if name == gateway.Name {
			port[name] = cfg.APIPort
		}
		urls[name] = "http://" + net.JoinHostPort(cfg.Host, strconv.Itoa(port[name]))
	}
	for _, d := range Declarations() {
		env := []string{"MOTHERSHIP_KAFKA=" + cfg.Kafka}
		if cfg.DBAdmin != "" {
			password, err := secret(path("secrets", "db-"+d.Name))
			if err != nil {
				return err
			}
			url, err := postgres.Provision(ctx, cfg.DBAdmin, d.Name, password)
			if err != nil {
				return err
			}
			dbRoles[d.Name] = url
			env = append(env, "MOTHERSHIP_DB="+url)
		} else {
			env = append(env, "MOTHERSHIP_DB="+path("db", d.Name+".db"))
		}
		if admin != nil {
			pwFile := path("secrets", "kafka-"+d.Name)
			password, err := secret(pwFile)
			if err != nil {
				return err
			}
			if err := broker.Provision(ctx, admin, d.Name, password, d.Grants()); err != nil {
				return fmt.Errorf("controlplane: setup: %s's principal: %w", d.Name, err)
			}
			env = append(env, "MOTHERSHIP_KAFKA_USER="+d.Name, "MOTHERSHIP_KAFKA_PASSWORD_FILE="+pwFile)
		}
		if err := writeProcessEnv(path("env", d.Name+".env"), d.Name, env, cfg, urls, port, tokenFile, path); err != nil {
			return err
		}
	}
	if err := writeProcessEnv(path("env", gateway.Name+".env"), gateway.Name, nil, cfg, urls, port, tokenFile, path); err != nil {
		return err
	}
	// What only the server's operator can change (pg_hba.conf, the
	// server's settings) is checked last: setup then fails saying what
	// to change, and runs again to the end once it is.
	if cfg.DBAdmin != "" {
		if err := postgres.CheckServer(ctx, cfg.DBAdmin, dbRoles); err != nil {
			return fmt.Errorf("controlplane: setup: %w\nChange it, then run setup again", err)
		}
	}
	linkURL := "https://" + net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.LinkPort))
	for j, site := range cfg.Sites {
		// Satellites' probes take the ports after the services'.
		probe := net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.BasePort+len(Services)+j))
		// The certificate its clusters' endpoints serve, from the same
		// CA: clients trust tls/ca.pem.
		satDir := SatelliteDir(abs, site)
		if err := os.MkdirAll(satDir, 0o750); err != nil {
			return err
		}
		clusterHosts := slices.Clone(hosts)
		for _, d := range cfg.ClusterDomains {
			clusterHosts = append(clusterHosts, "*."+d)
		}
		clusters, err := ca.Issue(clusterHosts...)
		if err != nil {
			return err
		}
		certFile, keyFile := filepath.Join(satDir, "clusters.pem"), filepath.Join(satDir, "clusters-key.pem")
		if err := clusters.Write(certFile, keyFile); err != nil {
			return err
		}
		env := []string{"MOTHERSHIP_SITE=" + site.String(), "MOTHERSHIP_SYNC=" + linkURL, "MOTHERSHIP_CA=" + caFile,
			"MOTHERSHIP_DATA_DIR=" + satDir, "MOTHERSHIP_LISTEN=" + probe,
			"MOTHERSHIP_CLUSTER_TLS_CERT=" + certFile, "MOTHERSHIP_CLUSTER_TLS_KEY=" + keyFile}
		if err := writeEnv(path("env", "satellite-"+siteDir(site)+".env"), env); err != nil {
			return err
		}
	}
	fmt.Fprintf(cfg.Out, "Setup written to %s:\n  env/SERVICE.env for each of: %s\n  env/satellite-SITE.env for each satellite\n  the public API will be %s; the satellite link %s\n",
		abs, strings.Join(Services, " "), urls[gateway.Name], linkURL)
	return nil
}

func writeProcessEnv(file, name string, env []string, cfg SetupConfig, urls map[string]string, port map[string]int, tokenFile string, path func(...string) string) error {
	env = append(env, "MOTHERSHIP_LISTEN="+net.JoinHostPort(cfg.Host, strconv.Itoa(port[name])), "MOTHERSHIP_INTERNAL_TOKEN_FILE="+tokenFile)
	var peers []string
	for _, p := range Calls[name] {
		peers = append(peers, p+"="+urls[p])
	}
	if len(peers) > 0 {
		env = append(env, "MOTHERSHIP_PEER="+strings.Join(peers, ","))
	}
	switch name {
	case "iam":
		env = append(env, "MOTHERSHIP_SITES="+path(SitesFile), "MOTHERSHIP_ADMIN_CREDENTIALS="+path(AdminCredentialsFile))
	case syncsvc.Name:
		env = append(env, "MOTHERSHIP_SITES="+path(SitesFile), "MOTHERSHIP_LINK_LISTEN="+net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.LinkPort)),
			"MOTHERSHIP_TLS_CERT="+path("tls", "sync.pem"), "MOTHERSHIP_TLS_KEY="+path("tls", "sync-key.pem"))
	case gateway.Name:
		env = append(env, "MOTHERSHIP_CLUSTER_CA="+path("tls", "ca.pem"))
	}
	return writeEnv(file, env)
}

// writeEnv writes one VAR=value per line; values hold no spaces, so the
// file also works as `env $(cat FILE) mothership …`.
func writeEnv(file string, env []string) error {
	if err := atomicfile.Write(file, []byte(strings.Join(env, "\n")+"\n"), 0o600); err != nil {
		return fmt.Errorf("controlplane: setup: %w", err)
	}
	return nil
}

// secret returns the secret kept in file, made on first use.
func secret(file string) (string, error) {
	if s, err := ReadToken(file); err == nil {
		return s, nil
	}
	raw := make([]byte, 24)
	_, _ = rand.Read(raw) // crypto/rand.Read never fails (Go ≥ 1.24)
	s := hex.EncodeToString(raw)
	if err := atomicfile.Write(file, []byte(s+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("controlplane: setup: %w", err)
	}
	return s, nil
}
