package cli

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"

	"github.com/spf13/cobra"
)

func newLoginCmd(cfg Config) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "login",
		Short: "Log in to a Mothership API: save its URL and a cloud API key in a context",
		Long: `Log in to a Mothership API: check a cloud API key against it, then save the
URL and the key in a context of the config file (mode 0600) and make it
the current context, so that later commands need no credentials flags.

The URL is --url (env MOTHERSHIP_URL, default ` + DefaultURL + `). The key and
secret are taken from the first of --api-key and --api-secret,
--credentials-file PATH, MOTHERSHIP_API_KEY and MOTHERSHIP_API_SECRET,
MOTHERSHIP_CREDENTIALS_FILE. The secret is never printed.

The context is named --context, else KEY@HOST. Logging in again to the
same context keeps its environment, cluster and stored cluster keys if
the URL is the same.
` + configHelp,
		Example: `  mothership login --credentials-file ~/.local/share/mothership/dev/admin-credentials
  mothership login --url https://mothership.example.com --api-key KEY --api-secret SECRET --context prod`,
		Args: cobra.NoArgs,
	}
	g := addLocalGlobals(cmd, cfg)
	g.fs.Lookup("context").Usage = "`NAME` of the context to save (default KEY@HOST)"
	g.fs.StringVar(&g.url, "url", DefaultURL, "base URL of the Mothership API (env "+envURL+")")
	g.fs.StringVar(&g.key, "api-key", "", "cloud API key (env "+envAPIKey+")")
	g.fs.StringVar(&g.secret, "api-secret", "", "secret of --api-key (env "+envAPISecret+")")
	g.fs.StringVar(&g.credsFile, "credentials-file", "", "`PATH` of a file of one line KEY:SECRET (env "+envCredentialsFile+")")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		name := g.context
		g.context = "" // the context to make, not one to read
		s, err := g.open(cmd)
		if err != nil {
			return err
		}
		if s.confPath == "" {
			return s.confErr
		}
		base, _, _ := g.setting("url", envURL)
		key, secret, err := g.credentials()
		if err != nil {
			return err
		}
		c, err := NewClient(base, key, secret)
		if err != nil {
			return err
		}
		// Any role may list environments (the list is what it may see):
		// the request checks the key and secret and nothing else.
		if err := c.Do(cmd.Context(), http.MethodGet, environmentsPath+"?page_size=1", nil, nil); err != nil {
			return fmt.Errorf("logging in to %s as %s: %w", c.base, key, err)
		}
		if name == "" {
			name = key + "@" + c.base.Host
		}
		if err := validContextName(name); err != nil {
			return err
		}
		ctx := s.conf.Contexts[name]
		if ctx == nil || !sameURL(ctx.URL, c.base.String()) {
			ctx = &cliContext{}
			s.conf.Contexts[name] = ctx
		}
		ctx.URL, ctx.APIKey, ctx.APISecret = c.base.String(), key, secret
		s.conf.CurrentContext = name
		if err := saveConfig(s.confPath, s.conf); err != nil {
			return err
		}
		_, err = fmt.Fprintf(s.errOut, "Logged in to %s as %s; context %q is current (%s).\n", c.base, key, name, s.confPath)
		return err
	}
	return cmd
}

func newLogoutCmd(cfg Config) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "logout",
		Short: "Forget the current context",
		Long: `Forget the current context (or --context NAME): its URL, cloud key and
secret, and the cluster keys stored in it. Nothing changes on the server.
` + configHelp,
		Args: cobra.NoArgs,
	}
	g := addLocalGlobals(cmd, cfg)
	cmd.RunE = g.runLocal(func(cmd *cobra.Command, s *session, _ []string) error {
		if s.name == "" {
			return errors.New("not logged in: there is no current context")
		}
		_, err := deleteAll(cmd.Context(), s, "context", []string{s.name}, true, contextDeleter(s))
		return err
	})
	return cmd
}

// contextDeleter deletes contexts of the config file.
func contextDeleter(s *session) deleter {
	return deleter{
		exists: func(_ context.Context, name string) error {
			if s.conf.Contexts[name] == nil {
				return errors.New("no such context")
			}
			return nil
		},
		del: func(_ context.Context, name string) error {
			if s.conf.Contexts[name] == nil {
				return errors.New("no such context")
			}
			delete(s.conf.Contexts, name)
			if s.conf.CurrentContext == name {
				s.conf.CurrentContext = ""
			}
			return s.save()
		},
	}
}

// contextOut is a context as context list and describe print it with -o
// json: never its secrets.
type contextOut struct {
	IsCurrent    bool   `json:"is_current"`
	Name         string `json:"name"`
	URL          string `json:"url"`
	APIKey       string `json:"api_key"`
	Environment  string `json:"environment"`
	KafkaCluster string `json:"kafka_cluster"`
}

var contextView = view[contextOut]{
	fields: func(_ *session, c contextOut) []field {
		return []field{{"Current", fmt.Sprint(c.IsCurrent)}, {"Name", c.Name}, {"URL", c.URL}, {"API Key", c.APIKey},
			{"Environment", c.Environment}, {"Kafka Cluster", c.KafkaCluster}}
	},
	header: []string{"Current", "Name", "URL", "API Key", "Environment", "Kafka Cluster"},
	row: func(_ *session, c contextOut) []string {
		return []string{current(c.IsCurrent), c.Name, c.URL, c.APIKey, c.Environment, c.KafkaCluster}
	},
	flat: func(_ *session, c contextOut) any { return c },
}

// contextOf describes the context name.
func (s *session) contextOf(name string) contextOut {
	c := s.conf.Contexts[name]
	return contextOut{IsCurrent: name == s.conf.CurrentContext, Name: name, URL: c.URL, APIKey: c.APIKey,
		Environment: c.Environment, KafkaCluster: c.KafkaCluster}
}

func newContextCmd(cfg Config) *cobra.Command {
	cmd := group(&cobra.Command{
		Use:   "context",
		Short: "Manage the contexts of the config file",
		Long: `Manage the contexts login saves: each an API, a cloud key, and the
environment, Kafka cluster and cluster keys in use against it. Commands
use the current context; --context NAME picks another for one command.
` + configHelp + "\n",
	})
	g := addLocalGlobals(cmd, cfg)
	names := func(cmd *cobra.Command, args []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
		s, err := g.open(cmd)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var out []cobra.Completion
		for _, n := range s.conf.names() {
			if !slices.Contains(args, n) {
				out = append(out, cobra.CompletionWithDesc(n, s.conf.Contexts[n].URL))
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
	var force bool
	del := &cobra.Command{
		Use:               "delete NAME...",
		Short:             "Delete contexts",
		Long:              "Delete contexts, with the keys and secrets stored in them; nothing changes on the server.\n" + deleteHelp,
		Args:              cobra.MinimumNArgs(1),
		ValidArgsFunction: names,
		RunE: g.runLocal(func(cmd *cobra.Command, s *session, args []string) error {
			_, err := deleteAll(cmd.Context(), s, "context", args, force, contextDeleter(s))
			return err
		}),
	}
	del.Flags().BoolVar(&force, "force", false, "delete without asking for confirmation")
	cmd.AddCommand(
		&cobra.Command{
			Use:   "list",
			Short: "List the contexts",
			Args:  cobra.NoArgs,
			RunE: g.runLocal(func(cmd *cobra.Command, s *session, _ []string) error {
				out := []contextOut{}
				for _, n := range s.conf.names() {
					out = append(out, s.contextOf(n))
				}
				return contextView.printList(s, out)
			}),
		},
		&cobra.Command{
			Use:               "describe [NAME]",
			Short:             "Describe a context (default: the current one), never its secrets",
			Args:              cobra.MaximumNArgs(1),
			ValidArgsFunction: upTo(1, names),
			RunE: g.runLocal(func(cmd *cobra.Command, s *session, args []string) error {
				name := s.name
				if len(args) > 0 {
					name = args[0]
				}
				if s.conf.Contexts[name] == nil {
					return noContext(name)
				}
				return contextView.print(s, s.contextOf(name))
			}),
		},
		&cobra.Command{
			Use:               "use NAME",
			Short:             "Make a context the current one",
			Args:              cobra.ExactArgs(1),
			ValidArgsFunction: upTo(1, names),
			RunE: g.runLocal(func(cmd *cobra.Command, s *session, args []string) error {
				if s.conf.Contexts[args[0]] == nil {
					return noContext(args[0])
				}
				s.conf.CurrentContext = args[0]
				if err := s.save(); err != nil {
					return err
				}
				return s.say("Using context %q (%s).\n", args[0], s.conf.Contexts[args[0]].URL)
			}),
		},
		del,
	)
	return cmd
}

// noContext says a context is not there.
func noContext(name string) error {
	if name == "" {
		return errors.New("no current context: log in with `mothership login`, or name one (see mothership context list)")
	}
	return fmt.Errorf("no context %q: see mothership context list", name)
}
