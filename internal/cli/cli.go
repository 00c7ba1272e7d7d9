// Package cli holds the client verbs of the mothership binary (environment,
// kafka cluster, api-key) in the shape of Confluent's confluent CLI, over
// Mothership's REST API, which follows Confluent Cloud's API shapes.
//
// The CLI talks to the API over HTTP only and imports nothing of Mothership
// but the REST types of internal/api, so it sees the system exactly as any
// other client does. The parsing of arguments and of the credentials file
// is in pure functions (ParseClusterCreate, ParseClusterUpdate,
// ParseCredentials) so that it can be fuzzed without a server.
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
// environment.
type Config struct {
	// LookupEnv reads an environment variable (default os.LookupEnv). Tests
	// set it so that they need no process-wide state.
	LookupEnv func(key string) (string, bool)
}

// Commands returns the client verbs, for the root command to add. Each
// carries the client flags (--url, --api-key, --api-secret,
// --credentials-file, -o) itself, because the server verbs of the same
// binary (dev, broker) have no use for them.
func Commands(cfg Config) []*cobra.Command {
	if cfg.LookupEnv == nil {
		cfg.LookupEnv = os.LookupEnv
	}
	return []*cobra.Command{newEnvironmentCmd(cfg), newKafkaCmd(cfg), newAPIKeyCmd(cfg)}
}

// clientHelp is the part of every client verb's help that says where the
// API and the credentials come from.
const clientHelp = `The API is at --url (env MOTHERSHIP_URL, default ` + DefaultURL + `).
Requests authenticate with HTTP Basic using a cloud API key and its secret,
taken from the first of:
  --api-key and --api-secret
  --credentials-file PATH
  MOTHERSHIP_API_KEY and MOTHERSHIP_API_SECRET
  MOTHERSHIP_CREDENTIALS_FILE
A credentials file holds one line KEY:SECRET; ` + "`mothership dev`" + ` writes
one for the admin at DATA_DIR/admin-credentials, so against a dev system:
  mothership environment list --credentials-file mothership-data/admin-credentials`

// globals are the client flags of one top-level verb.
type globals struct {
	cfg                                 Config
	fs                                  *pflag.FlagSet
	url, key, secret, credsFile, output string
}

// addGlobals adds the client flags to cmd as persistent flags, so every
// subcommand has them.
func addGlobals(cmd *cobra.Command, cfg Config) *globals {
	g := &globals{cfg: cfg, fs: cmd.PersistentFlags()}
	g.fs.StringVar(&g.url, "url", DefaultURL, "base URL of the Mothership API (env "+envURL+")")
	g.fs.StringVar(&g.key, "api-key", "", "cloud API key (env "+envAPIKey+")")
	g.fs.StringVar(&g.secret, "api-secret", "", "secret of --api-key (env "+envAPISecret+")")
	g.fs.StringVar(&g.credsFile, "credentials-file", "",
		"`PATH` of a file of one line KEY:SECRET, like DATA_DIR/admin-credentials that mothership dev writes (env "+envCredentialsFile+")")
	g.fs.StringVarP(&g.output, "output", "o", string(formatHuman), "output format: human, json or yaml")
	cmd.Long += "\n" + clientHelp
	return g
}

// session is what a command's run needs: a client with credentials, the
// output format and where output goes.
type session struct {
	client *Client
	format format
	out    io.Writer
	errOut io.Writer
}

// session resolves the client flags against the environment. It runs
// before any request, so a missing credential or a bad -o fails before
// anything changes on the server.
func (g *globals) session(cmd *cobra.Command) (*session, error) {
	f, err := parseFormat(g.output)
	if err != nil {
		return nil, err
	}
	key, secret, err := g.credentials()
	if err != nil {
		return nil, err
	}
	base, _ := g.setting("url", envURL)
	c, err := NewClient(base, key, secret)
	if err != nil {
		return nil, err
	}
	return &session{client: c, format: f, out: cmd.OutOrStdout(), errOut: cmd.ErrOrStderr()}, nil
}

// setting returns a client flag's value: the flag if given, else its
// environment variable if set and not empty, else the flag's default.
func (g *globals) setting(name, env string) (value string, fromFlag bool) {
	f := g.fs.Lookup(name)
	if f.Changed {
		return f.Value.String(), true
	}
	if v, ok := g.cfg.LookupEnv(env); ok && v != "" {
		return v, false
	}
	return f.Value.String(), false
}

// errNoCredentials names every way to pass credentials, since the user
// who sees it has tried none of them.
var errNoCredentials = errors.New("no API credentials: pass --api-key and --api-secret or --credentials-file, " +
	"or set " + envAPIKey + " and " + envAPISecret + " or " + envCredentialsFile +
	" (`mothership dev` writes DATA_DIR/admin-credentials)")

// credentials picks the API key and secret. A command-line flag beats an
// environment variable; among equals, an explicit key and secret beat a
// credentials file.
func (g *globals) credentials() (key, secret string, err error) {
	key, keyFlag := g.setting("api-key", envAPIKey)
	secret, secretFlag := g.setting("api-secret", envAPISecret)
	file, fileFlag := g.setting("credentials-file", envCredentialsFile)
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
