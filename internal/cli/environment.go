package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"

	"github.com/spf13/cobra"

	"github.com/mothership-dev/mothership/internal/api"
)

// The collections of the API. They are the gateway's routes, repeated
// here because the CLI knows the system only through its API.
const (
	environmentsPath = "/org/v2/environments"
	clustersPath     = "/cmk/v2/clusters"
	apiKeysPath      = "/iam/v2/api-keys"
)

// listPageSize is the API's largest page, so that a list takes as few
// round trips as the server allows.
const listPageSize = "100"

func newEnvironmentCmd(cfg Config) *cobra.Command {
	cmd := group(&cobra.Command{
		Use:     "environment",
		Aliases: []string{"env"},
		Short:   "Manage environments",
		Long: `Manage environments: the groups that hold Kafka clusters and networks.
environment use makes one the current context's environment, which
kafka cluster create and list default to.
`,
	})
	g := addGlobals(cmd, cfg)
	ids := completeEnvironments(g)
	var name string
	update := &cobra.Command{
		Use:               "update ID --name NAME",
		Short:             "Rename an environment",
		Example:           "  mothership environment update env-abc123 --name production",
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: upTo(1, ids),
		RunE: g.run(func(cmd *cobra.Command, s *session, args []string) error {
			if err := requireID("environment", args[0]); err != nil {
				return err
			}
			if !cmd.Flags().Changed("name") || name == "" {
				return fmt.Errorf("nothing to update: pass --name with the new name")
			}
			var raw json.RawMessage
			if err := s.client.Do(cmd.Context(), http.MethodPatch, environmentsPath+"/"+url.PathEscape(args[0]), api.EnvironmentUpdate{DisplayName: &name}, &raw); err != nil {
				return err
			}
			return environmentView.show(s, raw)
		}),
	}
	update.Flags().StringVar(&name, "name", "", "new name of the environment")

	cmd.AddCommand(
		&cobra.Command{
			Use:   "create NAME",
			Short: "Create an environment",
			Args:  cobra.ExactArgs(1),
			RunE: g.run(func(cmd *cobra.Command, s *session, args []string) error {
				var raw json.RawMessage
				if err := s.client.Do(cmd.Context(), http.MethodPost, environmentsPath, api.EnvironmentCreate{DisplayName: args[0]}, &raw); err != nil {
					return err
				}
				return environmentView.show(s, raw)
			}),
		},
		&cobra.Command{
			Use:   "list",
			Short: "List the environments",
			Args:  cobra.NoArgs,
			RunE: g.run(func(cmd *cobra.Command, s *session, _ []string) error {
				items, err := listAll(cmd.Context(), s.client, environmentsPath, nil)
				if err != nil {
					return err
				}
				return environmentView.showList(s, items)
			}),
		},
		&cobra.Command{
			Use:               "describe [ID]",
			Short:             "Describe an environment (default: the current one)",
			Args:              cobra.MaximumNArgs(1),
			ValidArgsFunction: upTo(1, ids),
			RunE: g.run(func(cmd *cobra.Command, s *session, args []string) error {
				id, err := s.environmentArg(args)
				if err != nil {
					return err
				}
				return describe(cmd.Context(), s, "environment", environmentsPath, id, environmentView)
			}),
		},
		update,
		&cobra.Command{
			Use:   "use ID",
			Short: "Make an environment the current context's",
			Long: `Make an environment the current context's environment: kafka cluster
create and list default to it. The current Kafka cluster is forgotten
when it changes, as it belongs to the environment left.`,
			Args:              cobra.ExactArgs(1),
			ValidArgsFunction: upTo(1, ids),
			RunE: g.run(func(cmd *cobra.Command, s *session, args []string) error {
				ctx, err := s.writable()
				if err != nil {
					return err
				}
				if err := requireID("environment", args[0]); err != nil {
					return err
				}
				var e api.Environment
				if err := s.client.Do(cmd.Context(), http.MethodGet, environmentsPath+"/"+url.PathEscape(args[0]), nil, &e); err != nil {
					return err
				}
				if ctx.Environment != e.ID {
					ctx.Environment, ctx.KafkaCluster = e.ID, ""
				}
				if err := s.save(); err != nil {
					return err
				}
				return s.say("Using environment %q (%s) in context %q.\n", e.ID, e.DisplayName, s.name)
			}),
		},
		deleteCmd(g, "environment", "Delete environments",
			"Delete environments. The API refuses while an environment holds clusters.", ids, environmentsPath),
	)
	return cmd
}

// environmentOut is an environment as confluent's environment commands
// print it with -o json.
type environmentOut struct {
	IsCurrent bool   `json:"is_current"`
	ID        string `json:"id"`
	Name      string `json:"name"`
}

var environmentView = view[api.Environment]{
	fields: func(s *session, e api.Environment) []field {
		return []field{{"Current", fmt.Sprint(s.currentEnvironment() == e.ID)}, {"ID", e.ID}, {"Name", e.DisplayName}, {"Created", created(e.Metadata)}}
	},
	header: []string{"Current", "ID", "Name"},
	row: func(s *session, e api.Environment) []string {
		return []string{current(s.currentEnvironment() == e.ID), e.ID, e.DisplayName}
	},
	flat: func(s *session, e api.Environment) any {
		return environmentOut{IsCurrent: s.currentEnvironment() == e.ID, ID: e.ID, Name: e.DisplayName}
	},
}

// describe prints the resource id of the collection at path.
func describe[T any](ctx context.Context, s *session, what, path, id string, v view[T]) error {
	if err := requireID(what, id); err != nil {
		return err
	}
	var raw json.RawMessage
	if err := s.client.Do(ctx, http.MethodGet, path+"/"+url.PathEscape(id), nil, &raw); err != nil {
		return err
	}
	return v.show(s, raw)
}

// listAll fetches every page of the collection at path, following
// metadata.next, and returns the items as the server sent them.
func listAll(ctx context.Context, c *Client, path string, query url.Values) ([]json.RawMessage, error) {
	q := url.Values{"page_size": {listPageSize}}
	for k, v := range query {
		q[k] = v
	}
	next := path + "?" + q.Encode()
	seen := map[string]bool{}
	items := []json.RawMessage{}
	for next != "" {
		// A server that links a page to itself or an earlier one would
		// make this loop forever.
		if seen[next] {
			return nil, fmt.Errorf("listing %s: the server's next page %q was already fetched", path, next)
		}
		seen[next] = true
		var page api.List[json.RawMessage]
		if err := c.Do(ctx, http.MethodGet, next, nil, &page); err != nil {
			return nil, err
		}
		items = append(items, page.Data...)
		next = page.Metadata.Next
	}
	return items, nil
}
