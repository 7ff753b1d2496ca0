package sluice

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"
)

// Params are the job file's parameters, passed to the function registered
// with OnInit. The getters return their default when a key is absent (or
// null). A present value of the wrong type also returns the default and is
// remembered: after the init function returns, the SDK fails the
// instance's init with every such problem, naming the key, so a typo in a
// job file stops the deployment with a clear message. Err reports the
// problems so far.
type Params struct {
	p *params
}

type params struct {
	raw    []byte
	fields map[string]json.RawMessage
	errs   []error
}

func parseParams(raw []byte) (Params, error) {
	p := &params{raw: raw, fields: map[string]json.RawMessage{}}
	trimmed := bytes.TrimSpace(raw)
	if len(trimmed) == 0 || bytes.Equal(trimmed, []byte("null")) {
		p.raw = []byte("{}")
		return Params{p}, nil
	}
	if trimmed[0] != '{' {
		return Params{}, fmt.Errorf("parameters must be a JSON object, got %s", excerpt(trimmed))
	}
	if err := json.Unmarshal(trimmed, &p.fields); err != nil {
		return Params{}, fmt.Errorf("parameters are not valid JSON: %w", err)
	}
	// Keep a copy: raw aliases the region the host reuses for batches.
	p.raw = bytes.Clone(trimmed)
	return Params{p}, nil
}

func (p Params) lookup(key string) (json.RawMessage, bool) {
	if p.p == nil {
		return nil, false
	}
	v, ok := p.p.fields[key]
	if !ok || string(v) == "null" {
		return nil, false
	}
	return v, true
}

func (p Params) problem(key, want string, got json.RawMessage) {
	p.p.errs = append(p.p.errs, fmt.Errorf("parameter %q: want %s, got %s", key, want, excerpt(got)))
}

// Has reports whether key is present and not null.
func (p Params) Has(key string) bool {
	_, ok := p.lookup(key)
	return ok
}

// String returns the string parameter key, or def.
func (p Params) String(key, def string) string {
	v, ok := p.lookup(key)
	if !ok {
		return def
	}
	var s string
	if v[0] != '"' || json.Unmarshal(v, &s) != nil {
		p.problem(key, "a string", v)
		return def
	}
	return s
}

// Int returns the integer parameter key, or def.
func (p Params) Int(key string, def int) int {
	v, ok := p.lookup(key)
	if !ok {
		return def
	}
	if n, err := strconv.ParseInt(string(v), 10, 0); err == nil {
		return int(n)
	}
	// JSON encoders may write integral floats with an exponent (1e6).
	if f, err := strconv.ParseFloat(string(v), 64); err == nil && f == math.Trunc(f) && math.Abs(f) < 1<<53 {
		return int(f)
	}
	p.problem(key, "an integer", v)
	return def
}

// Float returns the number parameter key, or def.
func (p Params) Float(key string, def float64) float64 {
	v, ok := p.lookup(key)
	if !ok {
		return def
	}
	f, err := strconv.ParseFloat(string(v), 64)
	if err != nil {
		p.problem(key, "a number", v)
		return def
	}
	return f
}

// Bool returns the boolean parameter key, or def.
func (p Params) Bool(key string, def bool) bool {
	v, ok := p.lookup(key)
	if !ok {
		return def
	}
	switch string(v) {
	case "true":
		return true
	case "false":
		return false
	}
	p.problem(key, "true or false", v)
	return def
}

// Duration returns the duration parameter key, written as a Go duration
// string such as "1.5s" or "10m", or def.
func (p Params) Duration(key string, def time.Duration) time.Duration {
	v, ok := p.lookup(key)
	if !ok {
		return def
	}
	var s string
	if v[0] == '"' && json.Unmarshal(v, &s) == nil {
		if d, err := time.ParseDuration(s); err == nil {
			return d
		}
	}
	p.problem(key, `a duration such as "1.5s" or "10m"`, v)
	return def
}

// Decode unmarshals all parameters into the struct or map pointed to by
// into, with encoding/json rules. Keys that match no struct field are an
// error, so that a misspelt parameter is not silently ignored.
func (p Params) Decode(into any) error {
	raw := []byte("{}")
	if p.p != nil {
		raw = p.p.raw
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(into); err != nil {
		return fmt.Errorf("parameters: %w", err)
	}
	return nil
}

// JSON returns the parameters as a JSON object.
func (p Params) JSON() []byte {
	if p.p == nil {
		return []byte("{}")
	}
	return bytes.Clone(p.p.raw)
}

// Err returns the problems the getters found so far, or nil.
func (p Params) Err() error {
	if p.p == nil {
		return nil
	}
	return errors.Join(p.p.errs...)
}

// excerpt shortens a JSON value for an error message.
func excerpt(v []byte) string {
	const max = 64
	if len(v) > max {
		return string(v[:max]) + "..."
	}
	return string(v)
}
