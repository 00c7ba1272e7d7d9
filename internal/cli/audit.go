package cli

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/mothership-dev/mothership/internal/api"
)

const (
	auditEventsPath   = "/audit/v1/events"
	auditJourneysPath = "/audit/v1/journeys"
)

func newAuditCmd(cfg Config) *cobra.Command {
	cmd := group(&cobra.Command{Use: "audit", Short: "A resource's history and where its changes are"})
	g := addGlobals(cmd, cfg)
	list := &cobra.Command{
		Use:   "list RESOURCE-ID",
		Short: "List a resource's audit records, oldest first",
		Long: `List every mutating request that named the resource, allowed or denied,
and every change of its desired state and status, oldest first.`,
		Example: "  mothership audit list lkc-a1b2c3",
		Args:    cobra.ExactArgs(1),
		RunE: g.run(func(cmd *cobra.Command, s *session, args []string) error {
			raw, err := listAll(cmd.Context(), s.client, auditEventsPath, url.Values{"subject": {args[0]}})
			if err != nil {
				return err
			}
			events := make([]api.AuditEvent, len(raw))
			for i, r := range raw {
				if err := json.Unmarshal(r, &events[i]); err != nil {
					return fmt.Errorf("decoding the answer: %w", err)
				}
			}
			if s.format != formatHuman {
				return printValue(s.out, s.format, events)
			}
			rows := [][]string{}
			for _, e := range events {
				result := ""
				if st, ok := e.Data.Result["status"]; ok {
					result = fmt.Sprint(st)
				} else if ph, ok := e.Data.Result["phase"]; ok {
					result = fmt.Sprint(ph)
				}
				rows = append(rows, []string{e.Time.Format(time.RFC3339Nano), e.Data.AuthenticationInfo.Principal, e.Data.MethodName,
					strconv.FormatBool(e.Data.AuthorizationInfo.Granted), result})
			}
			return printTable(s.out, []string{"Time", "Principal", "Method", "Granted", "Result"}, rows)
		}),
	}
	journey := &cobra.Command{
		Use:   "journey RESOURCE-ID",
		Short: "Follow a resource's last changes through every hop",
		Long: `Show each of the resource's last five changes, newest first, hop by hop:
the request that was accepted, each service's reaction, the satellite's
report and the outcome, with the time each took. A change overtaken by a
newer one before it was realized says which generation superseded it.
Every mutating answer of the API names its change's trace in a traceparent
header; the journey shows the same trace id.`,
		Example: "  mothership audit journey lkc-a1b2c3",
		Args:    cobra.ExactArgs(1),
		RunE: g.run(func(cmd *cobra.Command, s *session, args []string) error {
			var l api.JourneyList
			if err := s.client.Do(cmd.Context(), http.MethodGet, auditJourneysPath+"?"+url.Values{"subject": {args[0]}}.Encode(), nil, &l); err != nil {
				return err
			}
			if s.format != formatHuman {
				return printValue(s.out, s.format, l.Data)
			}
			for i, j := range l.Data {
				if i > 0 {
					fmt.Fprintln(s.out)
				}
				fmt.Fprintf(s.out, "Generation %d, accepted %s, trace %s: %s\n", j.Generation, j.AcceptedAt.Format(time.RFC3339), j.TraceID, j.Summary())
				rows := [][]string{}
				for _, st := range j.Steps {
					rows = append(rows, []string{"+" + (time.Duration(st.SinceAcceptedMS) * time.Millisecond).String(),
						(time.Duration(st.SincePreviousMS) * time.Millisecond).String(), st.Service, st.What})
				}
				if err := printTable(s.out, []string{"At", "Took", "Service", "Step"}, rows); err != nil {
					return err
				}
			}
			return nil
		}),
	}
	cmd.AddCommand(list, journey)
	return cmd
}
