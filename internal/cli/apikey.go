package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/mothership-dev/mothership/internal/api"
)

// secretWarning goes to stderr, so that stdout stays the key alone for a
// script, while a person still sees it.
const secretWarning = "Save the API key and secret now: the secret is shown only once and cannot be retrieved later.\n"

// resourceCloud is --resource for a cloud key.
const resourceCloud = "cloud"

func newAPIKeyCmd(cfg Config) *cobra.Command {
	cmd := group(&cobra.Command{
		Use:   "api-key",
		Short: "Manage API keys",
		Long: `Manage API keys. A key for a Kafka cluster (--resource lkc-…) is that
cluster's SASL credential: its clients sign in with the key as username and
the secret as password, with sasl.mechanism PLAIN (as with Confluent Cloud)
or SCRAM-SHA-512, over SASL_SSL (the endpoint's certificate is the
installation's CA's; see kafka cluster describe); kafka topic and kafka
acl sign in to the cluster's REST endpoint with it. A cloud key
(--resource cloud) calls this API.

The current context keeps cluster keys and their secrets: api-key create
stores the keys it makes for a cluster, api-key store stores one made
elsewhere, api-key use chooses the one kafka topic and kafka acl use.
`,
	})
	g := addGlobals(cmd, cfg)
	keys := completeFrom(g, apiKeysPath, nil, func(k api.APIKey) (string, string) {
		return k.ID, strings.TrimSpace(k.Spec.DisplayName + " " + resourceOf(k))
	})
	resources := func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		ids, dir := completeClusters(g)(cmd, args, toComplete)
		return append(ids, resourceCloud), dir
	}
	cmd.AddCommand(newAPIKeyCreateCmd(g, resources), newAPIKeyListCmd(g, resources),
		&cobra.Command{
			Use:               "describe ID",
			Short:             "Describe an API key (never its secret)",
			Args:              cobra.ExactArgs(1),
			ValidArgsFunction: upTo(1, keys),
			RunE: g.run(func(cmd *cobra.Command, s *session, args []string) error {
				return describe(cmd.Context(), s, "API key", apiKeysPath, args[0], apiKeyView)
			}),
		},
		newAPIKeyUpdateCmd(g, keys), newAPIKeyStoreCmd(g, resources), newAPIKeyUseCmd(g, keys, resources),
		deleteCmd(g, "API key", "Delete API keys",
			"Delete API keys; the context forgets the ones it stored.", keys, apiKeysPath),
	)
	return cmd
}

// apiKeyCreated is a new key as confluent's api-key create prints it with
// -o json.
type apiKeyCreated struct {
	APIKey    string `json:"api_key"`
	APISecret string `json:"api_secret"`
}

func newAPIKeyCreateCmd(g *globals, resources cobra.CompletionFunc) *cobra.Command {
	var resource, name, description string
	var use bool
	cmd := &cobra.Command{
		Use:   "create --resource lkc-…|cloud",
		Short: "Create an API key",
		Long: `Create an API key for a Kafka cluster (--resource lkc-…) or this API
(--resource cloud). The secret is shown once. A cluster's key and its
secret are stored in the current context too, and --use makes it the one
kafka topic and kafka acl sign in with.`,
		Example: "  mothership api-key create --resource lkc-abc123 --description \"orders service\" --use",
		Args:    cobra.NoArgs,
		RunE: g.run(func(cmd *cobra.Command, s *session, _ []string) error {
			if resource == "" {
				return fmt.Errorf("--resource is required: a Kafka cluster ID (lkc-…) or cloud")
			}
			isCluster := strings.HasPrefix(resource, "lkc-")
			if use && !isCluster {
				return fmt.Errorf("--use applies to a Kafka cluster's key, not --resource %s", resource)
			}
			if use {
				if _, err := s.writable(); err != nil {
					return err
				}
			}
			body := api.APIKeyCreate{Spec: api.APIKeySpec{Resource: &api.ObjectReference{ID: resource}, DisplayName: name, Description: description}}
			var k api.APIKey
			if err := s.client.Do(cmd.Context(), http.MethodPost, apiKeysPath, body, &k); err != nil {
				return err
			}
			if _, err := fmt.Fprint(s.errOut, secretWarning); err != nil {
				return err
			}
			err := apiKeyCreatedView.print(s, k)
			if isCluster && s.ctx != nil {
				stored := s.ctx.keysOf(resource)
				stored.APIKeys[k.ID] = k.Spec.Secret
				if use {
					stored.APIKey = k.ID
				}
				err = errors.Join(err, s.save())
			}
			return err
		}),
	}
	cmd.Flags().StringVar(&resource, "resource", "", "what the key is for: a Kafka cluster ID (lkc-…) or cloud")
	cmd.Flags().StringVar(&name, "name", "", "display name of the key")
	cmd.Flags().StringVar(&description, "description", "", "description of the key")
	cmd.Flags().BoolVar(&use, "use", false, "use the new key for its cluster in the current context (as api-key use)")
	mustComplete(cmd, "resource", resources)
	return cmd
}

var apiKeyCreatedView = view[api.APIKey]{
	fields: func(_ *session, k api.APIKey) []field {
		return []field{{"API Key", k.ID}, {"API Secret", k.Spec.Secret}, {"Resource", resourceOf(k)}}
	},
	flat: func(_ *session, k api.APIKey) any { return apiKeyCreated{APIKey: k.ID, APISecret: k.Spec.Secret} },
}

func newAPIKeyListCmd(g *globals, resources cobra.CompletionFunc) *cobra.Command {
	var resource string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the API keys",
		Long:  "List the API keys, or with --resource those of one Kafka cluster (lkc-…) or the cloud keys (cloud).",
		Args:  cobra.NoArgs,
		RunE: g.run(func(cmd *cobra.Command, s *session, _ []string) error {
			items, err := listAll(cmd.Context(), s.client, apiKeysPath, nil)
			if err != nil {
				return err
			}
			var keys []api.APIKey
			for _, raw := range items {
				var k api.APIKey
				if err := json.Unmarshal(raw, &k); err != nil {
					return fmt.Errorf("decoding the answer: %w", err)
				}
				if resource == "" || resourceOf(k) == resource {
					keys = append(keys, k)
				}
			}
			return apiKeyView.printList(s, keys)
		}),
	}
	cmd.Flags().StringVar(&resource, "resource", "", "list only the keys of this Kafka cluster ID (lkc-…), or the cloud keys (cloud)")
	mustComplete(cmd, "resource", resources)
	return cmd
}

func newAPIKeyUpdateCmd(g *globals, keys cobra.CompletionFunc) *cobra.Command {
	var name, description string
	cmd := &cobra.Command{
		Use:               "update ID",
		Short:             "Change an API key's name or description",
		Long:              "Change an API key's name (--name) or description (--description); what the key grants does not change.",
		Example:           "  mothership api-key update ABCDEFGHIJKLMNOP --description \"the CI's key\"",
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: upTo(1, keys),
		RunE: g.run(func(cmd *cobra.Command, s *session, args []string) error {
			if err := requireID("API key", args[0]); err != nil {
				return err
			}
			var body api.APIKeyUpdate
			if cmd.Flags().Changed("name") {
				body.Spec.DisplayName = &name
			}
			if cmd.Flags().Changed("description") {
				body.Spec.Description = &description
			}
			if body.Spec.DisplayName == nil && body.Spec.Description == nil {
				return errors.New("nothing to update: pass --name or --description")
			}
			var raw json.RawMessage
			if err := s.client.Do(cmd.Context(), http.MethodPatch, apiKeysPath+"/"+url.PathEscape(args[0]), body, &raw); err != nil {
				return err
			}
			return apiKeyView.show(s, raw)
		}),
	}
	cmd.Flags().StringVar(&name, "name", "", "new display name of the key")
	cmd.Flags().StringVar(&description, "description", "", "new description of the key")
	return cmd
}

func newAPIKeyStoreCmd(g *globals, resources cobra.CompletionFunc) *cobra.Command {
	var resource string
	var force bool
	cmd := &cobra.Command{
		Use:   "store KEY SECRET",
		Short: "Store a cluster's API key and secret in the current context",
		Long: `Store an API key of a Kafka cluster and its secret in the current context,
for api-key use to choose (api-key create stores the keys it makes
itself). The cluster is --resource, else the key's own, which the API
tells. SECRET - reads the secret from the input's first line, so that it
stays out of the shell's history. A key stored already with another
secret is replaced only with --force.`,
		Example: "  mothership api-key store ABCDEFGHIJKLMNOP - --resource lkc-abc123 < secret.txt",
		Args:    cobra.ExactArgs(2),
		RunE: g.run(func(cmd *cobra.Command, s *session, args []string) error {
			key, secret := args[0], args[1]
			ctx, err := s.writable()
			if err != nil {
				return err
			}
			if secret == "-" {
				line, err := bufio.NewReader(s.in).ReadString('\n')
				if secret = strings.TrimSpace(line); secret == "" {
					if err == nil {
						err = errors.New("the first line is empty")
					}
					return fmt.Errorf("reading the secret from the input: %w", err)
				}
			}
			cluster, err := s.keyCluster(cmd.Context(), key, resource)
			if err != nil {
				return err
			}
			stored := ctx.keysOf(cluster)
			if old, ok := stored.APIKeys[key]; ok && old != secret && !force {
				return fmt.Errorf("API key %q is stored already with another secret; pass --force to replace it", key)
			}
			stored.APIKeys[key] = secret
			if err := s.save(); err != nil {
				return err
			}
			return s.say("Stored API key %q for Kafka cluster %q in context %q.\n", key, cluster, s.name)
		}),
	}
	cmd.Flags().StringVar(&resource, "resource", "", "the Kafka cluster ID (lkc-…) of the key (default the key's own)")
	cmd.Flags().BoolVar(&force, "force", false, "replace the secret of a key stored already")
	mustComplete(cmd, "resource", resources)
	return cmd
}

func newAPIKeyUseCmd(g *globals, keys, resources cobra.CompletionFunc) *cobra.Command {
	var resource string
	cmd := &cobra.Command{
		Use:   "use KEY",
		Short: "Use a stored API key for its cluster",
		Long: `Make a stored API key (api-key create or store) the one kafka topic and
kafka acl sign in to its cluster with. The cluster is --resource, else the
key's own, which the API tells.`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: upTo(1, keys),
		RunE: g.run(func(cmd *cobra.Command, s *session, args []string) error {
			ctx, err := s.writable()
			if err != nil {
				return err
			}
			cluster, err := s.keyCluster(cmd.Context(), args[0], resource)
			if err != nil {
				return err
			}
			stored := ctx.keysOf(cluster)
			if _, ok := stored.APIKeys[args[0]]; !ok {
				return fmt.Errorf("API key %q is not stored in context %q: store it with its secret first (mothership api-key store %s SECRET)",
					args[0], s.name, args[0])
			}
			stored.APIKey = args[0]
			if err := s.save(); err != nil {
				return err
			}
			return s.say("Using API key %q for Kafka cluster %q in context %q.\n", args[0], cluster, s.name)
		}),
	}
	cmd.Flags().StringVar(&resource, "resource", "", "the Kafka cluster ID (lkc-…) of the key (default the key's own)")
	mustComplete(cmd, "resource", resources)
	return cmd
}

// keyCluster returns the Kafka cluster a key belongs to, as the API tells
// it; resource, if given, must be it.
func (s *session) keyCluster(ctx context.Context, key, resource string) (string, error) {
	if err := requireID("API key", key); err != nil {
		return "", err
	}
	var k api.APIKey
	if err := s.client.Do(ctx, http.MethodGet, apiKeysPath+"/"+url.PathEscape(key), nil, &k); err != nil {
		return "", err
	}
	own := resourceOf(k)
	switch {
	case !strings.HasPrefix(own, "lkc-"):
		return "", fmt.Errorf("API key %q is a %s key, not a Kafka cluster's", key, own)
	case resource != "" && resource != own:
		return "", fmt.Errorf("API key %q belongs to Kafka cluster %s, not --resource %s", key, own, resource)
	}
	return own, nil
}

// apiKeyOut is a key as confluent's api-key list and describe print it
// with -o json.
type apiKeyOut struct {
	IsCurrent    bool   `json:"is_current,omitempty"`
	Key          string `json:"key"`
	Name         string `json:"name,omitempty"`
	Description  string `json:"description"`
	OwnerID      string `json:"owner_id"`
	ResourceType string `json:"resource_type"`
	Resource     string `json:"resource"`
	Created      string `json:"created"`
}

// inUse reports whether k is the key the context uses for its cluster.
func (s *session) inUse(k api.APIKey) bool {
	if s.ctx == nil {
		return false
	}
	stored := s.ctx.KafkaClusters[resourceOf(k)]
	return stored != nil && stored.APIKey == k.ID
}

var apiKeyView = view[api.APIKey]{
	fields: func(_ *session, k api.APIKey) []field {
		return []field{{"Key", k.ID}, {"Name", k.Spec.DisplayName}, {"Description", k.Spec.Description},
			{"Owner", ownerOf(k)}, {"Resource", resourceOf(k)}, {"Created", created(k.Metadata)}}
	},
	header: []string{"Current", "Key", "Name", "Description", "Owner", "Resource", "Created"},
	row: func(s *session, k api.APIKey) []string {
		return []string{current(s.inUse(k)), k.ID, k.Spec.DisplayName, k.Spec.Description, ownerOf(k), resourceOf(k), created(k.Metadata)}
	},
	flat: func(s *session, k api.APIKey) any {
		out := apiKeyOut{IsCurrent: s.inUse(k), Key: k.ID, Name: k.Spec.DisplayName, Description: k.Spec.Description, OwnerID: ownerOf(k),
			ResourceType: resourceCloud, Created: created(k.Metadata)}
		if r := resourceOf(k); r != resourceCloud && r != "" {
			out.ResourceType, out.Resource = "kafka", r
		}
		return out
	},
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
