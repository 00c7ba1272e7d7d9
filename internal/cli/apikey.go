package cli

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/spf13/cobra"

	"github.com/mothership-dev/mothership/internal/api"
)

// secretWarning goes to stderr, so that stdout stays the key alone for a
// script, while a person still sees it.
const secretWarning = "Save the API key and secret now: the secret is shown only once and cannot be retrieved later.\n"

func newAPIKeyCmd(cfg Config) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "api-key",
		Short: "Manage API keys",
		Long: `Manage API keys. A key for a Kafka cluster (--resource lkc-…) is that
cluster's SASL credential: its clients sign in with the key as username and
the secret as password, with sasl.mechanism PLAIN (as with Confluent Cloud)
or SCRAM-SHA-512, over SASL_SSL (the endpoint's certificate is the
installation's CA's; see kafka cluster describe). A cloud key (--resource
cloud) calls this API.
`,
	}
	g := addGlobals(cmd, cfg)
	var resource, name, description string
	create := &cobra.Command{
		Use:     "create",
		Short:   "Create an API key",
		Example: "  mothership api-key create --resource lkc-abc123 --description \"orders service\"",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if resource == "" {
				return fmt.Errorf("--resource is required: a Kafka cluster ID (lkc-…) or cloud")
			}
			s, err := g.session(cmd)
			if err != nil {
				return err
			}
			body := api.APIKeyCreate{Spec: api.APIKeySpec{Resource: &api.ObjectReference{ID: resource}, DisplayName: name, Description: description}}
			var raw json.RawMessage
			if err := s.client.Do(cmd.Context(), http.MethodPost, apiKeysPath, body, &raw); err != nil {
				return err
			}
			if _, err := fmt.Fprint(s.errOut, secretWarning); err != nil {
				return err
			}
			return show(s, raw, func(k api.APIKey) []field {
				return []field{{"API Key", k.ID}, {"API Secret", k.Spec.Secret}, {"Resource", resourceOf(k)}}
			})
		},
	}
	create.Flags().StringVar(&resource, "resource", "", "what the key is for: a Kafka cluster ID (lkc-…) or cloud")
	create.Flags().StringVar(&name, "name", "", "display name of the key")
	create.Flags().StringVar(&description, "description", "", "description of the key")

	cmd.AddCommand(create,
		&cobra.Command{
			Use:   "list",
			Short: "List the API keys",
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				s, err := g.session(cmd)
				if err != nil {
					return err
				}
				items, err := listAll(cmd.Context(), s.client, apiKeysPath, nil)
				if err != nil {
					return err
				}
				return showList(s, items, []string{"Key", "Name", "Description", "Owner", "Resource", "Created"}, func(k api.APIKey) []string {
					return []string{k.ID, k.Spec.DisplayName, k.Spec.Description, ownerOf(k), resourceOf(k), created(k.Metadata)}
				})
			},
		},
		&cobra.Command{
			Use:   "describe ID",
			Short: "Describe an API key (never its secret)",
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				return describe(cmd, g, "API key", apiKeysPath, args[0], func(k api.APIKey) []field {
					return []field{{"Key", k.ID}, {"Name", k.Spec.DisplayName}, {"Description", k.Spec.Description},
						{"Owner", ownerOf(k)}, {"Resource", resourceOf(k)}, {"Created", created(k.Metadata)}}
				})
			},
		},
		&cobra.Command{
			Use:   "delete ID",
			Short: "Delete an API key",
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				return remove(cmd, g, "API key", apiKeysPath, args[0])
			},
		},
	)
	return cmd
}

func resourceOf(k api.APIKey) string {
	if k.Spec.Resource == nil {
		return ""
	}
	return k.Spec.Resource.ID
}

func ownerOf(k api.APIKey) string {
	if k.Spec.Owner == nil {
		return ""
	}
	return k.Spec.Owner.ID
}

func created(m api.Metadata) string {
	if m.CreatedAt == nil {
		return ""
	}
	return m.CreatedAt.Format(time.RFC3339)
}
