// Package link is the satellite's side of the satellite link: the HTTP
// client a satellite agent dials the sync service with, in-process or
// across a network alike.
package link

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/mothership-dev/mothership/internal/api"
	"github.com/mothership-dev/mothership/internal/resource"
)

// defaultHTTP bounds every call: a long poll lasts at most sync's MaxWait
// (30s), and a network that drops packets must not stall the agent.
var defaultHTTP = &http.Client{Timeout: 45 * time.Second}

// Client talks to the sync service with a satellite's token.
type Client struct {
	// URL is the sync service's base URL.
	URL   string
	Token string
	HTTP  *http.Client
}

func (c *Client) do(ctx context.Context, method, path string, body any, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(c.URL, "/")+path, rd)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	req.Header.Set("Content-Type", "application/json")
	hc := c.HTTP
	if hc == nil {
		hc = defaultHTTP
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode >= 400:
		var eb api.ErrorBody
		if json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&eb) == nil && len(eb.Errors) > 0 {
			return resp.StatusCode, fmt.Errorf("sync answered %d %s: %s", resp.StatusCode, eb.Errors[0].Code, eb.Errors[0].Detail)
		}
		return resp.StatusCode, fmt.Errorf("sync answered %s", resp.Status)
	case out != nil && resp.StatusCode == http.StatusOK:
		return resp.StatusCode, json.NewDecoder(resp.Body).Decode(out)
	}
	return resp.StatusCode, nil
}

// Bundle waits up to wait for a bundle newer than after; ok is false when
// none came.
func (c *Client) Bundle(ctx context.Context, after int64, wait time.Duration) (resource.Bundle, bool, error) {
	var b resource.Bundle
	q := url.Values{"after": {strconv.FormatInt(after, 10)}, "wait": {wait.String()}}
	status, err := c.do(ctx, http.MethodGet, resource.BundlePath+"?"+q.Encode(), nil, &b)
	if err != nil {
		return b, false, fmt.Errorf("link: bundle: %w", err)
	}
	return b, status == http.StatusOK, nil
}

// Report sends what the satellite realized.
func (c *Client) Report(ctx context.Context, rep resource.Report) error {
	if _, err := c.do(ctx, http.MethodPost, resource.ReportPath, rep, nil); err != nil {
		return fmt.Errorf("link: report: %w", err)
	}
	return nil
}
