package main

import (
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/mothership-dev/mothership/internal/cli"
)

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "mothership",
		Short:         "Mothership runs Kafka as a service: a control plane for many Kafka clusters",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newDevCmd(), newBrokerCmd(), newServeCmd(), newSatelliteCmd(), newSetupCmd(), newBenchCmd(), newKafkaProxyCmd())
	root.AddCommand(cli.Commands(cli.Config{})...)
	return root
}

// bindEnv lets every flag of cmd come from MOTHERSHIP_<FLAG> too (dashes
// become underscores); a flag given on the command line wins.
func bindEnv(cmd *cobra.Command) error {
	var err error
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if f.Changed || err != nil {
			return
		}
		name := "MOTHERSHIP_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(name); ok {
			err = f.Value.Set(v)
		}
	})
	return err
}

// newLogger returns the process's JSON logger at level (debug, info,
// warn or error).
func newLogger(level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	return slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: l})), nil
}

// newMetrics returns the process's metrics registry, with the Go runtime's
// and the process's collectors, and its /metrics handler.
func newMetrics() (*prometheus.Registry, http.Handler) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg, promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}
