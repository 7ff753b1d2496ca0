package suites

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/sluice-io/sluice/abi"
)

// readHex reads a golden vector file: hex with '#' comments.
func readHex(t *testing.T, path string) []byte {
	t.Helper()
	text, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var digits strings.Builder
	for _, line := range strings.Split(string(text), "\n") {
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		digits.WriteString(strings.Join(strings.Fields(strings.ReplaceAll(line, "--", "")), ""))
	}
	b, err := hex.DecodeString(digits.String())
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return b
}

// The reference split agrees with a second, differently written oracle
// (bytes.FieldsFunc over the six separators) on the edge cases and on
// fuzzed text.
func FuzzReferenceWords(f *testing.F) {
	for _, s := range []string{"", " ", "a", " a b ", "a\u00a0b", "\t\n\v\f\r", "\x85\xa0", "x\x00y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want := bytes.FieldsFunc([]byte(s), func(r rune) bool {
			return r == ' ' || r == '\t' || r == '\n' || r == '\v' || r == '\f' || r == '\r'
		})
		// FieldsFunc decodes UTF-8: a separator byte is never part of a
		// multi-byte sequence, so both split at the same places.
		if got := refWords([]byte(s)); fmt.Sprintf("%q", got) != fmt.Sprintf("%q", want) {
			t.Errorf("refWords(%q) = %q, want %q", s, got, want)
		}
	})
}

func TestReferenceCount(t *testing.T) {
	outs, next, failed := refCount(map[string]string{"old": "41"}, keys("b", "a", "b", "old", "b"))
	var got []string
	for _, o := range outs {
		got = append(got, string(o.Key)+"="+string(o.Value))
	}
	if failed != -1 || strings.Join(got, " ") != "b=3 a=1 old=42" || fmt.Sprint(next) != "map[a:1 b:3 old:42]" {
		t.Errorf("outputs %q, state %v, failed %d", got, next, failed)
	}
	// The int64 maximum wraps, as the Go SDK's does.
	if outs, _, _ := refCount(map[string]string{"m": "9223372036854775807"}, keys("m")); string(outs[0].Value) != "-9223372036854775808" {
		t.Errorf("max+1 = %s", outs[0].Value)
	}
	_, next, failed = refCount(map[string]string{"v": "+1"}, keys("a", "v"))
	if failed != 1 || next["a"] != "" {
		t.Errorf("corrupt count: failed %d, state %v", failed, next)
	}
	for s, ok := range map[string]bool{"0": true, "007": true, "-0": true, "-9223372036854775808": true,
		"": false, "-": false, "+1": false, " 1": false, "1.5": false, "9223372036854775808": false, "00000000000000000001": false} {
		if _, valid := parseCount(s); valid != ok {
			t.Errorf("parseCount(%q) valid = %v", s, valid)
		}
	}
}

// deliver follows the skip policy: re-run the records before a failed one,
// drop it, continue after it.
func TestDeliverSkipPolicy(t *testing.T) {
	var batches []string
	calls := deliver(keys("a", "b", "x", "c", "x"), func(b []abi.Record) procCall {
		var ks []string
		failed := -1
		for i, r := range b {
			ks = append(ks, string(r.Key))
			if string(r.Key) == "x" && failed < 0 {
				failed = i
			}
		}
		batches = append(batches, strings.Join(ks, ""))
		return procCall{batch: b, failed: failed}
	})
	if got := strings.Join(batches, " "); got != "abxcx ab cx c" || len(calls) != 4 {
		t.Errorf("calls %q (%d)", got, len(calls))
	}
}

func TestInferOperator(t *testing.T) {
	for file, want := range map[string]string{
		"split.wasm": "split", "/x/wordcount-count.wasm": "count", "examples/passthrough/go/passthrough/passthrough.wasm": "passthrough",
		"op.wasm": "", "split-count.wasm": "", "/tmp/split/op.wasm": "",
	} {
		if got := InferOperator(file); got != want {
			t.Errorf("InferOperator(%q) = %q, want %q", file, got, want)
		}
	}
}

// The generated workload has what it promises: batches of one or two, an
// empty one, one over 300 KiB, null and empty values, headers.
func TestGeneratedRecords(t *testing.T) {
	bs := generatedRecords(40, 300, 1)
	var big, empty, nulls, headers bool
	for _, b := range bs {
		big = big || totalSize(b) > 300<<10
		empty = empty || len(b) == 0
		for _, r := range b {
			nulls = nulls || r.Value == nil
			headers = headers || len(r.Headers) > 0
		}
	}
	if len(bs) != 40 || !big || !empty || !nulls || !headers {
		t.Errorf("batches %d, big %v, empty %v, null values %v, headers %v", len(bs), big, empty, nulls, headers)
	}
}
