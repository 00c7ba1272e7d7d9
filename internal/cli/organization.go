package cli

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/spf13/cobra"

	"github.com/mothership-dev/mothership/internal/api"
)

const organizationsPath = "/org/v2/organizations"

// organizationOut is an organization as json and yaml print it.
type organizationOut struct {
	ID                string `json:"id" yaml:"id"`
	Name              string `json:"name" yaml:"name"`
	MaintenanceWindow string `json:"maintenance_window,omitempty" yaml:"maintenance_window,omitempty"`
}

// windowText is a window as people read it: "SUNDAY 02:00 UTC for 4h".
func windowText(w *api.MaintenanceWindow) string {
	if w == nil {
		return ""
	}
	return strings.TrimSpace(cmp.Or(w.Day, "every day") + " " + w.StartTime + " UTC for " + w.Duration)
}

var organizationView = view[api.Organization]{
	fields: func(_ *session, o api.Organization) []field {
		f := []field{{"ID", o.ID}, {"Name", o.DisplayName}}
		if o.MaintenanceWindow != nil {
			f = append(f, field{"Maintenance Window", windowText(o.MaintenanceWindow)})
		}
		return f
	},
	header: []string{"ID", "Name", "Maintenance Window"},
	row: func(_ *session, o api.Organization) []string {
		return []string{o.ID, o.DisplayName, windowText(o.MaintenanceWindow)}
	},
	flat: func(_ *session, o api.Organization) any {
		return organizationOut{ID: o.ID, Name: o.DisplayName, MaintenanceWindow: windowText(o.MaintenanceWindow)}
	},
}

// ownOrganization reads the caller's organization.
func ownOrganization(ctx context.Context, c *Client) (json.RawMessage, string, error) {
	var page api.List[json.RawMessage]
	if err := c.Do(ctx, http.MethodGet, organizationsPath, nil, &page); err != nil {
		return nil, "", err
	}
	if len(page.Data) != 1 {
		return nil, "", fmt.Errorf("the API lists %d organizations for this key, want its own alone", len(page.Data))
	}
	var o api.Organization
	if err := json.Unmarshal(page.Data[0], &o); err != nil {
		return nil, "", fmt.Errorf("decoding the answer: %w", err)
	}
	return page.Data[0], o.ID, nil
}

func newOrganizationCmd(cfg Config) *cobra.Command {
	cmd := group(&cobra.Command{
		Use:     "organization",
		Aliases: []string{"org"},
		Short:   "Your organization: its name and its clusters' maintenance window",
	})
	g := addGlobals(cmd, cfg)
	var name, window string
	update := &cobra.Command{
		Use:   "update [--name NAME] [--maintenance-window WINDOW]",
		Short: "Rename your organization, or set the maintenance window of its Dedicated clusters",
		Long: `Rename your organization, or set the weekly maintenance window (UTC) in
which an operator's upgrade may start its Dedicated clusters that set no
window of their own: "SUNDAY 02:00 4h", or "02:00 4h" every day; "" removes
it. OrganizationAdmin only.`,
		Example: `  mothership organization update --maintenance-window "SUNDAY 02:00 4h"`,
		Args:    cobra.NoArgs,
		RunE: g.run(func(cmd *cobra.Command, s *session, _ []string) error {
			var in api.OrganizationUpdate
			if cmd.Flags().Changed("name") {
				in.DisplayName = &name
			}
			if cmd.Flags().Changed("maintenance-window") {
				w, err := parseWindow("--maintenance-window", window)
				if err != nil {
					return err
				}
				in.MaintenanceWindow = w
			}
			if in == (api.OrganizationUpdate{}) {
				return fmt.Errorf("nothing to update: pass --name or --maintenance-window")
			}
			_, id, err := ownOrganization(cmd.Context(), s.client)
			if err != nil {
				return err
			}
			var raw json.RawMessage
			if err := s.client.Do(cmd.Context(), http.MethodPatch, organizationsPath+"/"+id, in, &raw); err != nil {
				return err
			}
			return organizationView.show(s, raw)
		}),
	}
	update.Flags().StringVar(&name, "name", "", "new name of the organization")
	update.Flags().StringVar(&window, "maintenance-window", "", `weekly window (UTC), "SUNDAY 02:00 4h" or "02:00 4h" every day; "" removes it`)
	cmd.AddCommand(&cobra.Command{
		Use:   "describe",
		Short: "Describe your organization",
		Args:  cobra.NoArgs,
		RunE: g.run(func(cmd *cobra.Command, s *session, _ []string) error {
			raw, _, err := ownOrganization(cmd.Context(), s.client)
			if err != nil {
				return err
			}
			return organizationView.show(s, raw)
		}),
	}, update)
	return cmd
}
