// Package wasmbuild holds what the per-language operator builders
// (internal/gowasm, internal/cwasm, internal/rustwasm) share: building a
// directory into bytes once per process, so that the many tests that run
// one example operator pay for one build.
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
