package cli

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/mothership-dev/mothership/internal/api"
)

// restTopic is a topic as Kafka REST v3 answers it.
type restTopic struct {
	TopicName         string `json:"topic_name"`
	IsInternal        bool   `json:"is_internal"`
	ReplicationFactor int    `json:"replication_factor"`
	PartitionsCount   int    `json:"partitions_count"`
}

// restTopicConfig is a topic's config as Kafka REST v3 answers it.
type restTopicConfig struct {
	Name       string  `json:"name"`
	Value      *string `json:"value"`
	IsReadOnly bool    `json:"is_read_only"`
}

// restList is a Kafka REST v3 collection.
type restList[T any] struct {
	Data []T `json:"data"`
}

// TopicConfig is one config of a topic, as Kafka REST v3 takes it.
type TopicConfig struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// ParseTopicConfigs parses --config values, KEY=VALUE each (the value may
// be empty and hold '='), as confluent's topic commands take them. A key
// given twice is refused, as only one value can win.
func ParseTopicConfigs(values []string) ([]TopicConfig, error) {
	out := []TopicConfig{}
	for _, v := range values {
		name, value, ok := strings.Cut(v, "=")
		name = strings.TrimSpace(name)
		switch {
		case !ok || name == "":
			return nil, fmt.Errorf("--config %q: want KEY=VALUE, like retention.ms=86400000", oneLine(v, 100))
		case strings.ContainsFunc(name, func(r rune) bool { return r <= ' ' || r > '~' }):
			return nil, fmt.Errorf("--config %q: a config name is printable ASCII without spaces", oneLine(name, 100))
		case slices.ContainsFunc(out, func(c TopicConfig) bool { return c.Name == name }):
			return nil, fmt.Errorf("--config %s is given twice", name)
		}
		out = append(out, TopicConfig{Name: name, Value: value})
	}
	return out, nil
}

// topicOut is a topic as confluent's kafka topic list and describe print
// it with -o json.
type topicOut struct {
	Name              string `json:"name"`
	IsInternal        bool   `json:"is_internal"`
	ReplicationFactor int    `json:"replication_factor"`
	PartitionCount    int    `json:"partition_count"`
}

var topicView = view[restTopic]{
	fields: func(_ *session, t restTopic) []field {
		return []field{{"Name", t.TopicName}, {"Internal", strconv.FormatBool(t.IsInternal)},
			{"Replication Factor", strconv.Itoa(t.ReplicationFactor)}, {"Partition Count", strconv.Itoa(t.PartitionsCount)}}
	},
	header: []string{"Name", "Internal", "Replication Factor", "Partition Count"},
	row: func(_ *session, t restTopic) []string {
		return []string{t.TopicName, strconv.FormatBool(t.IsInternal), strconv.Itoa(t.ReplicationFactor), strconv.Itoa(t.PartitionsCount)}
	},
	flat: func(_ *session, t restTopic) any {
		return topicOut{Name: t.TopicName, IsInternal: t.IsInternal, ReplicationFactor: t.ReplicationFactor, PartitionCount: t.PartitionsCount}
	},
}

// topicConfigOut is a topic's config as confluent's kafka topic update
// and configuration list print it with -o json.
type topicConfigOut struct {
	Name     string `json:"name"`
	Value    string `json:"value"`
	ReadOnly bool   `json:"read_only"`
}

var topicConfigView = view[restTopicConfig]{
	header: []string{"Name", "Value", "Read-Only"},
	row: func(_ *session, c restTopicConfig) []string {
		return []string{c.Name, valueOf(c), strconv.FormatBool(c.IsReadOnly)}
	},
	flat: func(_ *session, c restTopicConfig) any {
		return topicConfigOut{Name: c.Name, Value: valueOf(c), ReadOnly: c.IsReadOnly}
	},
}

func valueOf(c restTopicConfig) string {
	if c.Value == nil {
		return ""
	}
	return *c.Value
}

func newTopicCmd(g *globals, clusters cobra.CompletionFunc) *cobra.Command {
	cmd := group(&cobra.Command{
		Use:   "topic",
		Short: "Manage the topics of a Kafka cluster",
		Long:  "Manage the topics of a Kafka cluster: create, list, describe, update (configs) and delete.\n" + restHelp,
	})
	configuration := group(&cobra.Command{
		Use:   "configuration",
		Short: "Read a topic's configs",
		Long:  "Read a topic's configs.\n" + restHelp,
	})
	configuration.AddCommand(newTopicConfigListCmd(g, clusters))
	cmd.AddCommand(newTopicCreateCmd(g, clusters), newTopicListCmd(g, clusters), newTopicDescribeCmd(g, clusters),
		newTopicUpdateCmd(g, clusters), newTopicDeleteCmd(g, clusters), configuration)
	return cmd
}

// topicPath is the path of a topic of rc's cluster.
func (rc *restClient) topicPath(topic string) string {
	return rc.path + "/topics/" + url.PathEscape(topic)
}

// completeTopics completes topic names of the cluster the flags name.
func completeTopics(g *globals, f *restFlags) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
		s, err := g.session(cmd)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		ctx, cancel := context.WithTimeout(cmd.Context(), completionTimeout)
		defer cancel()
		rc, err := s.rest(ctx, *f)
		if err != nil {
			cobra.CompDebugln(err.Error(), false)
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var topics restList[restTopic]
		if err := rc.Do(ctx, http.MethodGet, rc.path+"/topics", nil, &topics); err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var out []cobra.Completion
		for _, t := range topics.Data {
			if !slices.Contains(args, t.TopicName) {
				out = append(out, t.TopicName)
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}

func newTopicCreateCmd(g *globals, clusters cobra.CompletionFunc) *cobra.Command {
	var f restFlags
	var partitions int32
	var configs []string
	var ifNotExists, dryRun bool
	cmd := &cobra.Command{
		Use:   "create TOPIC",
		Short: "Create a topic",
		Long:  "Create a topic, with --partitions (default the cluster's) and --config overrides.\n" + restHelp,
		Example: `  mothership kafka topic create orders --partitions 6 --config retention.ms=259200000,cleanup.policy=compact
  mothership kafka topic create orders --cluster lkc-abc123 --api-key KEY --api-secret SECRET`,
		Args: cobra.ExactArgs(1),
		RunE: g.runREST(&f, func(cmd *cobra.Command, s *session, rc *restClient, args []string) error {
			cfgs, err := ParseTopicConfigs(configs)
			if err != nil {
				return err
			}
			body := struct {
				TopicName       string        `json:"topic_name"`
				PartitionsCount *int32        `json:"partitions_count,omitempty"`
				Configs         []TopicConfig `json:"configs,omitempty"`
				ValidateOnly    bool          `json:"validate_only,omitempty"`
			}{TopicName: args[0], Configs: cfgs, ValidateOnly: dryRun}
			if cmd.Flags().Changed("partitions") {
				if partitions < 1 {
					return fmt.Errorf("--partitions %d: a topic has at least 1 partition", partitions)
				}
				body.PartitionsCount = &partitions
			}
			var t restTopic
			err = rc.Do(cmd.Context(), http.MethodPost, rc.path+"/topics", body, &t)
			if e, ok := errors.AsType[*api.Error](err); ok && ifNotExists && strings.Contains(strings.ToLower(e.Detail), "already exists") {
				return s.say("Topic %q exists already.\n", args[0])
			}
			switch {
			case err != nil:
				return err
			case dryRun:
				return s.say("Topic %q may be created.\n", args[0])
			case s.format != formatHuman:
				return topicView.print(s, t)
			}
			return s.say("Created topic %q.\n", args[0])
		}),
	}
	f.add(cmd, clusters)
	cmd.Flags().Int32Var(&partitions, "partitions", 0, "number of partitions (default the cluster's)")
	cmd.Flags().StringSliceVar(&configs, "config", nil, "comma-separated config overrides, KEY=VALUE each")
	cmd.Flags().BoolVar(&ifNotExists, "if-not-exists", false, "succeed if the topic exists already")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "only check that the topic may be created")
	return cmd
}

func newTopicListCmd(g *globals, clusters cobra.CompletionFunc) *cobra.Command {
	var f restFlags
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the topics",
		Long:  "List the cluster's topics (a key sees the ones its ACLs let it describe).\n" + restHelp,
		Args:  cobra.NoArgs,
		RunE: g.runREST(&f, func(cmd *cobra.Command, s *session, rc *restClient, _ []string) error {
			var topics restList[restTopic]
			if err := rc.Do(cmd.Context(), http.MethodGet, rc.path+"/topics", nil, &topics); err != nil {
				return err
			}
			slices.SortFunc(topics.Data, func(a, b restTopic) int { return strings.Compare(a.TopicName, b.TopicName) })
			return topicView.printList(s, topics.Data)
		}),
	}
	f.add(cmd, clusters)
	return cmd
}

func newTopicDescribeCmd(g *globals, clusters cobra.CompletionFunc) *cobra.Command {
	var f restFlags
	cmd := &cobra.Command{
		Use:               "describe TOPIC",
		Short:             "Describe a topic",
		Long:              "Describe a topic: its partitions and replication; kafka topic configuration list shows its configs.\n" + restHelp,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: upTo(1, completeTopics(g, &f)),
		RunE: g.runREST(&f, func(cmd *cobra.Command, s *session, rc *restClient, args []string) error {
			var t restTopic
			if err := rc.Do(cmd.Context(), http.MethodGet, rc.topicPath(args[0]), nil, &t); err != nil {
				return err
			}
			return topicView.print(s, t)
		}),
	}
	f.add(cmd, clusters)
	return cmd
}

func newTopicUpdateCmd(g *globals, clusters cobra.CompletionFunc) *cobra.Command {
	var f restFlags
	var configs []string
	var dryRun bool
	cmd := &cobra.Command{
		Use:               "update TOPIC --config KEY=VALUE,…",
		Short:             "Change a topic's configs",
		Long:              "Change a topic's configs, and show their values then.\n" + restHelp,
		Example:           "  mothership kafka topic update orders --config retention.ms=259200000",
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: upTo(1, completeTopics(g, &f)),
		RunE: g.runREST(&f, func(cmd *cobra.Command, s *session, rc *restClient, args []string) error {
			cfgs, err := ParseTopicConfigs(configs)
			if err != nil {
				return err
			}
			if len(cfgs) == 0 {
				return errors.New("nothing to update: pass --config KEY=VALUE")
			}
			body := struct {
				Data         []TopicConfig `json:"data"`
				ValidateOnly bool          `json:"validate_only,omitempty"`
			}{cfgs, dryRun}
			if err := rc.Do(cmd.Context(), http.MethodPost, rc.topicPath(args[0])+"/configs:alter", body, nil); err != nil {
				return err
			}
			if dryRun {
				return s.say("The configs of topic %q may be changed so.\n", args[0])
			}
			var all restList[restTopicConfig]
			if err := rc.Do(cmd.Context(), http.MethodGet, rc.topicPath(args[0])+"/configs", nil, &all); err != nil {
				return err
			}
			changed := slices.DeleteFunc(all.Data, func(c restTopicConfig) bool {
				return !slices.ContainsFunc(cfgs, func(u TopicConfig) bool { return u.Name == c.Name })
			})
			if s.format == formatHuman {
				if _, err := fmt.Fprintf(s.errOut, "Updated the following configs of topic %q:\n", args[0]); err != nil {
					return err
				}
			}
			return topicConfigView.printList(s, changed)
		}),
	}
	f.add(cmd, clusters)
	cmd.Flags().StringSliceVar(&configs, "config", nil, "comma-separated configs to set, KEY=VALUE each")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "only check that the configs may be set")
	return cmd
}

func newTopicDeleteCmd(g *globals, clusters cobra.CompletionFunc) *cobra.Command {
	var f restFlags
	var force bool
	cmd := &cobra.Command{
		Use:               "delete TOPIC...",
		Short:             "Delete topics",
		Long:              "Delete topics, and their records with them." + "\n" + deleteHelp + "\n" + restHelp,
		Args:              cobra.MinimumNArgs(1),
		ValidArgsFunction: completeTopics(g, &f),
		RunE: g.runREST(&f, func(cmd *cobra.Command, s *session, rc *restClient, args []string) error {
			_, err := deleteAll(cmd.Context(), s, "topic", args, force, pathDeleter(rc.Client, rc.topicPath))
			return err
		}),
	}
	f.add(cmd, clusters)
	cmd.Flags().BoolVar(&force, "force", false, "delete without asking for confirmation")
	return cmd
}

func newTopicConfigListCmd(g *globals, clusters cobra.CompletionFunc) *cobra.Command {
	var f restFlags
	cmd := &cobra.Command{
		Use:               "list TOPIC",
		Short:             "List a topic's configs",
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: upTo(1, completeTopics(g, &f)),
		RunE: g.runREST(&f, func(cmd *cobra.Command, s *session, rc *restClient, args []string) error {
			var all restList[restTopicConfig]
			if err := rc.Do(cmd.Context(), http.MethodGet, rc.topicPath(args[0])+"/configs", nil, &all); err != nil {
				return err
			}
			return topicConfigView.printList(s, all.Data)
		}),
	}
	f.add(cmd, clusters)
	return cmd
}
