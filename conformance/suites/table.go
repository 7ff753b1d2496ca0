package suites

import (
	"fmt"
	"slices"
	"strings"
)

// cell summarizes results as "passed/ran", with failures and skips
// spelled out; "–" when nothing ran.
func cell(rs []Result) string {
	var pass, fail, skip int
	for _, r := range rs {
		switch r.Status {
		case Pass:
			pass++
		case Fail:
			fail++
		case Skip:
			skip++
		}
	}
	switch {
	case len(rs) == 0:
		return "–"
	case skip == len(rs):
		return "skipped"
	}
	s := fmt.Sprintf("%d/%d", pass, pass+fail)
	if fail > 0 {
		s += fmt.Sprintf(" (**%d FAIL**)", fail)
	}
	if skip > 0 {
		s += fmt.Sprintf(" (%d skipped)", skip)
	}
	return s
}

// runtimeColumns lists the runtimes of reports in order of appearance,
// single runtimes first, then the cross-runtime comparisons.
func runtimeColumns(reports ...Report) (single, cross []string) {
	for _, rep := range reports {
		for _, r := range rep.Results {
			list := &single
			if strings.Contains(r.Runtime, "=") || r.Suite == SuiteEquivalence {
				list = &cross
			}
			if !slices.Contains(*list, r.Runtime) {
				*list = append(*list, r.Runtime)
			}
		}
	}
	return single, cross
}

func selectResults(rep Report, suite, runtime string) []Result {
	var out []Result
	for _, r := range rep.Results {
		if r.Suite == suite && r.Runtime == runtime {
			out = append(out, r)
		}
	}
	return out
}

// Table renders a report as a markdown table: one row per suite, one
// column per runtime, passed/ran in each cell.
func (rep Report) Table() string {
	single, cross := runtimeColumns(rep)
	cols := append(append([]string{}, single...), cross...)
	var b strings.Builder
	fmt.Fprintf(&b, "| suite | %s |\n|---|%s\n", strings.Join(cols, " | "), strings.Repeat("---|", len(cols)))
	for _, s := range List() {
		row := []string{s.Name}
		ran := false
		for _, c := range cols {
			rs := selectResults(rep, s.Name, c)
			ran = ran || len(rs) > 0
			row = append(row, cell(rs))
		}
		if ran {
			fmt.Fprintf(&b, "| %s |\n", strings.Join(row, " | "))
		}
	}
	return b.String()
}

// TableRow is one module of a conformance matrix.
type TableRow struct {
	Language, Operator string
	Report             Report
}

// MatrixTable renders modules × runtimes × suites as a markdown table:
// a row per module, for each runtime a column per module suite (abi,
// operator), and the equivalence of the runtimes; the runtime suite, which
// needs no module, is the last row when runtimeSuite has results.
func MatrixTable(rows []TableRow, runtimeSuite Report) string {
	var reports []Report
	for _, r := range rows {
		reports = append(reports, r.Report)
	}
	single, cross := runtimeColumns(append(reports, runtimeSuite)...)
	var head []string
	for _, rt := range single {
		head = append(head, rt+" abi", rt+" operator")
	}
	for _, c := range cross {
		head = append(head, "equivalence "+c)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "| language | operator | %s |\n|---|---|%s\n", strings.Join(head, " | "), strings.Repeat("---|", len(head)))
	for _, r := range rows {
		row := []string{r.Language, r.Operator}
		for _, rt := range single {
			row = append(row, cell(selectResults(r.Report, SuiteABI, rt)), cell(selectResults(r.Report, SuiteOperator, rt)))
		}
		for _, c := range cross {
			row = append(row, cell(selectResults(r.Report, SuiteEquivalence, c)))
		}
		fmt.Fprintf(&b, "| %s |\n", strings.Join(row, " | "))
	}
	if len(runtimeSuite.Results) > 0 {
		row := []string{"(no module)", "runtime suite"}
		for _, rt := range single {
			row = append(row, cell(selectResults(runtimeSuite, SuiteRuntime, rt)), "–")
		}
		for _, c := range cross {
			row = append(row, cell(selectResults(runtimeSuite, SuiteEquivalence, c)))
		}
		fmt.Fprintf(&b, "| %s |\n", strings.Join(row, " | "))
	}
	return b.String()
}
