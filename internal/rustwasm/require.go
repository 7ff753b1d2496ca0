package rustwasm

import (
	"testing"

	"github.com/sluice-io/sluice/internal/wasmbuild"
)

// RequireToolchain skips a test when rustc or its wasm32-wasi standard
// library is missing, except under CI=true, where it fails the test.
func RequireToolchain(t testing.TB) {
	t.Helper()
	wasmbuild.RequireToolchain(t, "Rust", CheckToolchain)
}
