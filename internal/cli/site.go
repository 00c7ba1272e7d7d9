package cli

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
)

// fleetSite is a site with its satellite's link.
type fleetSite struct {
	Site         string  `json:"site"`
	Phase        string  `json:"phase"`
	Cordoned     bool    `json:"cordoned"`
	EnrolledAt   *string `json:"enrolled_at,omitempty"`
	Connected    bool    `json:"connected"`
	LastSeen     *string `json:"last_seen,omitempty"`
	Bundle       int64   `json:"bundle"`
	Acknowledged int64   `json:"acknowledged"`
	Behind       int64   `json:"behind"`
	Clusters     int     `json:"clusters"`
}

// sitePath is the API path of SITE ("aws/us-west-2"), or an error that
// says how to write it.
func sitePath(site string) (string, error) {
	cloud, region, ok := strings.Cut(site, "/")
	if !ok || cloud == "" || region == "" || strings.ContainsAny(region, "/?# ") {
		return "", fmt.Errorf("SITE %q: want CLOUD/REGION, like aws/us-west-2", site)
	}
	return fleetSitesPath + "/" + strings.ToLower(cloud) + "/" + region, nil
}

// newSiteCmd is `fleet site`: the sites, their satellites, and the
// operators' changes of them.
func newSiteCmd(g *globals) *cobra.Command {
	site := &cobra.Command{Use: "site", Short: "The sites and their satellites: list, add, cordon, retire"}
	site.AddCommand(&cobra.Command{
		Use:   "list",
		Short: "List the sites with their satellites' links: enrolled, cordoned, connected, last seen, how far behind",
		Args:  cobra.NoArgs,
		RunE: g.run(func(cmd *cobra.Command, s *session, _ []string) error {
			var sites struct {
				Data []fleetSite `json:"data"`
			}
			if err := s.client.Do(cmd.Context(), http.MethodGet, fleetSitesPath, nil, &sites); err != nil {
				return err
			}
			if s.format != formatHuman {
				return printValue(s.out, s.format, sites.Data)
			}
			rows := [][]string{}
			for _, st := range sites.Data {
				seen := "not since sync started"
				if st.LastSeen != nil {
					seen = *st.LastSeen
				}
				rows = append(rows, []string{st.Site, st.Phase, strconv.FormatBool(st.Cordoned), strconv.Itoa(st.Clusters), strconv.FormatBool(st.Connected), seen,
					strconv.FormatInt(st.Bundle, 10), strconv.FormatInt(st.Acknowledged, 10), strconv.FormatInt(st.Behind, 10)})
			}
			return printTable(s.out, []string{"Site", "Phase", "Cordoned", "PKCs", "Connected", "Last Seen", "Bundle", "Acknowledged", "Behind"}, rows)
		}),
	}, &cobra.Command{
		Use:   "add SITE",
		Short: "Add a site (CLOUD/REGION); prints its satellite's one-time enrollment token",
		Long: `Add a data-plane site at run time. The answer is the one-time enrollment
token of its satellite, shown once: start the satellite with it, and it
makes its own key and token and enrolls them. The site takes clusters once
its satellite enrolled.`,
		Example: `  mothership fleet site add aws/eu-west-1
  mothership satellite --site aws/eu-west-1 --sync http://127.0.0.1:8080 \
    --data-dir ./eu-west-1 --enrollment-token-file ./eu-west-1.token`,
		Args: cobra.ExactArgs(1),
		RunE: g.run(func(cmd *cobra.Command, s *session, args []string) error {
			if _, err := sitePath(args[0]); err != nil {
				return err
			}
			cloud, region, _ := strings.Cut(args[0], "/")
			var out struct {
				fleetSite
				EnrollmentToken string `json:"enrollment_token"`
			}
			if err := s.client.Do(cmd.Context(), http.MethodPost, fleetSitesPath, map[string]string{"cloud": strings.ToUpper(cloud), "region": region}, &out); err != nil {
				return err
			}
			if s.format != formatHuman {
				return printValue(s.out, s.format, out)
			}
			_, err := fmt.Fprintf(s.out, "Added %s; it takes clusters once its satellite enrolled.\n"+
				"Enrollment token (shown once; keep it in a file only the satellite reads):\n  %s\n"+
				"Start its satellite with:\n  mothership satellite --site %s --sync LINK_URL --data-dir DIR --enrollment-token-file FILE\n"+
				"(LINK_URL is the sync service's satellite link; under mothership dev, %s)\n",
				out.Site, out.EnrollmentToken, out.Site, s.client.base)
			return err
		}),
	}, siteChange(g, "cordon", "Cordon a site: it takes no new clusters; the ones it holds stay", http.MethodPost,
		"%s is cordoned: it takes no new clusters\n"),
		siteChange(g, "uncordon", "Open a cordoned site again: it takes new clusters", http.MethodPost,
			"%s takes new clusters again\n"),
		siteChange(g, "retire", "Retire an empty site: its satellite's token stops working (refused while it holds clusters)", http.MethodDelete,
			"%s is retired\n"))
	return site
}

// siteChange is a command that changes one site: POST …/op, or DELETE the
// site for retire.
func siteChange(g *globals, op, short, method, done string) *cobra.Command {
	return &cobra.Command{
		Use:   op + " SITE",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: g.run(func(cmd *cobra.Command, s *session, args []string) error {
			path, err := sitePath(args[0])
			if err != nil {
				return err
			}
			if method == http.MethodPost {
				path += "/" + op
			}
			if err := s.client.Do(cmd.Context(), method, path, nil, nil); err != nil {
				return err
			}
			_, err = fmt.Fprintf(s.out, done, args[0])
			return err
		}),
	}
}
