package billing

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/mothership-dev/mothership/internal/api"
	"github.com/mothership-dev/mothership/internal/resource"
	"github.com/mothership-dev/mothership/internal/runtime/store"
	"github.com/mothership-dev/mothership/internal/service/svcapi"
)

// CostsPath is the billing API's costs, in the shape of Confluent
// Cloud's Billing API.
const CostsPath = "/billing/v1/costs"

// Granularities of the lines: DAILY as Confluent answers, HOURLY ours.
const (
	Daily  = "DAILY"
	Hourly = "HOURLY"
)

// DefaultPageSize and MaxPageSize bound a page of lines, as Confluent's.
const (
	DefaultPageSize = 5000
	MaxPageSize     = 10000
)

// MaxSpan bounds the dates one request covers.
const MaxSpan = 366 * 24 * time.Hour

// CostQuery is a request for costs: the organization (an operator may
// name any; "" is the caller's), the dates [Start, End) as
// YYYY-MM-DD, the granularity, and the page.
type CostQuery struct {
	Organization string `json:"organization,omitempty"`
	StartDate    string `json:"start_date"`
	EndDate      string `json:"end_date"`
	Granularity  string `json:"granularity,omitempty"`
	PageToken    string `json:"page_token,omitempty"`
	PageSize     int    `json:"page_size,omitempty"`
}

// Cost is one line, in Confluent's shape; StartTime and EndTime are ours,
// exact for HOURLY lines.
type Cost struct {
	APIVersion     string       `json:"api_version"`
	Kind           string       `json:"kind"`
	ID             string       `json:"id"`
	StartDate      string       `json:"start_date"`
	EndDate        string       `json:"end_date"`
	StartTime      time.Time    `json:"start_time"`
	EndTime        time.Time    `json:"end_time"`
	Granularity    string       `json:"granularity"`
	Product        string       `json:"product"`
	LineType       string       `json:"line_type"`
	Price          float64      `json:"price"`
	Unit           string       `json:"unit"`
	Quantity       float64      `json:"quantity"`
	OriginalAmount float64      `json:"original_amount"`
	DiscountAmount float64      `json:"discount_amount"`
	Amount         float64      `json:"amount"`
	Resource       CostResource `json:"resource"`
}

// CostResource is what a line is for.
type CostResource struct {
	ID          string          `json:"id"`
	DisplayName string          `json:"display_name"`
	Environment CostEnvironment `json:"environment"`
}

// CostEnvironment is the environment of a line's resource.
type CostEnvironment struct {
	ID string `json:"id"`
}

// CostList is a page of lines.
type CostList struct {
	APIVersion string       `json:"api_version"`
	Kind       string       `json:"kind"`
	Metadata   api.ListMeta `json:"metadata"`
	Data       []Cost       `json:"data"`
}

// ListCosts answers GET /billing/v1/costs: the lines of the caller's
// organization (an operator may ask for any) over the dates asked, the
// current day as accrued so far. OrganizationAdmin only.
func (s *Service) ListCosts(ctx context.Context, p svcapi.Principal, q CostQuery) (CostList, error) {
	org := cmp.Or(q.Organization, p.Organization)
	if org != p.Organization && !p.FleetAdmin() {
		return CostList{}, api.Errorf(http.StatusForbidden, api.CodeForbidden, "only the installation's operators may ask for another organization's costs")
	}
	if org == p.Organization && !p.FleetAdmin() {
		if err := p.Require(svcapi.Admin, svcapi.Scope{Org: org}); err != nil {
			return CostList{}, err
		}
	}
	start, end, err := q.span()
	if err != nil {
		return CostList{}, err
	}
	size := cmp.Or(q.PageSize, DefaultPageSize)
	if size < 1 || size > MaxPageSize {
		return CostList{}, badParam("page_size", "page_size is from 1 to %d", MaxPageSize)
	}
	offset := 0
	if q.PageToken != "" {
		if offset, err = strconv.Atoi(q.PageToken); err != nil || offset < 0 {
			return CostList{}, badParam("page_token", "page_token is not one this API gave")
		}
	}
	var all []Cost
	err = s.st.View(ctx, func(ctx context.Context, tx store.Tx) error {
		book, err := s.book(ctx, tx)
		if err != nil {
			return err
		}
		to := minTime(end, s.cfg.Now())
		byCluster := map[string]*lineSums{}
		usage := map[string]resource.UsageSpec{}
		var order []string
		err = store.EachResourceOf(ctx, tx, store.ListParams{Kind: resource.KindUsage, Organization: org}, func(r store.Resource) error {
			u, err := resource.Decode[resource.UsageSpec](r.Spec)
			if err != nil {
				return err
			}
			ls := newLines(q.granularity())
			addHours(ls, u, book, start, to)
			byCluster[r.ID], usage[r.ID] = ls, u
			order = append(order, r.ID)
			return nil
		})
		if err != nil {
			return err
		}
		err = store.EachResourceOf(ctx, tx, store.ListParams{Kind: resource.KindMeteredHour, Organization: org}, func(r store.Resource) error {
			m, err := resource.Decode[resource.MeterSpec](r.Spec)
			if err != nil {
				return err
			}
			if ls, ok := byCluster[m.Cluster]; ok {
				addMetered(ls, usage[m.Cluster], m, book, start, to)
			}
			return nil
		})
		for _, id := range order {
			all = append(all, byCluster[id].costs(id, usage[id])...)
		}
		return err
	})
	if err != nil {
		return CostList{}, fmt.Errorf("billing: costs of %s: %w", org, err)
	}
	lines := all
	slices.SortFunc(lines, func(a, b Cost) int {
		return cmp.Or(a.StartTime.Compare(b.StartTime), cmp.Compare(a.Resource.ID, b.Resource.ID), cmp.Compare(a.LineType, b.LineType), cmp.Compare(a.Price, b.Price))
	})
	out := CostList{APIVersion: "billing/v1", Kind: "CostList", Metadata: api.ListMeta{TotalSize: len(lines)}, Data: []Cost{}}
	if offset < len(lines) {
		out.Data = lines[offset:min(offset+size, len(lines))]
	}
	if offset+size < len(lines) {
		out.Metadata.Next = CostsPath + "?" + q.next(offset+size)
	}
	return out, nil
}

func badParam(param, format string, args ...any) error {
	e := api.Errorf(http.StatusBadRequest, api.CodeBadRequest, format, args...)
	e.Parameter = param
	return e
}

func (q CostQuery) granularity() string { return cmp.Or(q.Granularity, Daily) }

// span reads the dates; end_date is exclusive, as Confluent's.
func (q CostQuery) span() (time.Time, time.Time, error) {
	var errs []*api.Error
	parse := func(name, v string) time.Time {
		t, err := time.Parse(time.DateOnly, v)
		if err != nil {
			e := api.Errorf(http.StatusBadRequest, api.CodeBadRequest, "%s must be a date, YYYY-MM-DD (got %q)", name, v)
			e.Parameter = name
			errs = append(errs, e)
		}
		return t
	}
	start, end := parse("start_date", q.StartDate), parse("end_date", q.EndDate)
	if g := q.granularity(); g != Daily && g != Hourly {
		e := api.Errorf(http.StatusBadRequest, api.CodeBadRequest, "granularity is DAILY or HOURLY (got %q)", g)
		e.Parameter = "granularity"
		errs = append(errs, e)
	}
	if len(errs) == 0 && !end.After(start) {
		errs = append(errs, api.Errorf(http.StatusBadRequest, api.CodeBadRequest, "end_date (%s) must be after start_date (%s): it is exclusive", q.EndDate, q.StartDate))
	}
	if len(errs) == 0 && end.Sub(start) > MaxSpan {
		errs = append(errs, api.Errorf(http.StatusBadRequest, api.CodeBadRequest, "a request covers at most a year; ask for %s to %s in parts", q.StartDate, q.EndDate))
	}
	return start, end, api.Join(errs...)
}

// next is the query of the page after offset.
func (q CostQuery) next(offset int) string {
	v := fmt.Sprintf("start_date=%s&end_date=%s&granularity=%s&page_token=%d", q.StartDate, q.EndDate, q.granularity(), offset)
	if q.Organization != "" {
		v += "&organization=" + q.Organization
	}
	if q.PageSize != 0 {
		v += "&page_size=" + strconv.Itoa(q.PageSize)
	}
	return v
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// line is a line being summed: units (CKU-seconds, seconds, bytes) of
// which per make one unit of quantity, and the price per unit of
// quantity, both exact.
type line struct {
	start, end time.Time
	lineType   string
	unit       string
	unitMicros int64
	units, per int64
}

// lineSums sums one cluster's usage into lines, one per bucket, line type
// and price, in the order they began.
type lineSums struct {
	granularity string
	sums        map[lineKey]*line
	order       []lineKey
}

type lineKey struct {
	bucket     int64
	lineType   string
	unitMicros int64
}

func newLines(granularity string) *lineSums {
	return &lineSums{granularity: granularity, sums: map[lineKey]*line{}}
}

// add counts units in the hour starting at h.
func (ls *lineSums) add(h time.Time, lineType, unit string, price, units, per int64) {
	bucket, length := h, time.Hour
	if ls.granularity == Daily {
		bucket, length = h.Truncate(24*time.Hour), 24*time.Hour
	}
	k := lineKey{bucket.Unix(), lineType, price}
	l := ls.sums[k]
	if l == nil {
		l = &line{start: bucket, end: bucket.Add(length), lineType: lineType, unit: unit, unitMicros: price, per: per}
		ls.sums[k] = l
		ls.order = append(ls.order, k)
	}
	l.units += units
}

// costs renders the lines of cluster id.
func (ls *lineSums) costs(id string, u resource.UsageSpec) []Cost {
	out := make([]Cost, 0, len(ls.order))
	for _, k := range ls.order {
		l := ls.sums[k]
		// micro-units = units × micros per unit / per, rounded half up;
		// then to cents, half up.
		micros := (l.units*l.unitMicros + l.per/2) / l.per
		cents := (micros + 5000) / 10000
		out = append(out, Cost{APIVersion: "billing/v1", Kind: "Cost", ID: lineID(id, l), StartDate: l.start.Format(time.DateOnly),
			EndDate: l.end.Format(time.DateOnly), StartTime: l.start, EndTime: l.end, Granularity: ls.granularity, Product: "KAFKA",
			LineType: l.lineType, Price: float64(l.unitMicros) / 1e6, Unit: l.unit, Quantity: float64(l.units) / float64(l.per),
			OriginalAmount: float64(cents) / 100, Amount: float64(cents) / 100,
			Resource: CostResource{ID: id, DisplayName: u.DisplayName, Environment: CostEnvironment{ID: u.Environment}}})
	}
	return out
}

// Lines are the lines of one cluster's history u over [from, to), by
// hour or by day: each hour's usage priced with the book in force in that
// hour, one line per bucket, line type and price. Amounts are summed in
// micro-units and rounded to cents once per line.
func Lines(id string, u resource.UsageSpec, book resource.PriceBookSpec, from, to time.Time, granularity string) []Cost {
	ls := newLines(granularity)
	addHours(ls, u, book, from, to)
	return ls.costs(id, u)
}

// bytesPerGB is the unit of the network lines, as Confluent's (10^9).
const bytesPerGB = 1_000_000_000

// addMetered adds a metered hour m of a cluster whose history is u, if
// the hour lies in [from, to).
func addMetered(ls *lineSums, u resource.UsageSpec, m resource.MeterSpec, book resource.PriceBookSpec, from, to time.Time) {
	if m.Hour.Before(from) || !m.Hour.Before(to) {
		return
	}
	for _, q := range []struct {
		lineType, unit string
		units, per     int64
	}{
		{LineWrite, UnitGB, m.BytesIn, bytesPerGB},
		{LineRead, UnitGB, m.BytesOut, bytesPerGB},
		{LineStorage, UnitGBHour, m.StoredBytes, bytesPerGB}, // the hour's average, for the hour
		{LinePartition, UnitPartition, int64(m.Partitions), 1},
	} {
		if q.units > 0 {
			ls.add(m.Hour, q.lineType, q.unit, book.PriceAt(m.Hour, q.lineType, u.Type, u.Cloud, u.Region), q.units, q.per)
		}
	}
}

// addHours adds the hours (or CKU-hours) of a cluster's live segments.
func addHours(ls *lineSums, u resource.UsageSpec, book resource.PriceBookSpec, from, to time.Time) {
	lineType, unit := LineBase, UnitHour
	if u.Type == resource.TypeDedicated {
		lineType, unit = LineCKUs, UnitCKU
	}
	for i, seg := range u.Segments {
		if !seg.Live {
			continue
		}
		segEnd := to
		if i+1 < len(u.Segments) {
			segEnd = minTime(u.Segments[i+1].From, to)
		}
		segStart := maxTime(seg.From, from)
		units := int64(1)
		if lineType == LineCKUs {
			units = int64(seg.CKU)
		}
		// Hour by hour: the price book may change at any hour.
		for h := segStart.Truncate(time.Hour); h.Before(segEnd); h = h.Add(time.Hour) {
			a, b := maxTime(h, segStart), minTime(h.Add(time.Hour), segEnd)
			if b.After(a) {
				ls.add(h, lineType, unit, book.PriceAt(h, lineType, u.Type, u.Cloud, u.Region), units*int64(b.Sub(a)/time.Second), 3600)
			}
		}
	}
}

// lineID names a line by what it is, so that it is the same every time it
// is computed.
func lineID(cluster string, l *line) string {
	h := sha256.Sum256(fmt.Appendf(nil, "%s/%s/%d/%d/%d", cluster, l.lineType, l.start.Unix(), l.end.Unix(), l.unitMicros))
	return "cost-" + hex.EncodeToString(h[:8])
}

// book reads the price book: the operators' versions after the one the
// service was configured with.
func (s *Service) book(ctx context.Context, tx store.Tx) (resource.PriceBookSpec, error) {
	b := resource.PriceBookSpec{Versions: []resource.PriceVersion{{Prices: s.cfg.Prices}}}
	r, err := tx.ResourceGet(ctx, resource.KindPriceBook, priceBookID)
	if errors.Is(err, store.ErrNotFound) {
		return b, nil
	}
	if err != nil {
		return b, err
	}
	set, err := resource.Decode[resource.PriceBookSpec](r.Spec)
	b.Versions = append(b.Versions, set.Versions...)
	return b, err
}

// priceBookID is the id of the one price book.
const priceBookID = "prices"
