package cli

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/mothership-dev/mothership/internal/api"
)

// Timeout bounds every request, so a stuck server fails the command instead
// of hanging it; every call of the API answers at once (creation is
// asynchronous), so 30s is far more than a healthy request takes.
const Timeout = 30 * time.Second

// maxResponse bounds the body read from the server: a list page of the
// largest page size is well under a megabyte.
const maxResponse = 16 << 20

// Client calls Mothership's REST API, or a cluster's Kafka REST v3, with
// an API key and secret.
type Client struct {
	base        *url.URL // scheme://host[:port][/prefix], no trailing slash
	key, secret string
	http        *http.Client
	// unreachable is what a failed dial adds to its error: where the
	// server was expected to be.
	unreachable string
}

// NewClient returns a client of the API at baseURL, authenticating with
// HTTP Basic as key and secret.
func NewClient(baseURL, key, secret string) (*Client, error) {
	u, err := parseBase(baseURL)
	if err != nil {
		return nil, fmt.Errorf("--url %q: want a base URL like %s", baseURL, DefaultURL)
	}
	return &Client{base: u, key: key, secret: secret, http: &http.Client{Timeout: Timeout},
		unreachable: fmt.Sprintf("is Mothership running at %s? see --url or %s", u, envURL)}, nil
}

// newRESTClient returns a client of a cluster's Kafka REST v3 at base,
// authenticating with HTTP Basic as one of the cluster's keys. An https
// endpoint is trusted under exactly caPEM, the installation's CA, and no
// other root.
func newRESTClient(base *url.URL, key, secret string, caPEM []byte) (*Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if base.Scheme == "https" {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(caPEM) {
			return nil, fmt.Errorf("the API's %s is not a PEM certificate: cannot trust %s", api.CAPath, base)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &Client{base: base, key: key, secret: secret, http: &http.Client{Timeout: Timeout, Transport: tr},
		unreachable: fmt.Sprintf("is the cluster's REST endpoint %s reachable from here?", base)}, nil
}

// parseBase parses an http or https base URL, without a trailing slash.
func parseBase(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, errors.New("not an http or https base URL")
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	return u, nil
}

// Do sends a request to path (an absolute path with an optional query, as
// the API's own links are) with body as JSON if not nil, and decodes a
// successful answer into out if not nil; out may be a *json.RawMessage to
// keep the answer as the server sent it, or a *[]byte for a body that is
// not JSON. An error answer is returned as an
// error holding an *api.Error (find it with errors.As) with the status and
// the code, detail and pointer of the error body.
func (c *Client) Do(ctx context.Context, method, path string, body, out any) error {
	target, err := c.resolve(path)
	if err != nil {
		return err
	}
	var rd io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("encoding the request: %w", err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "mothership-cli")
	req.SetBasicAuth(c.key, c.secret)

	resp, err := c.http.Do(req)
	if err != nil {
		if op, ok := errors.AsType[*net.OpError](err); ok && op.Op == "dial" {
			return fmt.Errorf("%w (%s)", err, c.unreachable)
		}
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse+1))
	if err != nil {
		return fmt.Errorf("%s %s: reading the answer: %w", method, path, err)
	}
	if len(data) > maxResponse {
		return fmt.Errorf("%s %s: the answer exceeds %d bytes", method, path, maxResponse)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return responseError(method, path, resp.StatusCode, data)
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		return nil
	}
	if b, ok := out.(*[]byte); ok {
		*b = data
		return nil
	}
	// Not strict: a newer server may add fields, and an older CLI must
	// still work with it.
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s: the answer is not the JSON expected: %w", method, path, err)
	}
	return nil
}

// resolve turns a path into the request URL. The API's links (like
// metadata.next) are paths, but Confluent's are absolute URLs; one of those
// is followed only on the base URL's own origin, since following it
// elsewhere would hand the credentials to whatever host the answer named.
func (c *Client) resolve(path string) (string, error) {
	if strings.HasPrefix(path, "/") && !strings.HasPrefix(path, "//") {
		return c.base.String() + path, nil
	}
	u, err := url.Parse(path)
	if err != nil || u.Scheme != c.base.Scheme || u.Host != c.base.Host {
		return "", fmt.Errorf("refusing to follow %q: it is not on %s://%s", path, c.base.Scheme, c.base.Host)
	}
	return u.String(), nil
}

// responseError turns an error answer into an *api.Error: the body's first
// error, with the others (every invalid field of a request) in More.
// Kafka REST's body (error_code and message) becomes code
// kafka_rest_CODE. A body that is neither (a proxy's HTML page, say)
// becomes an error naming the HTTP status.
func responseError(method, path string, status int, data []byte) error {
	var body api.ErrorBody
	if err := json.Unmarshal(data, &body); err != nil || len(body.Errors) == 0 {
		var rest struct {
			ErrorCode int    `json:"error_code"`
			Message   string `json:"message"`
		}
		if json.Unmarshal(data, &rest) == nil && rest.Message != "" {
			return &api.Error{Status: status, Code: fmt.Sprintf("kafka_rest_%d", rest.ErrorCode), Detail: oneLine(rest.Message, 1000)}
		}
		detail := oneLine(strings.TrimSpace(string(data)), 200)
		if detail == "" {
			detail = "no details"
		}
		return &api.Error{Status: status, Code: fmt.Sprintf("http_%d", status),
			Detail: fmt.Sprintf("%s %s answered %d %s: %s", method, path, status, http.StatusText(status), detail)}
	}
	it := body.Errors[0]
	// The server's text ends up on the user's terminal: one line, no
	// control characters.
	e := &api.Error{Status: status, Code: oneLine(it.Code, 100), Title: oneLine(it.Title, 200), Detail: oneLine(it.Detail, 1000)}
	// Every further error of the body is said too (every invalid field
	// of a request at once).
	for _, more := range body.Errors[1:] {
		m := &api.Error{Status: status, Code: oneLine(more.Code, 100), Detail: oneLine(more.Detail, 1000)}
		if more.Source != nil {
			m.Pointer = oneLine(more.Source.Pointer, 200)
		}
		e.More = append(e.More, m)
	}
	if e.Code == "" {
		e.Code = fmt.Sprintf("http_%d", status)
	}
	if e.Detail == "" {
		e.Detail = cmp.Or(e.Title, http.StatusText(status))
	}
	if it.Source == nil {
		return e
	}
	e.Pointer, e.Parameter = oneLine(it.Source.Pointer, 200), oneLine(it.Source.Parameter, 200)
	if e.Pointer == "" && e.Parameter != "" {
		// api.Error prints only the pointer; a query parameter is located
		// the same way, so the wrapper says it.
		return fmt.Errorf("%w (parameter %s)", e, e.Parameter)
	}
	return e
}
