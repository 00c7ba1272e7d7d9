package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mothership-dev/mothership/internal/runtime/broker"
	"github.com/mothership-dev/mothership/internal/runtime/host"
	"github.com/mothership-dev/mothership/internal/runtime/store"
	"github.com/mothership-dev/mothership/internal/runtime/store/sqlite"
)

// services lists the services of the control plane. Each is a host.Service;
// the host starts them by layer.
func services() []host.Service { return nil }

func newDevCmd() *cobra.Command {
	var dataDir, listen, kafkaListen, kafka, logLevel string
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Start the whole system in one process, on the embedded default",
		Long: `Start the whole control plane in one process: the embedded Kafka-protocol
broker (persisted under --data-dir), one SQLite database per service, and
every service on the runtime, lowest layer first. Health, readiness and
Prometheus metrics are served on --listen.`,
		PreRunE: func(cmd *cobra.Command, _ []string) error { return bindEnv(cmd) },
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDev(cmd.Context(), cmd, devOptions{dataDir: dataDir, listen: listen, kafkaListen: kafkaListen, kafka: kafka, logLevel: logLevel})
		},
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", "mothership-data", "directory of all state: the broker's log and one database per service")
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:8080", "address of the HTTP endpoints")
	cmd.Flags().StringVar(&kafkaListen, "kafka-listen", "127.0.0.1:0", "address of the embedded broker")
	cmd.Flags().StringVar(&kafka, "kafka", "", "bootstrap servers of an external Kafka (comma-separated); none runs the embedded broker")
	cmd.Flags().StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	return cmd
}

type devOptions struct {
	dataDir, listen, kafkaListen, kafka, logLevel string
}

func runDev(ctx context.Context, cmd *cobra.Command, o devOptions) error {
	dataDir, listen := o.dataDir, o.listen
	log, err := newLogger(o.logLevel)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dataDir, 0o750); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	bootstrap := strings.Split(o.kafka, ",")
	if o.kafka == "" {
		b, err := broker.Start(broker.Config{DataDir: filepath.Join(dataDir, "broker"), Listen: o.kafkaListen, Logger: log})
		if err != nil {
			return err
		}
		defer b.Close()
		bootstrap = b.Addrs()
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	cfg := host.Config{
		OpenStore: func(ctx context.Context, service string, owns []string) (store.Store, error) {
			return sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(dataDir, service+".db"), Service: service, Owns: owns, Logger: log})
		},
		Kafka:      []kgo.Opt{kgo.SeedBrokers(bootstrap...)},
		Logger:     log,
		Registerer: reg,
	}

	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", listen, err)
	}
	var ready readiness
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok\n")) })
	mux.HandleFunc("GET /readyz", ready.serve)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	defer func() {
		shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		srv.Shutdown(shutdown)
	}()

	fleet, err := host.StartAll(ctx, cfg, services())
	if err != nil {
		return err
	}
	ready.set(true)
	url := "http://" + ln.Addr().String()
	log.Info("mothership is up", "url", url, "kafka", bootstrap, "data_dir", dataDir, "services", len(fleet.Services()))
	fmt.Fprintf(cmd.OutOrStdout(), "Mothership is up.\n  HTTP:  %s (/healthz, /readyz, /metrics)\n  Kafka: %s\n  Data:  %s\n", url, strings.Join(bootstrap, ","), dataDir)

	<-ctx.Done()
	ready.set(false)
	log.Info("mothership stopping")
	return errors.Join(fleet.Stop())
}
