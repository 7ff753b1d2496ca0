package host

import (
	"context"
	"log/slog"

	"github.com/sluice-io/sluice/plugins"
	"github.com/sluice-io/sluice/plugins/wazero"
)

// newDefaultRuntime is the runtime a Manager uses unless told otherwise.
func newDefaultRuntime(ctx context.Context, cacheDir string, log *slog.Logger) (plugins.Runtime, error) {
	return wazero.New(ctx, wazero.Options{CacheDir: cacheDir, Logger: log})
}
