package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/sluice-io/sluice/host"
)

// Client talks to a node's admin API.
type Client struct {
	base string // scheme://host:port, no trailing slash
	hc   *http.Client
}

// NewClient returns a client for the node whose HTTP listener is addr:
// host:port, or a URL such as http://host:port.
func NewClient(addr string, hc *http.Client) *Client {
	if hc == nil {
		hc = http.DefaultClient
	}
	base := strings.TrimRight(addr, "/")
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	return &Client{base: base, hc: hc}
}

// Addr is the base URL the client sends requests to.
func (c *Client) Addr() string { return c.base }

// APIError is an error the node answered with. Message is the node's own
// text, meant to be shown as it is.
type APIError struct {
	StatusCode int
	Message    string
}

func (e *APIError) Error() string { return e.Message }

// IsNotFound reports whether err is the node saying there is no such job.
func IsNotFound(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.StatusCode == http.StatusNotFound
}

// UnreachableError is a request that never got an HTTP answer: nothing
// listens at the address, or the connection broke.
type UnreachableError struct {
	Addr string
	Err  error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("cannot reach the sluice node's admin API at %s: %v", e.Addr, e.Err)
}
func (e *UnreachableError) Unwrap() error { return e.Err }

// Deploy sends the job and its module; the node validates both before
// changing anything. The job's history records it as by DefaultBy.
func (c *Client) Deploy(ctx context.Context, spec host.JobSpec, module []byte) (host.JobStatus, error) {
	return c.DeployBy(ctx, spec, module, DefaultBy)
}

// DeployBy is Deploy with the deployment's origin ("cli", ...) for the
// job's history.
func (c *Client) DeployBy(ctx context.Context, spec host.JobSpec, module []byte, by string) (host.JobStatus, error) {
	var st host.JobStatus
	err := c.do(ctx, http.MethodPost, "/v1/jobs", DeployRequest{Spec: spec, Module: module, By: by}, &st)
	return st, err
}

// History returns a job's versions, oldest first.
func (c *Client) History(ctx context.Context, name string) ([]host.JobVersion, error) {
	var versions []host.JobVersion
	err := c.do(ctx, http.MethodGet, "/v1/jobs/"+url.PathEscape(name)+"/history", nil, &versions)
	return versions, err
}

// Rollback deploys an earlier version of a job again, as a new version;
// version 0 is the newest version before the active one that did not fail.
// by is recorded in the history as for DeployBy.
func (c *Client) Rollback(ctx context.Context, name string, version int, by string) (host.JobStatus, error) {
	var st host.JobStatus
	err := c.do(ctx, http.MethodPost, "/v1/jobs/"+url.PathEscape(name)+"/rollback", RollbackRequest{Version: version, By: by}, &st)
	return st, err
}

// Delete stops a job and removes it with its history, local state and
// changelog topics; its output topics stay.
func (c *Client) Delete(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, "/v1/jobs/"+url.PathEscape(name), nil, nil)
}

// List returns every job on the node.
func (c *Client) List(ctx context.Context) ([]host.JobStatus, error) {
	var jobs []host.JobStatus
	err := c.do(ctx, http.MethodGet, "/v1/jobs", nil, &jobs)
	return jobs, err
}

// Status returns one job.
func (c *Client) Status(ctx context.Context, name string) (host.JobStatus, error) {
	var st host.JobStatus
	err := c.do(ctx, http.MethodGet, "/v1/jobs/"+url.PathEscape(name), nil, &st)
	return st, err
}

// Stop stops a job's tasks after a final checkpoint, keeping its state.
func (c *Client) Stop(ctx context.Context, name string) (host.JobStatus, error) {
	var st host.JobStatus
	err := c.do(ctx, http.MethodPost, "/v1/jobs/"+url.PathEscape(name)+"/stop", nil, &st)
	return st, err
}

// Start restarts a stopped job.
func (c *Client) Start(ctx context.Context, name string) (host.JobStatus, error) {
	var st host.JobStatus
	err := c.do(ctx, http.MethodPost, "/v1/jobs/"+url.PathEscape(name)+"/start", nil, &st)
	return st, err
}

// do sends body (if not nil) as JSON and decodes a 2xx answer into out (if
// not nil); other answers become an *APIError.
func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return &UnreachableError{Addr: strings.TrimPrefix(c.base, "http://"), Err: unwrapURLError(err)}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return &UnreachableError{Addr: strings.TrimPrefix(c.base, "http://"), Err: err}
	}
	if resp.StatusCode/100 != 2 {
		var eb errorBody
		if json.Unmarshal(data, &eb) == nil && eb.Error != "" {
			return &APIError{StatusCode: resp.StatusCode, Message: eb.Error}
		}
		// Not our API (another server on the port, or a proxy).
		return &APIError{StatusCode: resp.StatusCode, Message: fmt.Sprintf("%s %s: %s: %s",
			method, path, resp.Status, strings.TrimSpace(string(truncate(data, 200))))}
	}
	if out == nil { // a call answered with 204 and no body (Delete)
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s: decoding the node's answer: %w", method, path, err)
	}
	return nil
}

// unwrapURLError drops url.Error's "Post \"http://...\":" prefix, which
// repeats what UnreachableError already says.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}
