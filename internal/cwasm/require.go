package cwasm

import (
	"testing"

	"github.com/sluice-io/sluice/internal/wasmbuild"
)

// RequireToolchain skips a test when clang and the WASI toolchain are
// missing, except under CI=true, where it fails the test.
func RequireToolchain(t testing.TB) {
	t.Helper()
	wasmbuild.RequireToolchain(t, "C", CheckToolchain)
}
