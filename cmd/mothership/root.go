package main

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"

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

// logFlags are the logging flags of the server commands (dev, serve,
// broker, satellite, kafka-proxy), declared in add and nowhere else so that they read
// the same on each.
type logFlags struct {
	level, format string
}

// add declares --log-level and --log-format on f.
func (l *logFlags) add(f *pflag.FlagSet) {
	f.StringVar(&l.level, "log-level", "info", "debug, info, warn or error")
	f.StringVar(&l.format, "log-format", logFormatAuto, "text, json, or auto: text when stderr is a terminal (a person reads it), JSON otherwise (a collector parses it)")
}

// The values of --log-format.
const (
	logFormatText = "text"
	logFormatJSON = "json"
	logFormatAuto = "auto"
)

// logger returns the process's logger, writing to w (the command's
// stderr) in the format and at the level the flags say.
func (l logFlags) logger(w io.Writer) (*slog.Logger, error) {
	h, err := l.handler(w, isTerminal(w))
	if err != nil {
		return nil, err
	}
	return slog.New(h), nil
}

// handler returns the handler the flags choose for w; terminal says
// whether w is a terminal, which decides --log-format auto.
func (l logFlags) handler(w io.Writer, terminal bool) (slog.Handler, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(l.level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", l.level)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch l.format {
	case logFormatText:
		return slog.NewTextHandler(w, opts), nil
	case logFormatJSON:
		return slog.NewJSONHandler(w, opts), nil
	case logFormatAuto, "":
		if terminal {
			return slog.NewTextHandler(w, opts), nil
		}
		return slog.NewJSONHandler(w, opts), nil
	default:
		return nil, fmt.Errorf("--log-format %q: want text, json or auto", l.format)
	}
}

// isTerminal reports whether w is a terminal, with golang.org/x/term's
// IsTerminal (already a dependency of the module).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// newLogger returns a logger to stderr at level (debug, info, warn or
// error), in --log-format auto's format: for the commands that have no
// logFlags yet (kafka-proxy, bench).
func newLogger(level string) (*slog.Logger, error) {
	return logFlags{level: level, format: logFormatAuto}.logger(os.Stderr)
}

// defaultDataDir is where a command keeps its state unless told: under
// the user's data directory ($XDG_DATA_HOME, else ~/.local/share), outside
// any checkout, so that no secret (the admin's key, the CA's private key)
// lands in a repository by default.
func defaultDataDir(name string) string {
	base := os.Getenv("XDG_DATA_HOME")
	if base == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "mothership-" + name
		}
		base = filepath.Join(home, ".local", "share")
	}
	return filepath.Join(base, "mothership", name)
}

// newMetrics returns the process's metrics registry, with the Go runtime's
// and the process's collectors, and its /metrics handler.
func newMetrics() (*prometheus.Registry, http.Handler) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg, promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}
