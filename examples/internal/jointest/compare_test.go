//go:build !wasip1

package jointest

import (
	"reflect"
	"strings"
	"testing"
)

func TestAtLeastOnce(t *testing.T) {
	for _, c := range []struct {
		got, want           string
		missing, unexpected []string
		duplicates          int
	}{
		{got: "a b b c", want: "a b c", duplicates: 1},
		{got: "a a b c c c", want: "a b c", duplicates: 3},
		{got: "a c", want: "a b c", missing: []string{"b"}},
		{got: "a b b", want: "a b b b", missing: []string{"b"}},
		{got: "a b d d", want: "a b", unexpected: []string{"d"}},
		{got: "b b x", want: "a b", missing: []string{"a"}, unexpected: []string{"x"}, duplicates: 1},
	} {
		missing, unexpected, duplicates := AtLeastOnce(strings.Fields(c.got), strings.Fields(c.want))
		if !reflect.DeepEqual(missing, c.missing) || !reflect.DeepEqual(unexpected, c.unexpected) || duplicates != c.duplicates {
			t.Errorf("AtLeastOnce(%s; %s) = %q, %q, %d; want %q, %q, %d", c.got, c.want,
				missing, unexpected, duplicates, c.missing, c.unexpected, c.duplicates)
		}
	}
}

func TestDiff(t *testing.T) {
	if got := Diff([]string{"a", "b", "b"}, []string{"a", "b"}); !strings.HasPrefix(got, "1 extra, 0 missing:\n  +1 b\n") {
		t.Errorf("Diff = %q", got)
	}
	if got := Diff([]string{"a"}, []string{"a", "c"}); !strings.HasPrefix(got, "0 extra, 1 missing:\n  -1 c\n") {
		t.Errorf("Diff = %q", got)
	}
}
