//go:build !wasip1

package jointest

import (
	"fmt"
	"sort"
)

// Diff shows the first records only one side has (as multisets), and how
// many each side has that the other does not.
func Diff(got, want []string) string {
	count := map[string]int{}
	for _, s := range got {
		count[s]++
	}
	for _, s := range want {
		count[s]--
	}
	var b []byte
	n, extra, missing := 0, 0, 0
	for s, c := range count {
		if c != 0 && n < 10 {
			b = fmt.Appendf(b, "  %+d %s\n", c, s)
			n++
		}
		extra, missing = extra+max(c, 0), missing+max(-c, 0)
	}
	return fmt.Sprintf("%d extra, %d missing:\n%s", extra, missing, b)
}

// AtLeastOnce compares got with want as multisets, allowing more copies in
// got of what want has: it returns the records of want that got has fewer
// times (sorted, once each), the records of got that want does not have
// (sorted, once each), and the number of extra copies in got of want's
// records.
func AtLeastOnce(got, want []string) (missing, unexpected []string, duplicates int) {
	count := map[string]int{}
	for _, s := range got {
		count[s]++
	}
	for _, s := range want {
		count[s]--
	}
	wanted := map[string]bool{}
	for _, s := range want {
		wanted[s] = true
	}
	for s, c := range count {
		switch {
		case c < 0:
			missing = append(missing, s)
		case c > 0 && !wanted[s]:
			unexpected = append(unexpected, s)
		case c > 0:
			duplicates += c
		}
	}
	sort.Strings(missing)
	sort.Strings(unexpected)
	return missing, unexpected, duplicates
}
