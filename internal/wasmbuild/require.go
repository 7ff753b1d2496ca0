package wasmbuild

import (
	"context"
	"os"
	"testing"
)

// RequireToolchain skips a test when check says a language's toolchain is
// missing, except on CI (CI=true), where that fails the test with check's
// message (the install hint): CI must build every example from source.
func RequireToolchain(t testing.TB, language string, check func(context.Context) error) {
	t.Helper()
	if err := check(context.Background()); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true and the %s toolchain is missing: %v", language, err)
		}
		t.Skipf("no %s toolchain: %v", language, err)
	}
}
