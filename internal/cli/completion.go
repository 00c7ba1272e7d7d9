package cli

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/mothership-dev/mothership/internal/api"
)

// completionTimeout bounds the requests of a completion: a shell waits for
// it while the user types.
const completionTimeout = 5 * time.Second

// The values of the flags with a fixed set of them.
var (
	cloudValues        = []string{"aws", "gcp", "azure"}
	typeValues         = []string{"basic", "standard", "dedicated"}
	availabilityValues = []string{"single-zone", "multi-zone"}
)

// mustComplete registers the completion of one of cmd's own flags; a
// failure is a mistake in this package, found by any test that builds
// the commands.
func mustComplete(cmd *cobra.Command, flag string, f cobra.CompletionFunc) {
	if err := cmd.RegisterFlagCompletionFunc(flag, f); err != nil {
		panic(err)
	}
}

// staticValues completes a flag from a fixed list.
func staticValues(values ...string) cobra.CompletionFunc {
	return cobra.FixedCompletions(values, cobra.ShellCompDirectiveNoFileComp)
}

// upTo completes positional arguments with f until n are given.
func upTo(n int, f cobra.CompletionFunc) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(args) >= n {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		return f(cmd, args, toComplete)
	}
}

// completeFrom completes the ids of the API's collection at path, each
// described by its name, leaving out the arguments already given. It
// answers nothing when the API cannot be asked: a completion never fails
// the shell.
func completeFrom[T any](g *globals, path string, query func(*session) url.Values, idName func(T) (string, string)) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
		s, err := g.session(cmd)
		if err != nil {
			cobra.CompDebugln(err.Error(), false)
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		ctx, cancel := context.WithTimeout(cmd.Context(), completionTimeout)
		defer cancel()
		var q url.Values
		if query != nil {
			q = query(s)
		}
		items, err := listAll(ctx, s.client, path, q)
		if err != nil {
			cobra.CompDebugln(err.Error(), false)
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var out []cobra.Completion
		for _, raw := range items {
			var it T
			if json.Unmarshal(raw, &it) != nil {
				continue
			}
			if id, name := idName(it); !slices.Contains(args, id) {
				out = append(out, cobra.CompletionWithDesc(id, clean(name)))
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}

// completeEnvironments completes environment ids.
func completeEnvironments(g *globals) cobra.CompletionFunc {
	return completeFrom(g, environmentsPath, nil, func(e api.Environment) (string, string) { return e.ID, e.DisplayName })
}

// completeClusters completes Kafka cluster ids: those of the --environment
// given, else of the context's environment, else all.
func completeClusters(g *globals) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		query := func(s *session) url.Values {
			env := s.currentEnvironment()
			if f := cmd.Flags().Lookup("environment"); f != nil && f.Changed {
				env = f.Value.String()
			}
			if env == "" {
				return nil
			}
			return url.Values{"environment": {env}}
		}
		return completeFrom(g, clustersPath, query, func(c api.Cluster) (string, string) { return c.ID, c.Spec.DisplayName })(cmd, args, toComplete)
	}
}

// completeRegions completes --region with the served regions of the
// --cloud given (all of them without).
func completeRegions(g *globals) cobra.CompletionFunc {
	return func(cmd *cobra.Command, _ []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
		s, err := g.session(cmd)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		ctx, cancel := context.WithTimeout(cmd.Context(), completionTimeout)
		defer cancel()
		var regions api.RegionList
		if err := s.client.Do(ctx, http.MethodGet, api.RegionsPath, nil, &regions); err != nil {
			cobra.CompDebugln(err.Error(), false)
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		cloud, _ := cmd.Flags().GetString("cloud")
		var out []cobra.Completion
		for _, r := range regions.Data {
			if (cloud == "" || strings.EqualFold(cloud, r.Cloud)) && !slices.Contains(out, r.RegionID) {
				out = append(out, r.RegionID)
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}
