package main

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"

	"github.com/spf13/cobra"

	"github.com/mothership-dev/mothership/internal/runtime/broker"
)

func newBrokerCmd() *cobra.Command {
	var dataDir, listen, httpListen, adminUser, adminPassword, adminPasswordFile string
	var logs logFlags
	cmd := &cobra.Command{
		Use:   "broker",
		Short: "Run the embedded Kafka-protocol broker as a process of its own",
		Long: `Run the embedded Kafka-protocol broker (franz-go's kfake, persisted in
--data-dir) as a standalone process, for a local distributed setup. In
production the services point at Apache Kafka or Redpanda instead.

With --admin-user and a password (--admin-password-file, or
MOTHERSHIP_ADMIN_PASSWORD), every client must authenticate with
SASL/SCRAM-SHA-512 and ACLs are enforced: the admin user is the superuser
that provisions each service's own principal. Any Kafka client can then
inspect the event topics, librdkafka ones included:

  kcat -b 127.0.0.1:9092 -X security.protocol=SASL_PLAINTEXT \
    -X sasl.mechanisms=SCRAM-SHA-512 -X sasl.username=ADMIN \
    -X sasl.password=PASSWORD -L`,
		PreRunE: func(cmd *cobra.Command, _ []string) error { return bindEnv(cmd) },
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := logs.logger(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			password, err := secretFlag(adminPassword, adminPasswordFile)
			if err != nil {
				return fmt.Errorf("admin password: %w", err)
			}
			if (adminUser == "") != (password == "") {
				return errors.New("--admin-user and an admin password (--admin-password-file or --admin-password) go together")
			}
			unlock, err := lockDataDir(dataDir, "broker")
			if err != nil {
				return err
			}
			defer unlock()
			b, err := broker.Start(broker.Config{DataDir: dataDir, Listen: listen, Logger: log, AdminUser: adminUser, AdminPassword: password})
			if err != nil {
				return err
			}
			defer b.Close()
			if httpListen != "" {
				var ready atomic.Bool
				ready.Store(true)
				_, metrics := newMetrics()
				stop, err := serveHealth(httpListen, metrics, &ready)
				if err != nil {
					return err
				}
				defer stop()
			}
			log.Info("broker ready", "bootstrap", b.Addrs(), "data_dir", dataDir, "sasl", adminUser != "")
			fmt.Fprintln(cmd.OutOrStdout(), b.Addrs()[0])
			<-cmd.Context().Done()
			log.Info("broker stopping")
			return nil
		},
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", defaultDataDir("broker"), "directory of the broker's persisted log")
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:9092", "address to serve the Kafka protocol on")
	cmd.Flags().StringVar(&httpListen, "http-listen", "", "address of /healthz, /readyz and /metrics (none: not served)")
	logs.add(cmd.Flags())
	cmd.Flags().StringVar(&adminUser, "admin-user", "", "superuser name; with a password, clients must authenticate (SASL/SCRAM-SHA-512) and ACLs are enforced")
	cmd.Flags().StringVar(&adminPassword, "admin-password", "", "superuser password; prefer MOTHERSHIP_ADMIN_PASSWORD or --admin-password-file, a flag shows in the process list")
	cmd.Flags().StringVar(&adminPasswordFile, "admin-password-file", "", "file holding the superuser password (surrounding white space is ignored)")
	return cmd
}

// secretFlag returns a secret given either as a value or as a file that
// holds it, not both.
func secretFlag(value, file string) (string, error) {
	if file == "" {
		return value, nil
	}
	if value != "" {
		return "", errors.New("give the value or the file, not both")
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", err
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("%s is empty", file)
	}
	return s, nil
}
