package cli

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/spf13/cobra"

	"github.com/mothership-dev/mothership/internal/api"
)

// restHelp is the part of the help of the topic and ACL commands that says
// how they reach the cluster.
const restHelp = `
These commands call the cluster's Kafka REST v3 endpoint (kafka cluster
describe shows it as REST Endpoint) with an API key of the cluster:
--api-key and --api-secret (a stored key's secret may be left out), else
the key in use for the cluster in the current context (api-key create
--use, or api-key store and api-key use). The cluster is --cluster, else
the context's (kafka cluster use). The endpoint is asked of the API with
the cloud credentials (--credentials-file, MOTHERSHIP_API_KEY and
MOTHERSHIP_API_SECRET, MOTHERSHIP_CREDENTIALS_FILE or the context; here
--api-key and --api-secret are the cluster's key). An https endpoint is
trusted under exactly the installation's CA, which the API serves at
` + api.CAPath + `.
`

// restFlags are the flags that choose the cluster and its key.
type restFlags struct {
	cluster, key, secret string
}

// add declares the flags on cmd. --api-key and --api-secret are the
// cluster's key here, as in confluent's topic commands: they shadow the
// cloud key's flags of the kafka command.
func (f *restFlags) add(cmd *cobra.Command, clusters cobra.CompletionFunc) {
	cmd.Flags().StringVar(&f.cluster, "cluster", "", "Kafka cluster ID (lkc-…; default the context's)")
	cmd.Flags().StringVar(&f.key, "api-key", "", "API key of the cluster (default the one in use in the context)")
	cmd.Flags().StringVar(&f.secret, "api-secret", "", "secret of --api-key (default the one stored with it)")
	mustComplete(cmd, "cluster", clusters)
}

// restClient is a client of one cluster's Kafka REST v3.
type restClient struct {
	*Client
	// path is the cluster's: /kafka/v3/clusters/ID.
	path string
}

// rest returns a client of the Kafka REST v3 of the cluster f names,
// signed in with its key: the endpoint comes from the API, and so does
// the CA an https endpoint is trusted under.
func (s *session) rest(ctx context.Context, f restFlags) (*restClient, error) {
	id, err := s.clusterArg([]string{f.cluster})
	if err != nil {
		return nil, err
	}
	key, secret, err := s.clusterKey(id, f.key, f.secret)
	if err != nil {
		return nil, err
	}
	c, err := s.cluster(ctx, id)
	if err != nil {
		return nil, err
	}
	if c.Spec.HTTPEndpoint == "" {
		phase := ""
		if c.Status != nil {
			phase = " (" + c.Status.Phase + ")"
		}
		return nil, fmt.Errorf("the Kafka cluster %s has no REST endpoint yet%s: wait until kafka cluster describe shows one", id, phase)
	}
	base, err := parseBase(c.Spec.HTTPEndpoint)
	if err != nil {
		return nil, fmt.Errorf("the Kafka cluster %s: REST endpoint %q: %w", id, c.Spec.HTTPEndpoint, err)
	}
	var ca []byte
	if base.Scheme == "https" {
		if err := s.client.Do(ctx, http.MethodGet, api.CAPath, nil, &ca); err != nil {
			return nil, fmt.Errorf("the REST endpoint %s serves TLS: fetching the CA to trust from the API: %w", base, err)
		}
	}
	rc, err := newRESTClient(base, key, secret, ca)
	if err != nil {
		return nil, err
	}
	return &restClient{Client: rc, path: "/kafka/v3/clusters/" + url.PathEscape(id)}, nil
}

// clusterKey picks the key to sign in to cluster with: the flags, else
// the context's key in use for it; a key given without its secret takes
// the stored one.
func (s *session) clusterKey(cluster, key, secret string) (string, string, error) {
	var stored *clusterKeys
	if s.ctx != nil {
		stored = s.ctx.KafkaClusters[cluster]
	}
	switch {
	case key == "" && secret != "":
		return "", "", errors.New("--api-secret is given without --api-key")
	case key != "" && secret != "":
		return key, secret, nil
	case key != "":
		if stored != nil && stored.APIKeys[key] != "" {
			return key, stored.APIKeys[key], nil
		}
		return "", "", fmt.Errorf("no secret for --api-key %s: pass --api-secret, or store it with mothership api-key store %s SECRET", key, key)
	case stored != nil && stored.APIKey != "" && stored.APIKeys[stored.APIKey] != "":
		return stored.APIKey, stored.APIKeys[stored.APIKey], nil
	}
	return "", "", fmt.Errorf("no API key for Kafka cluster %s: pass --api-key and --api-secret, or make one the context uses "+
		"with mothership api-key create --resource %s --use (or api-key store and api-key use)", cluster, cluster)
}
