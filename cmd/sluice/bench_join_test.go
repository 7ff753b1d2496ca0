package main

import (
	"context"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/sluice-io/sluice/internal/cwasm"
	"github.com/sluice-io/sluice/internal/kafkahash"
)

// `bench join` runs both cases at tiny sizes, verifies each row against
// its model and prints the tables. A smoke test: the figures are not
// asserted.
func TestBenchJoin(t *testing.T) {
	langs := []string{"go"}
	if cwasm.CheckToolchain(context.Background()) == nil {
		langs = append(langs, "c")
	}
	t.Logf("languages: %v", langs)
	lang := "go"
	if len(langs) > 1 {
		lang = "all"
	}
	args := []string{"bench", "join", "--lang", lang, "--records", "3000", "--table-rows", "2000", "--open-windows", "300",
		"--partitions", "2", "--data-dir", t.TempDir()}
	r := sluice(t, "", args...)
	if r.code != 0 {
		t.Fatalf("%s: %s", strings.Join(args, " "), r)
	}
	for _, want := range []string{
		`case\s+lang\s+runtime\s+records\s+seconds\s+per second\s+state on disk\s+verified`,
		`case\s+lang\s+runtime\s+phase\s+records\s+seconds\s+per second`,
		`case\s+lang\s+runtime\s+state directories\s+topics\s+of`,
	} {
		if !regexp.MustCompile(`(?m)^\s*` + want + `\s*$`).MatchString(r.stdout) {
			t.Errorf("output lacks a header matching %s:\n%s", want, r.stdout)
		}
	}
	for _, l := range langs {
		for _, want := range []string{
			// 1% of the clicks are for users without a profile.
			`enrich\s+` + l + `\s+\w+\s+3,000 clicks\s+[\d.]+\s+[1-9][\d,]* clicks/s\s+[\d.]+ [kMG]?B\s+ok: 3,000 out == clicks, all equal \(2,9\d\d with a profile\)`,
			`attribution\s+` + l + `\s+\w+\s+3,000 records\s+[\d.]+\s+[1-9][\d,]* records/s\s+[\d.]+ [kMG]?B\s+ok: [1-9][\d,]* attributed == clicks, [1-9][\d,]* unmatched, 0 late`,
			`enrich\s+` + l + `\s+\w+\s+bootstrap\s+2,000 rows\s+[\d.]+\s+[1-9][\d,]* rows/s`,
			`attribution\s+` + l + `\s+\w+\s+open windows\s+300 impressions\s+[\d.]+\s+[1-9][\d,]* impressions/s`,
			`enrich\s+` + l + `\s+\w+\s+[\d.]+ [kMG]?B\s+[\d.]+ [kMG]?B\s+table topic \S+`,
			`attribution\s+` + l + `\s+\w+\s+[\d.]+ [kMG]?B\s+[\d.]+ [kMG]?B\s+changelogs`,
		} {
			if !regexp.MustCompile(`(?m)^\s*` + want + `\s*$`).MatchString(r.stdout) {
				t.Errorf("output lacks a row matching %s:\n%s", want, r.stdout)
			}
		}
	}
}

// The benchmark places keys where Kafka's partitioner (and the host) does.
func TestBenchJoinKeyPartition(t *testing.T) {
	for i := range 1000 {
		key := "u" + strconv.Itoa(i)
		for _, n := range []int{1, 2, 4, 7} {
			if got, want := kafkahash.Partition([]byte(key), int32(n)), kafkaPartition(key, n); int(got) != want {
				t.Fatalf("kafkahash.Partition(%q, %d) = %d, Kafka's partitioner says %d", key, n, got, want)
			}
		}
	}
}

// The attribution data keeps the promises the model relies on: per
// partition, timestamps never decrease (nothing is late); every click is
// on an earlier impression of its partition within the window, once; the
// open impressions are never clicked; and about open impressions are
// held unexpired throughout the mixed records.
func TestBenchJoinAttributionData(t *testing.T) {
	const (
		open, mixed = 1000, 30000
		window      = 600_000
		lateness    = 60_000
	)
	g, err := newAttrGen(open, mixed, 3, window, lateness)
	if err != nil {
		t.Fatal(err)
	}
	if got := int64(len(g.impTS)) + g.nClicks; got != open+mixed {
		t.Fatalf("%d records, want %d", got, open+mixed)
	}
	if g.nClicks < mixed/3*9/10 {
		t.Errorf("%d clicks of %d records, want about a third", g.nClicks, mixed)
	}
	clickedBy := map[uint32]bool{}
	for p := range g.clicks {
		last := int64(-1)
		for _, k := range g.impressions[p] {
			if g.impTS[k] < last {
				t.Fatalf("partition %d: impression %d at %d after %d", p, k, g.impTS[k], last)
			}
			last = g.impTS[k]
			if g.impPart[k] != int32(p) {
				t.Fatalf("impression %d in partition %d, recorded %d", k, p, g.impPart[k])
			}
		}
		last = -1
		for _, c := range g.clicks[p] {
			if c.ts < last {
				t.Fatalf("partition %d: click at %d after %d", p, c.ts, last)
			}
			last = c.ts
			d := c.ts - g.impTS[c.imp]
			switch {
			case d < 0 || d > window:
				t.Fatalf("click on %d %d ms after the impression", c.imp, d)
			case int64(c.imp) < open:
				t.Fatalf("open impression %d clicked", c.imp)
			case clickedBy[c.imp] || !g.clicked[c.imp]:
				t.Fatalf("impression %d clicked twice or not marked", c.imp)
			case g.impPart[c.imp] != int32(p):
				t.Fatalf("click on %d in partition %d, its impression in %d", c.imp, p, g.impPart[c.imp])
			}
			clickedBy[c.imp] = true
		}
	}
	// Held impressions when the last record arrives: unexpired ones.
	end := g.impTS[len(g.impTS)-1]
	var held int
	for k := range g.impTS {
		if g.impTS[k]+window+lateness >= end {
			held++
		}
	}
	if held < open*8/10 || held > open*12/10 {
		t.Errorf("%d impressions held at the end, want about %d", held, open)
	}
}
