// Package wasmbuild holds what the per-language operator builders
// (internal/gowasm, internal/cwasm, internal/rustwasm, internal/aswasm)
// share: building a directory into bytes once per process, so that the
// many tests that run one example operator pay for one build, and finding
// the repository's SDK for an operator.
package wasmbuild

import (
	"context"
	"os"
	"path/filepath"
	"sync"
)

// BuildFunc builds the operator in dir into the file out.
type BuildFunc func(ctx context.Context, dir, out string) error

// Memo builds each directory once and keeps the module's bytes. The zero
// value is ready to use.
type Memo struct {
	mu    sync.Mutex
	bytes map[string][]byte
}

// Bytes returns dir's module, building it with build the first time.
func (m *Memo) Bytes(dir string, build BuildFunc) ([]byte, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if b, ok := m.bytes[abs]; ok {
		return b, nil
	}
	tmp, err := os.MkdirTemp("", "sluice-wasmbuild-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	out := filepath.Join(tmp, "op.wasm")
	if err := build(context.Background(), abs, out); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(out)
	if err != nil {
		return nil, err
	}
	if m.bytes == nil {
		m.bytes = map[string][]byte{}
	}
	m.bytes[abs] = b
	return b, nil
}

// FindSDK returns the directory sdk/NAME of the sluice repository for the
// operator in dir: the first one holding every file of files (paths
// relative to it), walking up from dir, then from the current directory
// (sluice build runs from within the repository). It returns "" when there
// is none; the caller says what is missing.
func FindSDK(dir, name string, files ...string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	starts := []string{abs}
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	for _, start := range starts {
		for d := start; ; d = filepath.Dir(d) {
			sdk := filepath.Join(d, "sdk", name)
			if allFiles(sdk, files) {
				return sdk, nil
			}
			if filepath.Dir(d) == d {
				break
			}
		}
	}
	return "", nil
}

func allFiles(dir string, files []string) bool {
	for _, f := range files {
		if fi, err := os.Stat(filepath.Join(dir, f)); err != nil || fi.IsDir() {
			return false
		}
	}
	return true
}
