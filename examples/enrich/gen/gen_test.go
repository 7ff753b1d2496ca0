package gen

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

func prof(u, v string, ts int64) Record {
	r := Record{Topic: ProfilesTopic, Key: []byte(u), Timestamp: ts}
	if v != "" {
		r.Value = []byte(v)
	}
	return r
}

func clk(u, v string, ts int64) Record {
	return Record{Topic: ClicksTopic, Key: []byte(u), Value: []byte(v), Timestamp: ts}
}

func enriched(u, click, profile string, ts int64) Output {
	return Output{Key: u, Value: `{"click":` + click + `,"profile":` + profile + `}`, Timestamp: ts}
}

// Hand-computed cases on one partition (partitions = 1).
func TestExpectedByHand(t *testing.T) {
	for _, c := range []struct {
		name string
		d    Data
		want []Output
	}{{
		name: "a profile and a click at the same time: the profile applies first",
		d:    Data{Profiles: []Record{prof("u", `{"a":1}`, 10)}, Clicks: []Record{clk("u", `{"c":1}`, 10)}},
		want: []Output{enriched("u", `{"c":1}`, `{"a":1}`, 10)},
	}, {
		name: "a click before the profile sees none",
		d:    Data{Profiles: []Record{prof("u", `{"a":1}`, 10)}, Clicks: []Record{clk("u", `{"c":1}`, 9)}},
		want: []Output{enriched("u", `{"c":1}`, "null", 9)},
	}, {
		name: "updates and a delete between clicks",
		d: Data{
			Profiles: []Record{prof("u", `{"a":1}`, 10), prof("u", `{"a":2}`, 20), prof("u", "", 30), prof("u", `{"a":3}`, 40)},
			Clicks:   []Record{clk("u", `1`, 15), clk("u", `2`, 25), clk("u", `3`, 35), clk("u", `4`, 45)},
		},
		want: []Output{enriched("u", `1`, `{"a":1}`, 15), enriched("u", `2`, `{"a":2}`, 25),
			enriched("u", `3`, "null", 35), enriched("u", `4`, `{"a":3}`, 45)},
	}, {
		// Offset order within a topic: the click at 5 comes after the
		// one at 30 in its partition, so both see the profile of 20.
		name: "an older click waits for its predecessor",
		d: Data{
			Profiles: []Record{prof("u", `{"a":1}`, 10), prof("u", `{"a":2}`, 20)},
			Clicks:   []Record{clk("u", `1`, 30), clk("u", `2`, 5)},
		},
		want: []Output{enriched("u", `1`, `{"a":2}`, 30), enriched("u", `2`, `{"a":2}`, 5)},
	}, {
		name: "an unknown user and another user's profile",
		d:    Data{Profiles: []Record{prof("v", `{"v":1}`, 1)}, Clicks: []Record{clk("u", `1`, 2), clk("v", `2`, 3)}},
		want: []Output{enriched("u", `1`, "null", 2), enriched("v", `2`, `{"v":1}`, 3)},
	}} {
		got := Expected(c.d, 1)
		if !reflect.DeepEqual(got, [][]Output{c.want}) {
			t.Errorf("%s:\n got %v\nwant %v", c.name, got, c.want)
		}
	}
}

// Users of different partitions do not see each other's profiles, and
// each partition's output goes to the partition of its key.
func TestExpectedPerPartition(t *testing.T) {
	var a, b string
	for i := 0; a == "" || b == ""; i++ {
		k := fmt.Sprint("user", i)
		switch Partition([]byte(k), 2) {
		case 0:
			a = k
		case 1:
			b = k
		}
	}
	d := Data{Profiles: []Record{prof(a, `"A"`, 1), prof(b, `"B"`, 1)},
		Clicks: []Record{clk(b, `1`, 2), clk(a, `2`, 3), clk(b, `3`, 4)}}
	got := Expected(d, 2)
	want := [][]Output{{enriched(a, `2`, `"A"`, 3)}, {enriched(b, `1`, `"B"`, 2), enriched(b, `3`, `"B"`, 4)}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

// Partition agrees with franz-go's default partitioner (which the
// producer uses) for keyed records.
func TestPartitionMatchesKgo(t *testing.T) {
	part := kgo.StickyKeyPartitioner(nil).ForTopic("t")
	for i := range 2000 {
		key := []byte(fmt.Sprintf("user-%d-%s", i, string(rune('a'+i%26))))
		key = key[:min(len(key), 1+i%11)]
		for _, n := range []int{1, 3, 4, 7} {
			if got, want := Partition(key, n), part.Partition(&kgo.Record{Key: key}, n); got != want {
				t.Fatalf("Partition(%q, %d) = %d, kgo says %d", key, n, got, want)
			}
		}
	}
}

// The generated data is deterministic and exercises what the README
// promises.
func TestGenerate(t *testing.T) {
	d := Generate(1, 3000)
	if !reflect.DeepEqual(d, Generate(1, 3000)) {
		t.Fatal("the same seed made different data")
	}
	if reflect.DeepEqual(d, Generate(2, 3000)) {
		t.Fatal("different seeds made the same data")
	}
	if len(d.Clicks) != 3000 {
		t.Errorf("%d clicks", len(d.Clicks))
	}
	var deletes, ghosts, older, ties int
	profileAt := map[string]bool{}
	for _, r := range d.Profiles {
		if r.Value == nil {
			deletes++
		}
		profileAt[fmt.Sprint(string(r.Key), r.Timestamp)] = true
	}
	for i, r := range d.Clicks {
		if string(r.Key[:2]) == "gh" {
			ghosts++
		}
		if i > 0 && r.Timestamp < d.Clicks[i-1].Timestamp {
			older++
		}
		if profileAt[fmt.Sprint(string(r.Key), r.Timestamp)] {
			ties++
		}
	}
	parts := map[int]int{}
	for _, r := range d.Clicks {
		parts[Partition(r.Key, Partitions)]++
	}
	if deletes < 10 || ghosts < 50 || older < 50 || ties < 20 || len(parts) != Partitions || len(d.Profiles) < 100 {
		t.Errorf("deletes %d, ghost clicks %d, older clicks %d, ties %d, partitions %v, profiles %d",
			deletes, ghosts, older, ties, parts, len(d.Profiles))
	}
	// Some clicks see a profile, some see none (deleted or unknown users).
	var null, some int
	for _, outs := range Expected(d, Partitions) {
		for _, o := range outs {
			if strings.HasSuffix(o.Value, `,"profile":null}`) {
				null++
			} else {
				some++
			}
		}
	}
	if null < 100 || some < 1000 || null+some != len(d.Clicks) {
		t.Errorf("%d outputs with a profile, %d without, of %d clicks", some, null, len(d.Clicks))
	}
}
