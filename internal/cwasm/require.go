package cwasm

import (
	"context"
	"os"
	"testing"
)

// RequireToolchain skips a test when clang and the WASI toolchain are
// missing, except on CI (CI=true), where that fails the test with the
// install hint: CI must build every C example from source.
func RequireToolchain(t testing.TB) {
	t.Helper()
	if err := CheckToolchain(context.Background()); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true and the C toolchain is missing: %v", err)
		}
		t.Skipf("no C toolchain: %v", err)
	}
}
