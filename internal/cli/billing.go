package cli

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/spf13/cobra"
)

const costsPath = "/billing/v1/costs"

// costLine is a line of /billing/v1/costs as the CLI reads it.
type costLine struct {
	StartDate string    `json:"start_date"`
	EndDate   string    `json:"end_date"`
	StartTime time.Time `json:"start_time"`
	LineType  string    `json:"line_type"`
	Price     float64   `json:"price"`
	Unit      string    `json:"unit"`
	Quantity  float64   `json:"quantity"`
	Amount    float64   `json:"amount"`
	Resource  struct {
		ID          string `json:"id"`
		DisplayName string `json:"display_name"`
		Environment struct {
			ID string `json:"id"`
		} `json:"environment"`
	} `json:"resource"`
}

// costOut is a line as json, yaml and csv print it.
type costOut struct {
	Start       string  `json:"start" yaml:"start"`
	End         string  `json:"end" yaml:"end"`
	Resource    string  `json:"resource_id" yaml:"resource_id"`
	Name        string  `json:"resource_name" yaml:"resource_name"`
	Environment string  `json:"environment" yaml:"environment"`
	LineType    string  `json:"line_type" yaml:"line_type"`
	Quantity    float64 `json:"quantity" yaml:"quantity"`
	Unit        string  `json:"unit" yaml:"unit"`
	Price       float64 `json:"price" yaml:"price"`
	Amount      float64 `json:"amount" yaml:"amount"`
}

func newBillingCmd(cfg Config) *cobra.Command {
	cmd := group(&cobra.Command{Use: "billing", Short: "Your organization's costs"})
	g := addGlobals(cmd, cfg)
	cost := group(&cobra.Command{Use: "cost", Short: "The costs, from the recorded history of your clusters"})
	var start, end, org string
	var hourly bool
	list := &cobra.Command{
		Use:   "list --start-date YYYY-MM-DD --end-date YYYY-MM-DD",
		Short: "List the cost lines of a span of days (end date exclusive), with their total",
		Long: `List your organization's cost lines: per cluster, line type and UTC day
(--hourly: hour), the quantity, the unit price and the amount, then the
total. The current day shows what accrued so far. -o csv prints the lines
for a spreadsheet. OrganizationAdmin only; an installation's operator may
name any organization (--organization).`,
		Example: `  mothership billing cost list --start-date 2026-12-01 --end-date 2026-12-08
  mothership billing cost list --start-date 2026-12-07 --end-date 2026-12-08 --hourly -o csv`,
		Args: cobra.NoArgs,
		RunE: g.run(func(cmd *cobra.Command, s *session, _ []string) error {
			if start == "" || end == "" {
				return fmt.Errorf("--start-date and --end-date are required (YYYY-MM-DD; the end date is exclusive)")
			}
			q := url.Values{"start_date": {start}, "end_date": {end}}
			if hourly {
				q.Set("granularity", "HOURLY")
			}
			if org != "" {
				q.Set("organization", org)
			}
			raw, err := listAll(cmd.Context(), s.client, costsPath, q)
			if err != nil {
				return err
			}
			lines := make([]costOut, 0, len(raw))
			total := 0.0
			for _, r := range raw {
				var c costLine
				if err := json.Unmarshal(r, &c); err != nil {
					return fmt.Errorf("decoding the answer: %w", err)
				}
				startAt, endAt := c.StartDate, c.EndDate
				if hourly {
					startAt, endAt = c.StartTime.UTC().Format("2006-01-02T15:04Z"), c.StartTime.UTC().Add(time.Hour).Format("2006-01-02T15:04Z")
				}
				lines = append(lines, costOut{Start: startAt, End: endAt, Resource: c.Resource.ID, Name: c.Resource.DisplayName,
					Environment: c.Resource.Environment.ID, LineType: c.LineType, Quantity: c.Quantity, Unit: c.Unit, Price: c.Price, Amount: c.Amount})
				total += c.Amount
			}
			switch s.format {
			case formatCSV:
				w := csv.NewWriter(s.out)
				_ = w.Write([]string{"start", "end", "resource_id", "resource_name", "environment", "line_type", "quantity", "unit", "price", "amount"})
				for _, l := range lines {
					_ = w.Write([]string{l.Start, l.End, l.Resource, l.Name, l.Environment, l.LineType, strconv.FormatFloat(l.Quantity, 'f', 4, 64),
						l.Unit, strconv.FormatFloat(l.Price, 'f', -1, 64), strconv.FormatFloat(l.Amount, 'f', 2, 64)})
				}
				w.Flush()
				return w.Error()
			case formatHuman:
			default:
				return printValue(s.out, s.format, lines)
			}
			rows := [][]string{}
			for _, l := range lines {
				rows = append(rows, []string{l.Start, l.Resource, l.Name, l.LineType, strconv.FormatFloat(l.Quantity, 'f', 4, 64) + " " + l.Unit,
					strconv.FormatFloat(l.Price, 'f', -1, 64), strconv.FormatFloat(l.Amount, 'f', 2, 64)})
			}
			if err := printTable(s.out, []string{"Start", "Cluster", "Name", "Line Type", "Quantity", "Price", "Amount"}, rows); err != nil {
				return err
			}
			_, err = fmt.Fprintf(s.out, "Total: %.2f (%d lines)\n", total, len(lines))
			return err
		}),
	}
	f := list.Flags()
	f.StringVar(&start, "start-date", "", "first day, YYYY-MM-DD (UTC)")
	f.StringVar(&end, "end-date", "", "the day after the last, YYYY-MM-DD (exclusive)")
	f.BoolVar(&hourly, "hourly", false, "a line per hour instead of per day")
	f.StringVar(&org, "organization", "", "another organization's costs (operators only)")
	cost.AddCommand(list)
	cmd.AddCommand(cost)
	return cmd
}
