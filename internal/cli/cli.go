// Package cli holds the client verbs of the mothership binary (login,
// logout, context, environment, kafka cluster, kafka region, kafka topic,
// kafka acl, api-key) in the shape of Confluent's confluent CLI, over
// Mothership's REST API, which follows Confluent Cloud's API shapes, and
// each cluster's Kafka REST v3.
//
// The CLI talks to the API over HTTP only and imports nothing of Mothership
// but the REST types of internal/api, so it sees the system exactly as any
// other client does. Its config file (config.go) keeps contexts, as
// confluent's does. The parsing of arguments, of the credentials file and
// of the config file is in pure functions (ParseClusterCreate,
// ParseClusterUpdate, ParseCredentials, ParseACLs, ParseACLFilter,
// ParseTopicConfigs, parseConfig) so that it can be fuzzed without a
// server.
package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// DefaultURL is where `mothership dev` serves the API by default, so the
// two work together without flags.
const DefaultURL = "http://127.0.0.1:8080"

// The environment variables of the client flags; a flag given on the
// command line wins over its variable.
const (
	envURL             = "MOTHERSHIP_URL"
	envAPIKey          = "MOTHERSHIP_API_KEY"
	envAPISecret       = "MOTHERSHIP_API_SECRET"
	envCredentialsFile = "MOTHERSHIP_CREDENTIALS_FILE"
)

// maxCredentialsFile bounds the read of the credentials file: the file is
// one short line, and a wrong path (say /dev/zero) must not hang the CLI.
const maxCredentialsFile = 4 << 10

// Config configures the commands. The zero value reads the process's
// environment; confirmations are read from the command's input
// (cobra.Command.SetIn, os.Stdin by default).
type Config struct {
	// LookupEnv reads an environment variable (default os.LookupEnv). Tests
	// set it so that they need no process-wide state: the config file's
	// place comes from it too (MOTHERSHIP_CONFIG, XDG_CONFIG_HOME, HOME).
	LookupEnv func(key string) (string, bool)
}

// Commands returns the client verbs, for the root command to add. Each
// carries the client flags (--url, --api-key, --api-secret,
// --credentials-file, --context, -o) itself, because the server verbs of
// the same binary (dev, broker) have no use for them.
func Commands(cfg Config) []*cobra.Command {
	if cfg.LookupEnv == nil {
		cfg.LookupEnv = os.LookupEnv
	}
	return []*cobra.Command{newLoginCmd(cfg), newLogoutCmd(cfg), newContextCmd(cfg),
		newOrganizationCmd(cfg), newEnvironmentCmd(cfg), newKafkaCmd(cfg), newAPIKeyCmd(cfg), newBillingCmd(cfg), newAuditCmd(cfg), newFleetCmd(cfg)}
}

// clientHelp is the part of every client verb's help that says where the
// API and the credentials come from.
const clientHelp = `The API is at --url (env MOTHERSHIP_URL), else the current context's
(see login), else ` + DefaultURL + `.
Requests authenticate with HTTP Basic using a cloud API key and its secret,
taken from the first of:
  --api-key and --api-secret
  --credentials-file PATH
  MOTHERSHIP_API_KEY and MOTHERSHIP_API_SECRET
  MOTHERSHIP_CREDENTIALS_FILE
  the current context (mothership login; --context NAME picks another)
A credentials file holds one line KEY:SECRET; ` + "`mothership dev`" + ` writes
one for the admin at DATA_DIR/admin-credentials, so against a dev system:
  mothership login --credentials-file ~/.local/share/mothership/dev/admin-credentials
The context's environment and Kafka cluster (environment use, kafka
cluster use) are what commands default to; they apply only when the URL
is the context's own, and the context's key is never sent elsewhere.
` + configHelp

// globals are the client flags of one top-level verb.
type globals struct {
	cfg                                          Config
	fs                                           *pflag.FlagSet
	url, key, secret, credsFile, context, output string
}

// addGlobals adds the client flags to cmd as persistent flags, so every
// subcommand has them.
func addGlobals(cmd *cobra.Command, cfg Config) *globals {
	g := addLocalGlobals(cmd, cfg)
	g.fs.StringVar(&g.url, "url", "", "base URL of the Mothership API (env "+envURL+"; default the context's, else "+DefaultURL+")")
	g.fs.StringVar(&g.key, "api-key", "", "cloud API key (env "+envAPIKey+")")
	g.fs.StringVar(&g.secret, "api-secret", "", "secret of --api-key (env "+envAPISecret+")")
	g.fs.StringVar(&g.credsFile, "credentials-file", "",
		"`PATH` of a file of one line KEY:SECRET, like DATA_DIR/admin-credentials that mothership dev writes (env "+envCredentialsFile+")")
	cmd.Long += "\n" + clientHelp
	return g
}

// addLocalGlobals adds the flags of the verbs that only read and write
// the config file: --context and -o.
func addLocalGlobals(cmd *cobra.Command, cfg Config) *globals {
	g := &globals{cfg: cfg, fs: cmd.PersistentFlags()}
	g.fs.StringVar(&g.context, "context", "", "`NAME` of the context to use instead of the current one")
	g.fs.StringVarP(&g.output, "output", "o", string(formatHuman), "output format: human, json, yaml, or csv (billing cost list)")
	// csv is left out: only billing cost list prints it.
	mustComplete(cmd, "output", staticValues(string(formatHuman), string(formatJSON), string(formatYAML)))
	mustComplete(cmd, "context", func(cmd *cobra.Command, _ []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
		s, err := g.open(cmd)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		return s.conf.names(), cobra.ShellCompDirectiveNoFileComp
	})
	return g
}

// session is what a command's run needs: a client with credentials, the
// output format, where output goes and input comes from, and the config
// file with the context in effect.
type session struct {
	client *Client // nil for the verbs that call no API
	format format
	out    io.Writer
	errOut io.Writer
	in     io.Reader

	conf     *configFile
	confPath string // "" when the environment names no place, for the reason confErr
	confErr  error
	// name is the context chosen (--context or the current one), "" if
	// none; ctx is that context when it applies to the API called (its URL
	// is the context's), else nil.
	name string
	ctx  *cliContext
}

// open reads the output format and the config file, and chooses the
// context; it calls nothing.
func (g *globals) open(cmd *cobra.Command) (*session, error) {
	f, err := parseFormat(g.output)
	if err != nil {
		return nil, err
	}
	s := &session{format: f, out: cmd.OutOrStdout(), errOut: cmd.ErrOrStderr(), in: cmd.InOrStdin(),
		conf: &configFile{Contexts: map[string]*cliContext{}}}
	if s.confPath, s.confErr = configPath(g.cfg.LookupEnv); s.confErr == nil {
		if s.conf, err = loadConfig(s.confPath); err != nil {
			return nil, err
		}
	}
	s.name = s.conf.CurrentContext
	if g.context != "" {
		if s.conf.Contexts[g.context] == nil {
			return nil, fmt.Errorf("--context %q: no such context; see mothership context list", g.context)
		}
		s.name = g.context
	}
	s.ctx = s.conf.Contexts[s.name]
	return s, nil
}

// action is what a command does once its session is open.
type action func(cmd *cobra.Command, s *session, args []string) error

// run is the RunE of a command that calls the API: it opens the session
// (format, context, credentials), then does a.
func (g *globals) run(a action) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		s, err := g.session(cmd)
		if err != nil {
			return err
		}
		return a(cmd, s, args)
	}
}

// runLocal is the RunE of a command that only reads and writes the config
// file.
func (g *globals) runLocal(a action) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		s, err := g.open(cmd)
		if err != nil {
			return err
		}
		return a(cmd, s, args)
	}
}

// runREST is the RunE of a command that calls the Kafka REST v3 of the
// cluster f names.
func (g *globals) runREST(f *restFlags, a func(cmd *cobra.Command, s *session, rc *restClient, args []string) error) func(*cobra.Command, []string) error {
	return g.run(func(cmd *cobra.Command, s *session, args []string) error {
		rc, err := s.rest(cmd.Context(), *f)
		if err != nil {
			return err
		}
		return a(cmd, s, rc, args)
	})
}

// session resolves the client flags against the environment and the
// context. It runs before any request, so a missing credential or a bad
// -o fails before anything changes on the server.
func (g *globals) session(cmd *cobra.Command) (*session, error) {
	s, err := g.open(cmd)
	if err != nil {
		return nil, err
	}
	base, _, given := g.setting("url", envURL)
	switch {
	case s.ctx != nil && !given:
		base = s.ctx.URL
	case s.ctx != nil && !sameURL(base, s.ctx.URL):
		s.ctx = nil // another API: the context's key and choices are not its
	case !given:
		base = DefaultURL
	}
	key, secret, err := g.credentials()
	if errors.Is(err, errNoCredentials) && s.ctx != nil {
		key, secret, err = s.ctx.APIKey, s.ctx.APISecret, nil
	}
	if err != nil {
		return nil, err
	}
	if s.client, err = NewClient(base, key, secret); err != nil {
		return nil, err
	}
	return s, nil
}

// currentEnvironment is the context's environment, "" without one.
func (s *session) currentEnvironment() string {
	if s.ctx == nil {
		return ""
	}
	return s.ctx.Environment
}

// currentCluster is the context's Kafka cluster, "" without one.
func (s *session) currentCluster() string {
	if s.ctx == nil {
		return ""
	}
	return s.ctx.KafkaCluster
}

// environmentArg is the environment an optional ID argument names: the
// argument, else the context's environment.
func (s *session) environmentArg(args []string) (string, error) {
	if len(args) > 0 {
		return args[0], requireID("environment", args[0])
	}
	if id := s.currentEnvironment(); id != "" {
		return id, nil
	}
	return "", errors.New("no environment: pass its ID, or choose one with `mothership environment use ID`")
}

// clusterArg is the Kafka cluster an optional ID argument (or --cluster
// flag) names: the argument, else the context's cluster.
func (s *session) clusterArg(args []string) (string, error) {
	if len(args) > 0 && args[0] != "" {
		return args[0], nil
	}
	if id := s.currentCluster(); id != "" {
		return id, nil
	}
	return "", errors.New("no Kafka cluster: pass its ID (lkc-…), or choose one with `mothership kafka cluster use ID`")
}

// writable returns the context a command records a choice in, or says why
// there is none.
func (s *session) writable() (*cliContext, error) {
	switch {
	case s.name == "":
		return nil, errors.New("no context to remember it in: log in first with `mothership login` " +
			"(a context holds the API, its key, and the environment, cluster and keys in use)")
	case s.ctx == nil:
		return nil, fmt.Errorf("the context %q is for %s, not the --url or %s given: drop them, or log in to that API",
			s.name, s.conf.Contexts[s.name].URL, envURL)
	}
	return s.ctx, nil
}

// save writes the config file.
func (s *session) save() error {
	if s.confPath == "" {
		return s.confErr
	}
	return saveConfig(s.confPath, s.conf)
}

// say prints a message for a person: in the human format only, so that
// json and yaml output stays parseable.
func (s *session) say(format string, args ...any) error {
	if s.format != formatHuman {
		return nil
	}
	_, err := fmt.Fprintf(s.out, format, args...)
	return err
}

// group makes cmd a group of subcommands that refuses an unknown one (cobra
// otherwise prints the help and exits 0 for a command that does not run)
// and prints its help when given none.
func group(cmd *cobra.Command) *cobra.Command {
	cmd.Args = func(cmd *cobra.Command, args []string) error {
		if len(args) == 0 {
			return nil
		}
		msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
		if cmd.SuggestionsMinimumDistance <= 0 {
			cmd.SuggestionsMinimumDistance = 2 // as cobra's own for the root command
		}
		if sugg := cmd.SuggestionsFor(args[0]); len(sugg) > 0 {
			msg += "; did you mean " + strings.Join(sugg, " or ") + "?"
		}
		return errors.New(msg + "; see " + cmd.CommandPath() + " --help")
	}
	cmd.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
	return cmd
}

// sameURL reports whether two base URLs name the same API.
func sameURL(a, b string) bool {
	return strings.TrimRight(a, "/") == strings.TrimRight(b, "/")
}

// setting returns a client flag's value: the flag if given, else its
// environment variable if set and not empty, else the flag's default.
// given says it came from the flag or the variable.
func (g *globals) setting(name, env string) (value string, fromFlag, given bool) {
	f := g.fs.Lookup(name)
	if f.Changed {
		return f.Value.String(), true, true
	}
	if v, ok := g.cfg.LookupEnv(env); ok && v != "" {
		return v, false, true
	}
	return f.Value.String(), false, false
}

// errNoCredentials names every way to pass credentials, since the user
// who sees it has tried none of them.
var errNoCredentials = errors.New("no API credentials: pass --api-key and --api-secret or --credentials-file, " +
	"or set " + envAPIKey + " and " + envAPISecret + " or " + envCredentialsFile +
	" (`mothership dev` writes DATA_DIR/admin-credentials), or log in with `mothership login`")

// credentials picks the API key and secret from the flags and the
// environment. A command-line flag beats an environment variable; among
// equals, an explicit key and secret beat a credentials file.
func (g *globals) credentials() (key, secret string, err error) {
	key, keyFlag, _ := g.setting("api-key", envAPIKey)
	secret, secretFlag, _ := g.setting("api-secret", envAPISecret)
	file, fileFlag, _ := g.setting("credentials-file", envCredentialsFile)
	switch {
	case keyFlag || secretFlag || (!fileFlag && (key != "" || secret != "")):
		switch {
		case key == "":
			return "", "", fmt.Errorf("an API secret is set but no API key: pass --api-key or set %s", envAPIKey)
		case secret == "":
			return "", "", fmt.Errorf("an API key is set but not its secret: pass --api-secret or set %s", envAPISecret)
		}
		return key, secret, nil
	case file != "":
		return readCredentials(file)
	}
	return "", "", errNoCredentials
}

// readCredentials reads and parses a credentials file.
func readCredentials(path string) (key, secret string, err error) {
	f, err := os.Open(path)
	if err != nil {
		return "", "", fmt.Errorf("credentials file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxCredentialsFile+1))
	if err != nil {
		return "", "", fmt.Errorf("credentials file %s: %w", path, err)
	}
	if len(data) > maxCredentialsFile {
		return "", "", fmt.Errorf("credentials file %s: larger than %d bytes; want one line KEY:SECRET", path, maxCredentialsFile)
	}
	key, secret, err = ParseCredentials(data)
	if err != nil {
		return "", "", fmt.Errorf("credentials file %s: %w", path, err)
	}
	return key, secret, nil
}

// ParseCredentials parses the content of a credentials file: one line
// KEY:SECRET, surrounding white space and a UTF-8 byte order mark ignored.
// The key and the secret must be printable ASCII without spaces, as
// Mothership's are: anything else is a copy-and-paste accident better
// caught here than reported as a failed login. The errors never quote the
// content, since it holds a secret.
func ParseCredentials(data []byte) (key, secret string, err error) {
	s := strings.TrimSpace(strings.TrimPrefix(string(data), "\ufeff"))
	if s == "" {
		return "", "", errors.New("it is empty; want one line KEY:SECRET")
	}
	if strings.ContainsAny(s, "\r\n") {
		return "", "", errors.New("it holds more than one line; want one line KEY:SECRET")
	}
	key, secret, ok := strings.Cut(s, ":")
	if !ok {
		return "", "", errors.New("it has no colon; want one line KEY:SECRET")
	}
	if key == "" || secret == "" {
		return "", "", errors.New("the key or the secret is empty; want one line KEY:SECRET")
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return "", "", errors.New("the key and the secret must be printable ASCII without spaces")
		}
	}
	return key, secret, nil
}

// requireID refuses an empty ID, which would otherwise turn describe or
// delete into a request on the collection.
func requireID(what, id string) error {
	if id == "" {
		return fmt.Errorf("the %s ID must not be empty", what)
	}
	return nil
}
