package sluice_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	sluice "github.com/sluice-io/sluice/sdk/go"
	"github.com/sluice-io/sluice/sdk/go/sdktest"
)

// initWith runs init with params and returns what the hook saw via f.
func initWith(t *testing.T, params any, f func(p sluice.Params) error) error {
	t.Helper()
	sluice.Handle(func(*sluice.Record, *sluice.Emitter) error { return nil })
	sluice.OnInit(f)
	defer sluice.OnInit(nil)
	_, err := sdktest.Start(sdktest.Config{Params: params})
	return err
}

func TestParamsGetters(t *testing.T) {
	params := []byte(`{"name":"x","n":12,"big":1e6,"ratio":0.5,"on":true,"every":"1.5s","nothing":null}`)
	err := initWith(t, params, func(p sluice.Params) error {
		checks := []struct {
			what      string
			got, want any
		}{
			{"String", p.String("name", "d"), "x"},
			{"String default", p.String("missing", "d"), "d"},
			{"String null", p.String("nothing", "d"), "d"},
			{"Int", p.Int("n", 0), 12},
			{"Int exponent", p.Int("big", 0), 1_000_000},
			{"Int default", p.Int("missing", 7), 7},
			{"Float", p.Float("ratio", 0), 0.5},
			{"Bool", p.Bool("on", false), true},
			{"Duration", p.Duration("every", 0), 1500 * time.Millisecond},
			{"Duration default", p.Duration("missing", time.Minute), time.Minute},
			{"Has", p.Has("n"), true},
			{"Has null", p.Has("nothing"), false},
		}
		for _, c := range checks {
			if c.got != c.want {
				t.Errorf("%s = %v, want %v", c.what, c.got, c.want)
			}
		}
		var into struct {
			Name    string
			N       int
			Big     float64
			Ratio   float64
			On      bool
			Every   string
			Nothing *int
		}
		if err := p.Decode(&into); err != nil || into.Name != "x" || into.N != 12 {
			t.Errorf("Decode = %+v, %v", into, err)
		}
		var partial struct{ Name string }
		if err := p.Decode(&partial); err == nil || !strings.Contains(err.Error(), `unknown field "n"`) {
			t.Errorf("Decode into a struct missing fields: err = %v, want unknown field", err)
		}
		return p.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestParamsOfTheWrongTypeFailInit(t *testing.T) {
	params := map[string]any{"n": "twelve", "on": "yes", "every": 5, "name": 3, "ratio": "half"}
	err := initWith(t, params, func(p sluice.Params) error {
		if got := p.Int("n", 4); got != 4 {
			t.Errorf("Int of a string = %d, want the default", got)
		}
		p.Bool("on", false)
		p.Duration("every", 0)
		p.String("name", "")
		p.Float("ratio", 0)
		return nil
	})
	var ie *sdktest.InitError
	if !errors.As(err, &ie) {
		t.Fatalf("err = %v, want an init error", err)
	}
	for _, want := range []string{
		`parameter "n": want an integer, got "twelve"`,
		`parameter "on": want true or false, got "yes"`,
		`parameter "every": want a duration such as "1.5s" or "10m", got 5`,
		`parameter "name": want a string, got 3`,
		`parameter "ratio": want a number, got "half"`,
	} {
		if !strings.Contains(ie.Message, want) {
			t.Errorf("init error %q lacks %q", ie.Message, want)
		}
	}
}

func TestNoParams(t *testing.T) {
	err := initWith(t, nil, func(p sluice.Params) error {
		if p.Has("x") || p.Int("x", 3) != 3 || string(p.JSON()) != "{}" {
			t.Errorf("empty params: Has %v, Int %d, JSON %s", p.Has("x"), p.Int("x", 3), p.JSON())
		}
		return p.Decode(&struct{}{})
	})
	if err != nil {
		t.Fatal(err)
	}
}
