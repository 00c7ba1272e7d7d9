package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mothership-dev/mothership/internal/runtime/kafkalisten"
)

// Config configures an embedded broker.
type Config struct {
	// DataDir holds the broker's log segments, offsets and groups; events
	// survive a restart on the same directory. Required.
	DataDir string
	// Listen is the address to serve on; the default 127.0.0.1:0 picks a
	// free port.
	Listen string
	// Logger receives the broker's warnings and errors.
	Logger *slog.Logger
	// AdminUser and AdminPassword, when set (both or neither), make the
	// broker require SASL/SCRAM-SHA-512 from every client and enforce
	// ACLs: AdminUser is the superuser that provisions every other
	// principal (see Provision). Without them any client may do anything.
	AdminUser     string
	AdminPassword string
}

// Embedded is a running embedded broker.
type Embedded struct {
	cluster *kfake.Cluster
}

// Start starts an embedded single-node broker on cfg.DataDir.
func Start(cfg Config) (*Embedded, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("broker: DataDir is required")
	}
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if (cfg.AdminUser == "") != (cfg.AdminPassword == "") {
		return nil, errors.New("broker: AdminUser and AdminPassword go together")
	}
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return nil, fmt.Errorf("broker: data dir: %w", err)
	}
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.DataDir(cfg.DataDir),
		// kafkalisten lets librdkafka clients (kcat and the like) use
		// SASL: kfake alone advertises SaslHandshake from v1, and they
		// want it from v0.
		kfake.ListenFn(func(network, _ string) (net.Listener, error) {
			return kafkalisten.Listen(network, cfg.Listen)
		}),
		kfake.WithLogger(slogLogger{cfg.Logger}),
	}
	if cfg.AdminUser != "" {
		opts = append(opts, kfake.EnableSASL(), kfake.EnableACLs(),
			kfake.Superuser(scramMechanism, cfg.AdminUser, cfg.AdminPassword))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("broker: start on %s: %w", cfg.DataDir, err)
	}
	return &Embedded{cluster: c}, nil
}

// Addrs returns the bootstrap addresses.
func (e *Embedded) Addrs() []string { return e.cluster.ListenAddrs() }

// Close stops the broker, flushing its state to disk.
func (e *Embedded) Close() { e.cluster.Close() }

// slogLogger adapts kfake's logger to slog; kfake's debug chatter is dropped.
type slogLogger struct{ l *slog.Logger }

func (s slogLogger) Logf(level kfake.LogLevel, msg string, args ...any) {
	switch level {
	case kfake.LogLevelError:
		s.l.Error("broker", "detail", fmt.Sprintf(msg, args...))
	case kfake.LogLevelWarn:
		s.l.Warn("broker", "detail", fmt.Sprintf(msg, args...))
	}
}

// Topic describes an event topic and how long it keeps records.
type Topic struct {
	Name       string
	Partitions int32
	// Compact keeps the newest record per key forever: state topics, from
	// which a new consumer learns the full current state.
	Compact bool
	// Retention bounds how long a history topic keeps records; zero keeps
	// the broker's default.
	Retention time.Duration
}

// DefaultPartitions is the partition count of event topics: enough for the
// consumers of one service to share the load, few enough to stay cheap.
const DefaultPartitions = 6

// StateTopic is a compacted topic carrying resources' full states.
func StateTopic(name string) Topic {
	return Topic{Name: name, Partitions: DefaultPartitions, Compact: true}
}

// EnsureTopics creates the topics that do not exist yet. A topic that
// already exists is left as it is.
func EnsureTopics(ctx context.Context, cl *kgo.Client, topics ...Topic) error {
	adm := kadm.NewClient(cl)
	for _, t := range topics {
		configs := map[string]*string{}
		if t.Compact {
			configs["cleanup.policy"] = kadm.StringPtr("compact")
		} else {
			configs["cleanup.policy"] = kadm.StringPtr("delete")
		}
		if t.Retention > 0 {
			configs["retention.ms"] = kadm.StringPtr(strconv.FormatInt(t.Retention.Milliseconds(), 10))
		}
		partitions := t.Partitions
		if partitions <= 0 {
			partitions = DefaultPartitions
		}
		resp, err := adm.CreateTopic(ctx, partitions, -1, configs, t.Name)
		if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("broker: create topic %s: %w", t.Name, err)
		}
		if resp.Err != nil && !errors.Is(resp.Err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("broker: create topic %s: %w", t.Name, resp.Err)
		}
	}
	return nil
}
