package host

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/sluice-io/sluice/plugins"
	"github.com/sluice-io/sluice/plugins/runtimes"
)

// compile compiles a job's module on the runtime its spec names, opening
// that runtime on first use.
func (m *Manager) compile(ctx context.Context, runtime string, wasm []byte) (plugins.Module, error) {
	rt, err := m.runtime(ctx, runtime)
	if err != nil {
		return nil, err
	}
	return rt.Compile(ctx, wasm)
}

func (m *Manager) runtime(ctx context.Context, name string) (plugins.Runtime, error) {
	if name == "" {
		name = DefaultRuntime
	}
	m.rtMu.Lock()
	defer m.rtMu.Unlock()
	if rt, ok := m.runtimes[name]; ok {
		return rt, nil
	}
	if m.runtimes == nil {
		return nil, errors.New("host: the job manager is closed")
	}
	rt, err := runtimes.Open(ctx, name, runtimes.Options{
		CacheDir: filepath.Join(m.cfg.DataDir, "wasm-cache"),
		Logger:   m.log,
	})
	if err != nil {
		return nil, fmt.Errorf("host: wasm runtime: %w", err)
	}
	m.runtimes[name] = rt
	return rt, nil
}

// closeRuntimes closes every runtime opened; later compiles fail.
func (m *Manager) closeRuntimes() error {
	m.rtMu.Lock()
	defer m.rtMu.Unlock()
	var errs []error
	for _, rt := range m.runtimes {
		errs = append(errs, rt.Close(context.Background()))
	}
	m.runtimes = nil
	return errors.Join(errs...)
}
