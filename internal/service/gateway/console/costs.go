package console

import (
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/mothership-dev/mothership/internal/service/billing"
)

// costsPage is the organization's costs, a line a day per cluster and
// line type, and their total: by default this month so far (the API's
// end date is exclusive, so tomorrow takes in today as accrued). The
// dates of the form are passed to the API as they are, which says what
// is wrong with them.
func (c *Console) costsPage(w http.ResponseWriter, r *http.Request, s *session) {
	now := c.cfg.Now().UTC()
	start, end := r.URL.Query().Get("start_date"), r.URL.Query().Get("end_date")
	if start == "" {
		start = time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC).Format(time.DateOnly)
	}
	if end == "" {
		end = time.Date(now.Year(), now.Month(), now.Day()+1, 0, 0, 0, 0, time.UTC).Format(time.DateOnly)
	}
	data := map[string]any{"Key": s.key, "CSRF": s.csrf, "Start": start, "End": end}
	var l billing.CostList
	q := url.Values{"start_date": {start}, "end_date": {end}}
	if err := c.call(r, s, http.MethodGet, billing.CostsPath+"?"+q.Encode(), nil, &l); err != nil {
		data["Errors"] = []string{err.Error()}
		c.render(w, http.StatusOK, "costs.html", data)
		return
	}
	total := 0.0
	for _, line := range l.Data {
		total += line.Amount
	}
	data["Lines"], data["Total"] = l.Data, total
	if l.Metadata.Next != "" {
		// One page is thousands of lines; more means a range too wide to
		// read on a page.
		data["Partial"] = fmt.Sprintf("the first %d of %d lines are shown, and the total is theirs: choose fewer days to see every line",
			len(l.Data), l.Metadata.TotalSize)
	}
	c.render(w, http.StatusOK, "costs.html", data)
}

// amount shows a sum of money to the cent; a sum below a cent is not
// shown as nothing.
func amount(v float64) string {
	if v != 0 && math.Abs(v) < 0.005 {
		return "< 0.01"
	}
	return strconv.FormatFloat(v, 'f', 2, 64)
}

// number shows a quantity without a long tail of digits.
func number(v float64) string {
	return strconv.FormatFloat(math.Round(v*1e4)/1e4, 'f', -1, 64)
}
