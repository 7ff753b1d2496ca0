package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/sluice-io/sluice/internal/aswasm"
	"github.com/sluice-io/sluice/internal/cwasm"
	"github.com/sluice-io/sluice/internal/rustwasm"
	"github.com/sluice-io/sluice/internal/testguests"
	"github.com/sluice-io/sluice/plugins/wazero"
)

// writeFiles creates files (path -> content) under a new temporary
// directory and returns it.
func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// detectLanguage recognizes what it can build and what it cannot yet, and
// says what it looked for when it finds nothing.
func TestDetectLanguage(t *testing.T) {
	cases := []struct {
		name    string
		files   map[string]string
		sub     string // directory to detect, relative to the root
		lang    string
		wantErr string
	}{
		{"go module", map[string]string{"go.mod": "module x\n", "op/main.go": "package main\n"}, "op", "go", ""},
		{"go without go.mod", map[string]string{"main.go": "package main\n"}, ".", "", "no go.mod"},
		{"go library", map[string]string{"go.mod": "module x\n", "lib.go": "package lib\n"}, ".", "", "not package main"},
		{"rust", map[string]string{"Cargo.toml": "[package]\n"}, ".", "Rust", ""},
		{"c", map[string]string{"op.c": "int x;\n"}, ".", "C", ""},
		{"assemblyscript", map[string]string{"asconfig.json": "{}"}, ".", "AssemblyScript", ""},
		{"javascript package", map[string]string{"package.json": "{}"}, ".", "AssemblyScript", ""},
		{"nothing", map[string]string{"README": "hi"}, ".", "", "looked for *.go with package main in a Go module, Cargo.toml, *.c, asconfig.json or package.json"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			root := writeFiles(t, tc.files)
			lang, err := detectLanguage(filepath.Join(root, tc.sub))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("detectLanguage: %q, %v; want an error containing %q", lang, err, tc.wantErr)
				}
				return
			}
			if err != nil || lang != tc.lang {
				t.Fatalf("detectLanguage: %q, %v; want %q", lang, err, tc.lang)
			}
		})
	}
}

// Languages sluice recognizes but cannot build fail with a message that
// points at the issue, from the command line.
func TestBuildUnsupportedLanguage(t *testing.T) {
	dir := writeFiles(t, map[string]string{"main.zig": "pub fn main() void {}\n"})
	r := sluice(t, "", "build", dir)
	if r.code != 1 || !strings.Contains(r.stderr, "Zig operators are not supported yet (issue: Operators from any language)") {
		t.Fatalf("sluice build on a Zig project: %s", r)
	}
	r = sluice(t, "", "build", t.TempDir())
	if r.code != 1 || !strings.Contains(r.stderr, "no operator source found") {
		t.Fatalf("sluice build on an empty directory: %s", r)
	}
	r = sluice(t, "", "build")
	if r.code != 2 || !strings.Contains(r.stderr, "missing DIR") {
		t.Fatalf("sluice build without a directory: %s", r)
	}
}

// A real Go operator builds to a valid module whose path, size and digest
// the command prints, and the default output is DIR/<name of DIR>.wasm.
func TestBuildGoOperator(t *testing.T) {
	out := filepath.Join(t.TempDir(), "echo.wasm")
	r := sluice(t, "", "build", testguests.Dir("echo"), "-o", out)
	if r.code != 0 {
		t.Fatalf("sluice build: %s", r)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) < 8 || string(data[:4]) != "\x00asm" {
		t.Fatalf("%s is not a WebAssembly module", out)
	}
	sum := sha256.Sum256(data)
	want := regexp.MustCompile(`^` + regexp.QuoteMeta(out) + `  [\d.]+ [kM]B  sha256:` + hex.EncodeToString(sum[:]) + `\n$`)
	if !want.MatchString(r.stdout) {
		t.Errorf("output %q, want %s", r.stdout, want)
	}

	// The default output name, checked on a minimal operator of its own
	// module so nothing is written into the source tree.
	work := writeFiles(t, map[string]string{
		"go.mod":       "module myop\n\ngo 1.24\n",
		"myop/main.go": "package main\n\nfunc main() {}\n\n//go:wasmexport sluice_alloc\nfunc alloc(n uint32) uint32 { return 0 }\n",
	})
	b, err := buildOperator(context.Background(), filepath.Join(work, "myop"), "")
	if err != nil {
		t.Fatalf("build with the default output: %v", err)
	}
	if want := filepath.Join(work, "myop", "myop.wasm"); b.Path != want {
		t.Errorf("default output %s, want %s", b.Path, want)
	}
	if fi, err := os.Stat(b.Path); err != nil || fi.Size() != int64(b.Size) {
		t.Errorf("built file: %v, %v; want %d bytes", fi, err, b.Size)
	}
}

// The C word count operator builds from the command line, twice to the
// same bytes (no timestamps or paths in the module), and the module passes
// the runtime's ABI validation.
func TestBuildCOperator(t *testing.T) {
	cwasm.RequireToolchain(t)
	dir := filepath.Join("..", "..", "examples", "wordcount", "c", "split")
	tmp := t.TempDir()
	var mods [][]byte
	for _, name := range []string{"a.wasm", "b/split.wasm"} {
		out := filepath.Join(tmp, name)
		if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
			t.Fatal(err)
		}
		r := sluice(t, "", "build", dir, "-o", out)
		if r.code != 0 {
			t.Fatalf("sluice build %s: %s", dir, r)
		}
		data, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(data)
		if want := "sha256:" + hex.EncodeToString(sum[:]); !strings.Contains(r.stdout, want) {
			t.Errorf("output %q does not name the digest %s", r.stdout, want)
		}
		mods = append(mods, data)
	}
	if !bytes.Equal(mods[0], mods[1]) {
		t.Errorf("two builds of %s differ (%d and %d bytes)", dir, len(mods[0]), len(mods[1]))
	}
	for _, p := range [][]byte{[]byte(tmp), []byte("wordcount"), []byte("split.c"), []byte("sluice.c")} {
		if bytes.Contains(mods[0], p) {
			t.Errorf("the module contains the path %q", p)
		}
	}

	ctx := context.Background()
	rt, err := wazero.New(ctx, wazero.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close(ctx)
	if _, err := rt.Compile(ctx, mods[0]); err != nil {
		t.Fatalf("the C module fails ABI validation: %v", err)
	}
}

// A C operator that vendors the SDK (its own sluice.c) builds without the
// repository's, and C files that do not use the SDK are refused.
func TestBuildCVendoredAndWithoutSDK(t *testing.T) {
	cwasm.RequireToolchain(t)
	sdk := filepath.Join("..", "..", "sdk", "c")
	h, err := os.ReadFile(filepath.Join(sdk, "sluice.h"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := os.ReadFile(filepath.Join(sdk, "sluice.c"))
	if err != nil {
		t.Fatal(err)
	}
	dir := writeFiles(t, map[string]string{
		"sluice.h": string(h),
		"sluice.c": string(c),
		"op.c":     "#include \"sluice.h\"\nint sluice_handle(const sluice_record *r, sluice_emitter *out) { return sluice_forward(out, r); }\n",
	})
	b, err := buildOperator(context.Background(), dir, "")
	if err != nil {
		t.Fatalf("vendored SDK: %v", err)
	}
	if want := filepath.Join(dir, filepath.Base(dir)+".wasm"); b.Path != want {
		t.Errorf("default output %s, want %s", b.Path, want)
	}

	plain := writeFiles(t, map[string]string{"op.c": "int f(void) { return 1; }\n"})
	if _, err := buildOperator(context.Background(), plain, ""); err == nil || !strings.Contains(err.Error(), `includes "sluice.h"`) {
		t.Errorf("C without the SDK: %v; want an error saying it must include sluice.h", err)
	}
}

// Without clang (here: an empty PATH) building C fails with a message that
// names the packages to install.
func TestBuildCWithoutToolchain(t *testing.T) {
	dir := writeFiles(t, map[string]string{"op.c": "#include \"sluice.h\"\n"})
	r := sluiceEnv(t, []string{"PATH="}, "", "build", dir)
	if r.code != 1 || !strings.Contains(r.stderr, cwasm.InstallHint) || !strings.Contains(r.stderr, "clang") {
		t.Fatalf("sluice build of C without clang: %s", r)
	}
}

// The Rust word count operator builds from the command line, twice to the
// same bytes (no paths in the module), and the module passes the runtime's
// ABI validation.
func TestBuildRustOperator(t *testing.T) {
	rustwasm.RequireToolchain(t)
	dir := filepath.Join("..", "..", "examples", "wordcount", "rust", "split")
	tmp := t.TempDir()
	var mods [][]byte
	for _, name := range []string{"a.wasm", "b/split.wasm"} {
		out := filepath.Join(tmp, name)
		if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
			t.Fatal(err)
		}
		r := sluice(t, "", "build", dir, "-o", out)
		if r.code != 0 {
			t.Fatalf("sluice build %s: %s", dir, r)
		}
		data, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(data)
		if want := "sha256:" + hex.EncodeToString(sum[:]); !strings.Contains(r.stdout, want) {
			t.Errorf("output %q does not name the digest %s", r.stdout, want)
		}
		mods = append(mods, data)
	}
	if !bytes.Equal(mods[0], mods[1]) {
		t.Errorf("two builds of %s differ (%d and %d bytes)", dir, len(mods[0]), len(mods[1]))
	}
	// Source paths are remapped to relative ones (sdk/rust/src/lib.rs,
	// ./src/lib.rs, as panic locations show them).
	absSDK, err := filepath.Abs(filepath.Join("..", "..", "sdk", "rust"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range [][]byte{[]byte(tmp), []byte("wordcount"), []byte(absSDK), []byte("sluice-rustwasm")} {
		if bytes.Contains(mods[0], p) {
			t.Errorf("the module contains the path %q", p)
		}
	}

	ctx := context.Background()
	rt, err := wazero.New(ctx, wazero.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close(ctx)
	if _, err := rt.Compile(ctx, mods[0]); err != nil {
		t.Fatalf("the Rust module fails ABI validation: %v", err)
	}
}

// A Rust crate without src/lib.rs is refused with a message saying what an
// operator is.
func TestBuildRustWithoutLib(t *testing.T) {
	dir := writeFiles(t, map[string]string{"Cargo.toml": "[package]\nname = \"op\"\n"})
	r := sluice(t, "", "build", dir)
	if r.code != 1 || !strings.Contains(r.stderr, "no src/lib.rs") || !strings.Contains(r.stderr, "export_operator!") {
		t.Fatalf("sluice build on a Rust crate without src/lib.rs: %s", r)
	}
}

// Without rustc (here: SLUICE_RUSTC names a missing file) building Rust
// fails with a message that names the packages to install.
func TestBuildRustWithoutToolchain(t *testing.T) {
	dir := writeFiles(t, map[string]string{"Cargo.toml": "[package]\nname = \"op\"\n", "src/lib.rs": "sluice::export_operator!(());\n"})
	r := sluiceEnv(t, []string{"SLUICE_RUSTC=/nonexistent/rustc"}, "", "build", dir)
	if r.code != 1 || !strings.Contains(r.stderr, rustwasm.InstallHint) || !strings.Contains(r.stderr, "rustc") {
		t.Fatalf("sluice build of Rust without rustc: %s", r)
	}
}

// The AssemblyScript word count operators build from the command line,
// twice to the same bytes (no absolute paths in the module), and the
// modules pass the runtime's ABI validation.
func TestBuildAssemblyScriptOperator(t *testing.T) {
	aswasm.RequireToolchain(t)
	ctx := context.Background()
	rt, err := wazero.New(ctx, wazero.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close(ctx)
	for _, op := range []string{"split", "count"} {
		dir := filepath.Join("..", "..", "examples", "wordcount", "as", op)
		tmp := t.TempDir()
		var mods [][]byte
		for _, name := range []string{"a.wasm", "b/" + op + ".wasm"} {
			out := filepath.Join(tmp, name)
			if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
				t.Fatal(err)
			}
			r := sluice(t, "", "build", dir, "-o", out)
			if r.code != 0 {
				t.Fatalf("sluice build %s: %s", dir, r)
			}
			data, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(data)
			if want := "sha256:" + hex.EncodeToString(sum[:]); !strings.Contains(r.stdout, want) {
				t.Errorf("output %q does not name the digest %s", r.stdout, want)
			}
			mods = append(mods, data)
		}
		if !bytes.Equal(mods[0], mods[1]) {
			t.Errorf("two builds of %s differ (%d and %d bytes)", dir, len(mods[0]), len(mods[1]))
		}
		absDir, err := filepath.Abs(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range [][]byte{[]byte(tmp), []byte(absDir), []byte("sluice-aswasm")} {
			if bytes.Contains(mods[0], p) {
				t.Errorf("the module contains the path %q", p)
			}
		}
		if _, err := rt.Compile(ctx, mods[0]); err != nil {
			t.Fatalf("the AssemblyScript module %s fails ABI validation: %v", op, err)
		}
	}
}

// Without asc (here: SLUICE_ASC names a missing file) building
// AssemblyScript fails with a message that says how to install it.
func TestBuildAssemblyScriptWithoutToolchain(t *testing.T) {
	dir := writeFiles(t, map[string]string{"asconfig.json": "{}", "assembly/index.ts": "export function f(): void {}\n"})
	r := sluiceEnv(t, []string{"SLUICE_ASC=/nonexistent/asc"}, "", "build", dir)
	if r.code != 1 || !strings.Contains(r.stderr, aswasm.InstallHint) || !strings.Contains(r.stderr, "asc") {
		t.Fatalf("sluice build of AssemblyScript without asc: %s", r)
	}
}
