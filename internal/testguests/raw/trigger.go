//go:build wasip1

package raw

import (
	"encoding/json"
	"strings"
)

// Trigger decides which records make a hostile guest misbehave. With no
// parameters (empty, null or {}) every record triggers; with parameters
// {"on": "X"} only records whose value is X do, and the others are echoed,
// so that the same guest serves as a poison-record operator in job tests.
type Trigger struct {
	on  string
	all bool
}

// ParseTrigger reads the trigger from init params; def is the value that
// triggers when the params don't name one ("" with def "" means every
// record).
func ParseTrigger(params []byte, def string) Trigger {
	var p struct {
		On *string `json:"on"`
	}
	if s := strings.TrimSpace(string(params)); s != "" && s != "null" {
		if err := json.Unmarshal(params, &p); err != nil {
			Log(8, "bad params, expected {\"on\": \"value\"}: "+err.Error())
		}
	}
	if p.On != nil {
		return Trigger{on: *p.On}
	}
	return Trigger{on: def, all: def == ""}
}

// Fires reports whether a record with this value triggers.
func (t Trigger) Fires(value []byte) bool { return t.all || string(value) == t.on }
