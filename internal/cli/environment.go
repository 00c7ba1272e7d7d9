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
	cmd := &cobra.Command{
		Use:     "environment",
		Aliases: []string{"env"},
		Short:   "Manage environments",
		Long:    "Manage environments: the groups that hold Kafka clusters and networks.\n",
	}
	g := addGlobals(cmd, cfg)
	cmd.AddCommand(
		&cobra.Command{
			Use:   "create NAME",
			Short: "Create an environment",
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				s, err := g.session(cmd)
				if err != nil {
					return err
				}
				var raw json.RawMessage
				if err := s.client.Do(cmd.Context(), http.MethodPost, environmentsPath, api.EnvironmentCreate{DisplayName: args[0]}, &raw); err != nil {
					return err
				}
				return show(s, raw, environmentFields)
			},
		},
		&cobra.Command{
			Use:   "list",
			Short: "List the environments",
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				s, err := g.session(cmd)
				if err != nil {
					return err
				}
				items, err := listAll(cmd.Context(), s.client, environmentsPath, nil)
				if err != nil {
					return err
				}
				return showList(s, items, []string{"ID", "Name"}, func(e api.Environment) []string {
					return []string{e.ID, e.DisplayName}
				})
			},
		},
		&cobra.Command{
			Use:   "describe ID",
			Short: "Describe an environment",
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				return describe(cmd, g, "environment", environmentsPath, args[0], environmentFields)
			},
		},
		&cobra.Command{
			Use:   "delete ID",
			Short: "Delete an environment",
			Long:  "Delete an environment. The API refuses while the environment holds clusters.",
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				return remove(cmd, g, "environment", environmentsPath, args[0])
			},
		},
	)
	return cmd
}

func environmentFields(e api.Environment) []field {
	return []field{{"ID", e.ID}, {"Name", e.DisplayName}, {"Created", created(e.Metadata)}}
}

// describe prints the resource id of the collection at path.
func describe[T any](cmd *cobra.Command, g *globals, what, path, id string, fields func(T) []field) error {
	if err := requireID(what, id); err != nil {
		return err
	}
	s, err := g.session(cmd)
	if err != nil {
		return err
	}
	var raw json.RawMessage
	if err := s.client.Do(cmd.Context(), http.MethodGet, path+"/"+url.PathEscape(id), nil, &raw); err != nil {
		return err
	}
	return show(s, raw, fields)
}

// remove deletes the resource id of the collection at path. Deletion has
// no answer body, so json and yaml print nothing: the exit status says it.
func remove(cmd *cobra.Command, g *globals, what, path, id string) error {
	if err := requireID(what, id); err != nil {
		return err
	}
	s, err := g.session(cmd)
	if err != nil {
		return err
	}
	if err := s.client.Do(cmd.Context(), http.MethodDelete, path+"/"+url.PathEscape(id), nil, nil); err != nil {
		return err
	}
	if s.format == formatHuman {
		_, err = fmt.Fprintf(s.out, "Deleted %s %q.\n", what, id)
	}
	return err
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
