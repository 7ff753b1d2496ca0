package host

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/viper"
	"go.yaml.in/yaml/v3"

	"github.com/sluice-io/sluice/plugins/runtimes"
)

// Errors callers branch on. The admin API maps ErrInvalidJob to 400 and
// ErrNoSuchJob to 404.
var (
	// ErrInvalidJob: the job spec, its module or its topics are not
	// acceptable; the message says what to fix.
	ErrInvalidJob = errors.New("invalid job")
	// ErrNoSuchJob: no job with that name is deployed.
	ErrNoSuchJob = errors.New("no such job")
	// ErrClosed: the manager is closed.
	ErrClosed = errors.New("host: manager closed")
)

// Defaults applied by NormalizeSpec.
const (
	DefaultRuntime        = runtimes.Default
	DefaultCommitInterval = time.Second
	DefaultMaxBatchBytes  = 1 << 20
	DefaultMaxInputWait   = 100 * time.Millisecond
	maxJobName            = 200
	// maxMemoryBytes is what a 32-bit Wasm memory can address.
	maxMemoryBytes = 4 << 30
)

// SpecError lists every problem found in a job file or spec, each naming
// the file (when there is one), the key and the problem, so that a user
// fixes them all in one go. It wraps ErrInvalidJob.
type SpecError struct {
	File     string
	Problems []string
}

func (e *SpecError) Error() string {
	prefix := ""
	if e.File != "" {
		prefix = e.File + ": "
	}
	if len(e.Problems) == 1 {
		return prefix + e.Problems[0]
	}
	var b strings.Builder
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(prefix + p)
	}
	return b.String()
}

func (e *SpecError) Unwrap() error { return ErrInvalidJob }

// problems collects the problems of one spec.
type problems struct{ list []string }

func (p *problems) add(key, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if key != "" {
		msg = key + ": " + msg
	}
	p.list = append(p.list, msg)
}

// hasKey reports whether a problem with msg's key is already listed.
func (p *problems) hasKey(msg string) bool {
	key, _, _ := strings.Cut(msg, ": ")
	for _, m := range p.list {
		if k, _, _ := strings.Cut(m, ": "); k == key || strings.HasPrefix(key, k+".") || strings.HasPrefix(key, k+"[") {
			return true
		}
	}
	return false
}

func (p *problems) err(file string) error {
	if len(p.list) == 0 {
		return nil
	}
	return &SpecError{File: file, Problems: p.list}
}

// LoadJobFile reads and validates a job file (YAML). Module and source
// paths are made absolute relative to the file's directory.
func LoadJobFile(path string) (JobSpec, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return JobSpec{}, fmt.Errorf("job file: %w", err)
	}
	return ParseJob(path, data)
}

// Keys a job file may contain, for the unknown-key check and suggestions.
var (
	topKeys    = []string{"name", "module", "source", "runtime", "inputs", "outputs", "stores", "tables", "parameters", "limits", "on-error", "dead-letter-topic", "commit-interval", "max-input-wait"}
	outputKeys = []string{"topic", "partitions", "config"}
	storeKeys  = []string{"name", "changelog"}
	tableKeys  = []string{"name", "topic", "bootstrap"}
	limitKeys  = []string{"memory", "call-timeout", "max-output-bytes", "max-batch-bytes"}
)

// ParseJob parses and validates job file data (YAML). filename names the
// file in errors and anchors relative module and source paths.
func ParseJob(filename string, data []byte) (JobSpec, error) {
	v := viper.New()
	v.SetConfigType("yaml")
	if err := v.ReadConfig(bytes.NewReader(data)); err != nil {
		return JobSpec{}, &SpecError{File: filename, Problems: []string{"not valid YAML: " + err.Error()}}
	}
	settings := v.AllSettings()
	var p problems
	checkKeys(&p, "", settings, topKeys)

	var spec JobSpec
	spec.Name = getString(&p, settings, "name", "")
	spec.Module = getString(&p, settings, "module", "")
	spec.Source = getString(&p, settings, "source", "")
	spec.Runtime = getString(&p, settings, "runtime", "")
	spec.Inputs = getStringList(&p, settings, "inputs")
	spec.Outputs = getOutputs(&p, settings["outputs"])
	spec.Stores = getStores(&p, settings["stores"])
	spec.Tables = getTables(&p, settings["tables"])
	spec.MaxInputWait = getDuration(&p, settings, "max-input-wait", "max-input-wait")
	spec.OnError = ErrorPolicy(getString(&p, settings, "on-error", ""))
	spec.DeadLetterTopic = getString(&p, settings, "dead-letter-topic", "")
	spec.CommitInterval = getDuration(&p, settings, "commit-interval", "commit-interval")
	if raw, ok := settings["parameters"]; ok && raw != nil {
		if _, isMap := raw.(map[string]any); !isMap {
			p.add("parameters", "must be a map of names to values")
		} else {
			// Viper lower-cases every key; an operator's parameter names are
			// its own, so they are read again with their case kept.
			var raw struct {
				Parameters map[string]any `yaml:"parameters"`
			}
			if err := yaml.Unmarshal(data, &raw); err != nil {
				p.add("parameters", "%v", err)
			}
			spec.Parameters = raw.Parameters
		}
	}
	if raw, ok := settings["limits"]; ok && raw != nil {
		if m, isMap := raw.(map[string]any); !isMap {
			p.add("limits", "must be a map with keys %s", strings.Join(limitKeys, ", "))
		} else {
			checkKeys(&p, "limits.", m, limitKeys)
			if s, ok := m["memory"]; ok {
				if n, ok := parseSize(&p, "limits.memory", s); ok {
					spec.Limits.MemoryBytes = uint64(n)
				}
			}
			spec.Limits.CallTimeout = getDuration(&p, m, "call-timeout", "limits.call-timeout")
			if s, ok := m["max-output-bytes"]; ok {
				if n, ok := parseSize(&p, "limits.max-output-bytes", s); ok {
					spec.Limits.MaxOutputBytes = int(n)
				}
			}
			if s, ok := m["max-batch-bytes"]; ok {
				if n, ok := parseSize(&p, "limits.max-batch-bytes", s); ok {
					spec.Limits.MaxBatchBytes = int(n)
				}
			}
		}
	}
	switch {
	case spec.Module == "" && spec.Source == "":
		p.add("module", "missing: give the .wasm file (module) or the operator's source directory (source)")
	case spec.Module != "" && spec.Source != "":
		p.add("module", "give either module or source, not both")
	}
	dir := filepath.Dir(filename)
	if spec.Module != "" {
		spec.Module = absFrom(dir, spec.Module)
	}
	if spec.Source != "" {
		spec.Source = absFrom(dir, spec.Source)
	}
	spec, err := normalize(spec, filename)
	var se *SpecError
	if errors.As(err, &se) {
		// Keys that failed to parse are zero in spec; report each key's
		// first problem only.
		for _, msg := range se.Problems {
			if !p.hasKey(msg) {
				p.list = append(p.list, msg)
			}
		}
	}
	if len(p.list) > 0 {
		return JobSpec{}, p.err(filename)
	}
	return spec, nil
}

func absFrom(dir, path string) string {
	if !filepath.IsAbs(path) {
		path = filepath.Join(dir, path)
	}
	if abs, err := filepath.Abs(path); err == nil {
		return abs
	}
	return path
}

// NormalizeSpec validates a spec (from a job file or the admin API) and
// fills in the defaults. Errors are *SpecError.
func NormalizeSpec(spec JobSpec) (JobSpec, error) { return normalize(spec, "") }

func normalize(spec JobSpec, file string) (JobSpec, error) {
	var p problems
	if spec.Name == "" {
		p.add("name", "missing")
	} else if msg := checkName(spec.Name); msg != "" {
		p.add("name", "%q %s", spec.Name, msg)
	}
	if spec.Runtime == "" {
		spec.Runtime = DefaultRuntime
	}
	if err := runtimes.Check(spec.Runtime); err != nil {
		p.add("runtime", "%v", err)
	}
	if len(spec.Inputs) == 0 {
		p.add("inputs", "at least one input topic is needed")
	}
	seen := map[string]string{}
	for i, in := range spec.Inputs {
		key := fmt.Sprintf("inputs[%d]", i)
		if msg := checkName(in); msg != "" {
			p.add(key, "topic %q %s", in, msg)
		} else if prev, dup := seen[in]; dup {
			p.add(key, "topic %q is already %s", in, prev)
		} else {
			seen[in] = key
		}
	}
	if len(spec.Outputs) == 0 {
		p.add("outputs", "at least one output topic is needed")
	}
	outSeen := map[string]bool{}
	for i, out := range spec.Outputs {
		key := fmt.Sprintf("outputs[%d]", i)
		switch msg := checkName(out.Topic); {
		case out.Topic == "":
			p.add(key+".topic", "missing")
		case msg != "":
			p.add(key+".topic", "topic %q %s", out.Topic, msg)
		case seen[out.Topic] != "":
			p.add(key+".topic", "topic %q is also an input (a job that reads its own output never stops)", out.Topic)
		case outSeen[out.Topic]:
			p.add(key+".topic", "topic %q is listed twice", out.Topic)
		}
		outSeen[out.Topic] = true
		if out.Partitions < 0 || out.Partitions > 10000 {
			p.add(key+".partitions", "%d is not a partition count (1..10000, or leave it out to use the inputs' count)", out.Partitions)
		}
	}
	storeSeen := map[string]bool{}
	for i := range spec.Stores {
		s := &spec.Stores[i]
		key := fmt.Sprintf("stores[%d]", i)
		switch {
		case s.Name == "":
			p.add(key+".name", "missing")
		case len(s.Name) > 255:
			p.add(key+".name", "longer than 255 bytes")
		case storeSeen[s.Name]:
			p.add(key+".name", "store %q is defined twice", s.Name)
		}
		storeSeen[s.Name] = true
		if s.Changelog == "" && s.Name != "" && spec.Name != "" {
			s.Changelog = spec.Name + "-" + s.Name + "-changelog"
		}
		if s.Changelog != "" {
			if msg := checkName(s.Changelog); msg != "" {
				p.add(key+".changelog", "topic %q %s", s.Changelog, msg)
			} else if seen[s.Changelog] != "" || outSeen[s.Changelog] {
				p.add(key+".changelog", "topic %q is also an input or output of the job", s.Changelog)
			}
		}
	}
	for i := range spec.Tables {
		tb := &spec.Tables[i]
		key := fmt.Sprintf("tables[%d]", i)
		if tb.Name == "" {
			tb.Name = tb.Topic
		}
		switch tb.Bootstrap {
		case "":
			tb.Bootstrap = BootstrapTimestamp
		case BootstrapTimestamp, BootstrapFull:
		default:
			p.add(key+".bootstrap", "%q is not a bootstrap mode (use timestamp or full)", tb.Bootstrap)
		}
		switch msg := checkName(tb.Topic); {
		case tb.Topic == "":
			p.add(key+".topic", "missing")
		case msg != "":
			p.add(key+".topic", "topic %q %s", tb.Topic, msg)
		case seen[tb.Topic] != "":
			p.add(key+".topic", "topic %q is also an input (a topic is either a stream or a table of the job)", tb.Topic)
		case outSeen[tb.Topic]:
			p.add(key+".topic", "topic %q is also an output (a job cannot write its own table)", tb.Topic)
		}
		switch {
		case tb.Name == "":
		case len(tb.Name) > 255:
			p.add(key+".name", "longer than 255 bytes")
		case storeSeen[tb.Name]:
			p.add(key+".name", "%q is already the name of a store or table of the job", tb.Name)
		}
		storeSeen[tb.Name] = true
	}
	if spec.MaxInputWait == 0 {
		spec.MaxInputWait = DefaultMaxInputWait
	}
	if spec.MaxInputWait < 0 {
		p.add("max-input-wait", "%s is negative", spec.MaxInputWait)
	}
	if spec.OnError == "" {
		spec.OnError = PolicyFail
	}
	switch spec.OnError {
	case PolicyFail, PolicySkip, PolicyDeadLetter:
	default:
		p.add("on-error", "%q is not a policy (use fail, skip or dead-letter)", string(spec.OnError))
	}
	if spec.OnError == PolicyDeadLetter {
		if spec.DeadLetterTopic == "" && spec.Name != "" {
			spec.DeadLetterTopic = spec.Name + "-dlq"
		}
		if msg := checkName(spec.DeadLetterTopic); msg != "" && spec.DeadLetterTopic != "" {
			p.add("dead-letter-topic", "topic %q %s", spec.DeadLetterTopic, msg)
		} else if seen[spec.DeadLetterTopic] != "" {
			p.add("dead-letter-topic", "topic %q is also an input", spec.DeadLetterTopic)
		}
	}
	if spec.CommitInterval == 0 {
		spec.CommitInterval = DefaultCommitInterval
	}
	if spec.CommitInterval < 0 {
		p.add("commit-interval", "%s is negative", spec.CommitInterval)
	}
	l := &spec.Limits
	if l.MemoryBytes > maxMemoryBytes {
		p.add("limits.memory", "%d bytes is more than a 32-bit Wasm memory can hold (4GiB)", l.MemoryBytes)
	} else if l.MemoryBytes != 0 && l.MemoryBytes < 64<<10 {
		p.add("limits.memory", "%d bytes is less than one 64KiB Wasm page", l.MemoryBytes)
	}
	if l.CallTimeout < 0 {
		p.add("limits.call-timeout", "%s is negative", l.CallTimeout)
	}
	if l.MaxOutputBytes < 0 {
		p.add("limits.max-output-bytes", "%d is negative", l.MaxOutputBytes)
	}
	if l.MaxBatchBytes < 0 {
		p.add("limits.max-batch-bytes", "%d is negative", l.MaxBatchBytes)
	} else if l.MaxBatchBytes > 64<<20 {
		p.add("limits.max-batch-bytes", "%d is more than 64MiB", l.MaxBatchBytes)
	}
	if l.MaxBatchBytes == 0 {
		l.MaxBatchBytes = DefaultMaxBatchBytes
	}
	return spec, p.err(file)
}

// checkName returns what is wrong with a job or topic name, or "".
func checkName(name string) string {
	if name == "" {
		return "is empty"
	}
	if len(name) > maxJobName {
		return fmt.Sprintf("is longer than %d characters", maxJobName)
	}
	if name == "." || name == ".." {
		return "is not allowed"
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Sprintf("contains %q (use letters, digits, '.', '_' and '-')", c)
		}
	}
	return ""
}

// checkKeys reports every key of m that is not in allowed.
func checkKeys(p *problems, prefix string, m map[string]any, allowed []string) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if contains(allowed, k) {
			continue
		}
		msg := "unknown key"
		if s := suggest(k, allowed); s != "" {
			msg += fmt.Sprintf(" (did you mean %s?)", s)
		} else {
			msg += fmt.Sprintf(" (known keys: %s)", strings.Join(allowed, ", "))
		}
		p.add(prefix+k, "%s", msg)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// suggest returns the allowed key closest to k, if it is close enough to
// be a typo.
func suggest(k string, allowed []string) string {
	best, bestD := "", 3
	for _, a := range allowed {
		if d := editDistance(k, a); d < bestD {
			best, bestD = a, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func describe(v any) string {
	switch v := v.(type) {
	case string:
		return strconv.Quote(v)
	case []any:
		return "a list"
	case map[string]any:
		return "a map"
	case nil:
		return "empty"
	}
	return fmt.Sprint(v)
}

func getString(p *problems, m map[string]any, key, def string) string {
	v, ok := m[key]
	if !ok || v == nil {
		return def
	}
	switch s := v.(type) {
	case string:
		return s
	case int, int64, float64, bool:
		// YAML reads `name: 123` as a number; a name is still a name.
		if key == "name" || strings.HasSuffix(key, "topic") {
			return fmt.Sprint(s)
		}
	}
	p.add(key, "%s is not a string", describe(v))
	return def
}

func getStringList(p *problems, m map[string]any, key string) []string {
	v, ok := m[key]
	if !ok || v == nil {
		return nil
	}
	switch l := v.(type) {
	case string:
		// A single topic written without list syntax.
		return []string{l}
	case []any:
		out := make([]string, 0, len(l))
		for i, x := range l {
			s, ok := x.(string)
			if !ok {
				p.add(fmt.Sprintf("%s[%d]", key, i), "%s is not a topic name", describe(x))
				continue
			}
			out = append(out, s)
		}
		return out
	}
	p.add(key, "%s is not a list of topic names", describe(v))
	return nil
}

func getOutputs(p *problems, v any) []OutputSpec {
	if v == nil {
		return nil
	}
	list, ok := v.([]any)
	if !ok {
		if s, isStr := v.(string); isStr {
			return []OutputSpec{{Topic: s}}
		}
		p.add("outputs", "%s is not a list of topics", describe(v))
		return nil
	}
	out := make([]OutputSpec, 0, len(list))
	for i, x := range list {
		key := fmt.Sprintf("outputs[%d]", i)
		switch o := x.(type) {
		case string:
			out = append(out, OutputSpec{Topic: o})
		case map[string]any:
			checkKeys(p, key+".", o, outputKeys)
			spec := OutputSpec{Topic: getString(p, o, "topic", "")}
			if n, ok := o["partitions"]; ok {
				c, isInt := toInt(n)
				if !isInt || c < 1 || c > 10000 {
					p.add(key+".partitions", "%s is not a partition count (1..10000)", describe(n))
				} else {
					spec.Partitions = int32(c)
				}
			}
			if c, ok := o["config"]; ok && c != nil {
				cm, isMap := c.(map[string]any)
				if !isMap {
					p.add(key+".config", "%s is not a map of topic configs", describe(c))
				} else {
					spec.Config = make(map[string]string, len(cm))
					for k, val := range cm {
						spec.Config[k] = fmt.Sprint(val)
					}
				}
			}
			if spec.Topic == "" {
				p.add(key+".topic", "missing")
			}
			out = append(out, spec)
		default:
			p.add(key, "%s is neither a topic name nor a map with topic, partitions, config", describe(x))
		}
	}
	return out
}

func getStores(p *problems, v any) []StoreSpec {
	if v == nil {
		return nil
	}
	list, ok := v.([]any)
	if !ok {
		p.add("stores", "%s is not a list of stores", describe(v))
		return nil
	}
	out := make([]StoreSpec, 0, len(list))
	for i, x := range list {
		key := fmt.Sprintf("stores[%d]", i)
		switch s := x.(type) {
		case string:
			out = append(out, StoreSpec{Name: s})
		case map[string]any:
			checkKeys(p, key+".", s, storeKeys)
			out = append(out, StoreSpec{
				Name:      getString(p, s, "name", ""),
				Changelog: getString(p, s, "changelog", ""),
			})
		default:
			p.add(key, "%s is not a store (a map with name and changelog)", describe(x))
		}
	}
	return out
}

func getTables(p *problems, v any) []TableSpec {
	if v == nil {
		return nil
	}
	list, ok := v.([]any)
	if !ok {
		p.add("tables", "%s is not a list of tables", describe(v))
		return nil
	}
	out := make([]TableSpec, 0, len(list))
	for i, x := range list {
		key := fmt.Sprintf("tables[%d]", i)
		switch tb := x.(type) {
		case string:
			out = append(out, TableSpec{Name: tb, Topic: tb})
		case map[string]any:
			checkKeys(p, key+".", tb, tableKeys)
			out = append(out, TableSpec{
				Name:      getString(p, tb, "name", ""),
				Topic:     getString(p, tb, "topic", ""),
				Bootstrap: getString(p, tb, "bootstrap", ""),
			})
		default:
			p.add(key, "%s is not a table (a topic name, or a map with name and topic)", describe(x))
		}
	}
	return out
}

func toInt(v any) (int64, bool) {
	switch n := v.(type) {
	case int:
		return int64(n), true
	case int64:
		return n, true
	case uint64:
		return int64(n), n < 1<<63
	case float64:
		if n == float64(int64(n)) {
			return int64(n), true
		}
	}
	return 0, false
}

func getDuration(p *problems, m map[string]any, key, fullKey string) time.Duration {
	v, ok := m[key]
	if !ok || v == nil {
		return 0
	}
	s, isStr := v.(string)
	if !isStr {
		p.add(fullKey, "%s is not a duration (use e.g. 5s)", describe(v))
		return 0
	}
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		p.add(fullKey, "%q is not a duration (use e.g. 5s)", s)
		return 0
	}
	if d <= 0 {
		p.add(fullKey, "%q must be positive", s)
		return 0
	}
	return d
}

var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30},
	{"KB", 1000}, {"MB", 1000 * 1000}, {"GB", 1000 * 1000 * 1000},
	{"B", 1},
}

// parseSize reads a byte size: a plain number of bytes or a number with
// a unit (KiB, MiB, GiB, KB, MB, GB).
func parseSize(p *problems, key string, v any) (int64, bool) {
	bad := func() (int64, bool) {
		p.add(key, "%s is not a size (use e.g. 64MiB, 1GiB or a number of bytes)", describe(v))
		return 0, false
	}
	if n, ok := toInt(v); ok {
		if n <= 0 {
			p.add(key, "%d must be positive", n)
			return 0, false
		}
		return n, true
	}
	s, ok := v.(string)
	if !ok {
		return bad()
	}
	s = strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range sizeUnits {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 || n > (1<<62)/mult {
		return bad()
	}
	return n * mult, true
}
