package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// The config file holds contexts, as confluent's ~/.confluent/config.json
// does: each a Mothership API (URL, cloud API key and secret) and the
// choices made against it (the current environment and Kafka cluster, the
// cluster keys stored and the one in use for each cluster). It holds
// secrets, so it is written 0600 in a 0700 directory, and never partly:
// a temporary file is renamed over it.
const (
	envConfig        = "MOTHERSHIP_CONFIG"
	envXDGConfigHome = "XDG_CONFIG_HOME"
	envHome          = "HOME"
)

// maxConfigFile bounds the read of the config file: a wrong path (say
// /dev/zero) must not hang the CLI, and a thousand contexts fit easily.
const maxConfigFile = 4 << 20

// configHelp is the part of the help of the commands that read or write
// the config file that says where it is.
const configHelp = `The config file is $` + envConfig + `, else $` + envXDGConfigHome + `/mothership/config.json,
else ~/.config/mothership/config.json.`

// configFile is the content of the config file.
type configFile struct {
	CurrentContext string                 `json:"current_context,omitempty"`
	Contexts       map[string]*cliContext `json:"contexts"`
}

// cliContext is one context: an API, the cloud key that calls it, and the
// choices made against it.
type cliContext struct {
	URL       string `json:"url"`
	APIKey    string `json:"api_key"`
	APISecret string `json:"api_secret"`
	// Environment and KafkaCluster are what commands default to.
	Environment  string `json:"environment,omitempty"`
	KafkaCluster string `json:"kafka_cluster,omitempty"`
	// KafkaClusters holds, per cluster id, the cluster's keys stored with
	// api-key store (or made with api-key create) and the one in use.
	KafkaClusters map[string]*clusterKeys `json:"kafka_clusters,omitempty"`
}

// clusterKeys are the keys of one cluster a context holds.
type clusterKeys struct {
	// APIKey is the key in use (api-key use), which topic and ACL
	// commands sign in with.
	APIKey string `json:"api_key,omitempty"`
	// APIKeys maps each stored key to its secret.
	APIKeys map[string]string `json:"api_keys,omitempty"`
}

// configPath returns where the config file is, from the environment.
func configPath(lookup func(string) (string, bool)) (string, error) {
	if p, ok := lookup(envConfig); ok && p != "" {
		return p, nil
	}
	if d, ok := lookup(envXDGConfigHome); ok && d != "" {
		return filepath.Join(d, "mothership", "config.json"), nil
	}
	if h, ok := lookup(envHome); ok && h != "" {
		return filepath.Join(h, ".config", "mothership", "config.json"), nil
	}
	return "", fmt.Errorf("no place for the config file: set %s (a file path), %s or %s", envConfig, envXDGConfigHome, envHome)
}

// loadConfig reads the config file at path; a file that is not there is
// an empty config.
func loadConfig(path string) (*configFile, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &configFile{Contexts: map[string]*cliContext{}}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("config file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxConfigFile+1))
	if err != nil {
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	if len(data) > maxConfigFile {
		return nil, fmt.Errorf("config file %s: larger than %d bytes", path, maxConfigFile)
	}
	c, err := parseConfig(data)
	if err != nil {
		return nil, fmt.Errorf("config file %s: %w (fix it, or remove it and log in again)", path, err)
	}
	return c, nil
}

// parseConfig parses the content of the config file. Fields it does not
// know are ignored, so that an older CLI reads a newer one's file; a
// context without a URL, or a current context that is not there, is
// refused, as every command would trip on it. The errors never quote the
// content, since it holds secrets.
func parseConfig(data []byte) (*configFile, error) {
	var c configFile
	if err := json.Unmarshal(data, &c); err != nil {
		var syntax *json.SyntaxError
		if errors.As(err, &syntax) {
			return nil, fmt.Errorf("not JSON (at byte %d)", syntax.Offset)
		}
		return nil, errors.New("not the config file's JSON")
	}
	if c.Contexts == nil {
		c.Contexts = map[string]*cliContext{}
	}
	for name, ctx := range c.Contexts {
		if err := validContextName(name); err != nil {
			return nil, err
		}
		if ctx == nil || ctx.URL == "" {
			return nil, fmt.Errorf("context %q has no url", name)
		}
	}
	if c.CurrentContext != "" && c.Contexts[c.CurrentContext] == nil {
		return nil, fmt.Errorf("the current context %q is not among the contexts", c.CurrentContext)
	}
	return &c, nil
}

// validContextName refuses a name that could not be typed back.
func validContextName(name string) error {
	if name == "" || len(name) > 200 || strings.ContainsFunc(name, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return fmt.Errorf("context name %q: 1 to 200 characters, without spaces or control characters", oneLine(name, 50))
	}
	return nil
}

// saveConfig writes c to path atomically: a temporary file of mode 0600
// in the same directory (made 0700 if new) is renamed over it.
func saveConfig(path string, c *configFile) error {
	data, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".config-*.json")
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	defer os.Remove(tmp.Name()) // after the rename, there is nothing to remove
	err = tmp.Chmod(0o600)
	if err == nil {
		_, err = tmp.Write(append(data, '\n'))
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	return nil
}

// names returns the contexts' names, sorted.
func (c *configFile) names() []string {
	names := make([]string, 0, len(c.Contexts))
	for n := range c.Contexts {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// keysOf returns the keys the context holds for cluster, made on first
// use.
func (c *cliContext) keysOf(cluster string) *clusterKeys {
	if c.KafkaClusters == nil {
		c.KafkaClusters = map[string]*clusterKeys{}
	}
	k := c.KafkaClusters[cluster]
	if k == nil {
		k = &clusterKeys{}
		c.KafkaClusters[cluster] = k
	}
	if k.APIKeys == nil {
		k.APIKeys = map[string]string{}
	}
	return k
}

// forget removes every reference the context holds to the resources ids
// (deleted ones): the current environment or cluster, a cluster's stored
// keys, a stored key. It reports whether anything changed.
func (c *cliContext) forget(ids ...string) bool {
	changed := false
	for _, id := range ids {
		if c.Environment == id {
			c.Environment, c.KafkaCluster, changed = "", "", true
		}
		if c.KafkaCluster == id {
			c.KafkaCluster, changed = "", true
		}
		if _, ok := c.KafkaClusters[id]; ok {
			delete(c.KafkaClusters, id)
			changed = true
		}
		for _, k := range c.KafkaClusters {
			if _, ok := k.APIKeys[id]; ok {
				delete(k.APIKeys, id)
				changed = true
			}
			if k.APIKey == id {
				k.APIKey, changed = "", true
			}
		}
	}
	return changed
}
