package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// parseRetention parses a retention period: a Go duration ("36h", "90m"),
// optionally led by a whole or fractional number of days ("7d", "1d12h"),
// since retention is usually thought of in days and Go durations stop at
// hours. "-1", "forever" and "infinite" mean keep forever and return -1.
func parseRetention(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	switch s {
	case "-1", "forever", "infinite":
		return -1, nil
	case "":
		return 0, fmt.Errorf("empty retention")
	}
	var total time.Duration
	rest := s
	if i := strings.IndexByte(s, 'd'); i >= 0 {
		days, err := strconv.ParseFloat(s[:i], 64)
		if err != nil || days < 0 {
			return 0, fmt.Errorf("retention %q: %q before \"d\" is not a number of days", s, s[:i])
		}
		total = time.Duration(days * float64(24*time.Hour))
		rest = s[i+1:]
	}
	if rest != "" {
		d, err := time.ParseDuration(rest)
		if err != nil {
			return 0, fmt.Errorf("retention %q: want a duration such as 7d, 36h or 1d12h", s)
		}
		if d < 0 {
			return 0, fmt.Errorf("retention %q is negative (use -1 to keep forever)", s)
		}
		total += d
	}
	if total <= 0 {
		return 0, fmt.Errorf("retention %q must be positive (use -1 to keep forever)", s)
	}
	return total, nil
}
