package aswasm

import (
	"testing"

	"github.com/sluice-io/sluice/internal/wasmbuild"
)

// RequireToolchain skips a test when node or asc is missing, except under
// CI=true, where it fails the test.
func RequireToolchain(t testing.TB) {
	t.Helper()
	wasmbuild.RequireToolchain(t, "AssemblyScript", CheckToolchain)
}
