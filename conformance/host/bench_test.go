package host

import (
	"os/exec"
	"regexp"
	"testing"

	"github.com/sluice-io/sluice/internal/testnode"
)

// `sluice bench pipeline` runs both cases end to end, checks the word
// counts it produced against the input, and prints a table with non-zero
// rates. A smoke test: the figures themselves are not asserted
// (performance is measured, not tested).
func TestBenchPipelineSmoke(t *testing.T) {
	cmd := exec.Command(testnode.Binary(t), "bench", "pipeline", "--records", "200000", "--data-dir", t.TempDir())
	cmd.Dir = repoRoot()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("sluice bench pipeline: %v\n%s", err, out)
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^\s+case\s+lang\s+runtime\s+input\s+seconds\s+per second\s+input MB/s\s+verified\s*$`),
		regexp.MustCompile(`(?m)^\s+passthrough\s+go\s+wazero\s+200,000 records\s+[\d.]+\s+[1-9][\d,]* records/s\s+[\d.]*[1-9][\d.]*\s+ok: 200,000 out, 1,200 sampled equal\s*$`),
		regexp.MustCompile(`(?m)^\s+wordcount\s+go\s+wazero\s+200,\d{3} words\s+[\d.]+\s+[1-9][\d,]* words/s\s+[\d.]*[1-9][\d.]*\s+ok: [1-9][\d,]* words' counts\s*$`),
		regexp.MustCompile(`(?m)^\s+passthrough\s+go\s+wazero\s+passthrough\s+200,000\s+200,000\s+[\d.]+s\s+[1-9][\d,]*\s+0\s*$`),
		regexp.MustCompile(`(?m)^\s+wordcount\s+go\s+wazero\s+split\s+[1-9][\d,]*\s+200,\d{3}\s+[\d.]+s\s+[1-9][\d,]*\s+0\s*$`),
		// count emits once per word per batch, so fewer records than words.
		regexp.MustCompile(`(?m)^\s+wordcount\s+go\s+wazero\s+count\s+200,\d{3}\s+[1-9][\d,]*\s+[\d.]+s\s+[1-9][\d,]*\s+0\s*$`),
		regexp.MustCompile(`(?m)^verified: the latest count in word-counts of each of the [1-9]\d* distinct words matches the input$`),
	} {
		if !want.Match(out) {
			t.Errorf("bench pipeline output lacks %s:\n%s", want, out)
		}
	}
}
