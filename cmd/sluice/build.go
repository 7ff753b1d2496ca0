package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sluice-io/sluice/internal/aswasm"
	"github.com/sluice-io/sluice/internal/cwasm"
	"github.com/sluice-io/sluice/internal/gowasm"
	"github.com/sluice-io/sluice/internal/rustwasm"
)

func newBuildCmd() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "build DIR",
		Short: "Compile an operator's source directory to a WebAssembly module",
		Long: `Compile the operator in DIR to a .wasm module that a job file's "module" key
can name. The language is detected from DIR's contents:

  Go: a main package in DIR inside a Go module (go.mod in DIR or a parent).
      Built with Go's own toolchain: GOOS=wasip1 GOARCH=wasm -buildmode=c-shared,
      which makes a WASI reactor whose //go:wasmexport functions the node calls.
      Needs the go command on PATH.

  C:  *.c files in DIR that include "sluice.h" (the C SDK, sdk/c). Built with
      clang --target=wasm32-wasi --sysroot=/usr -O2 -mexec-model=reactor
      -Wl,--strip-all (no paths in the module: reproducible) and a 1 MiB
      stack placed first in memory (an overflow traps), compiling DIR's
      .c files together with sdk/c/sluice.c, found by walking up from DIR,
      then from the current directory, to a sdk/c holding sluice.h and
      sluice.c (run it from within the sluice repository). A DIR that has
      its own sluice.c (a vendored copy of the SDK) is built alone. Needs
      clang, wasm-ld, wasi-libc and the wasm32 compiler-rt builtins; on
      Debian and Ubuntu: apt-get install clang lld wasi-libc libclang-rt-14-dev-wasm32

  Rust: a Cargo.toml in DIR; the operator is DIR/src/lib.rs, written against
      the Rust SDK (sdk/rust, the crate sluice, ending in
      sluice::export_operator!). Built without cargo, by rustc for
      wasm32-wasi: the SDK (found like C's, walking up to a sdk/rust) as an
      rlib, then src/lib.rs as a cdylib against it, with -C opt-level=2
      -C codegen-units=1 -C strip=symbols and source paths remapped
      (reproducible). The rustc is $SLUICE_RUSTC, else the first of
      /usr/bin/rustc and the rustc on PATH that has the wasm32-wasi (or,
      in Rust 1.78+, wasm32-wasip1) standard library; on Debian and Ubuntu:
      apt-get install rustc libstd-rust-dev-wasm32; with rustup:
      rustup target add wasm32-wasip1

  AssemblyScript: an asconfig.json (or a package.json) in DIR; the operator
      is DIR/assembly/index.ts (or DIR/index.ts), written against the
      AssemblyScript SDK (sdk/assemblyscript, found like C's). Built by asc
      with -O3 --runtime incremental and the SDK's abort (the module imports
      only sluice_v1), run in DIR so that the module holds only relative
      paths (reproducible). Needs node on PATH and the asc pinned by
      sdk/assemblyscript/package.json ($SLUICE_ASC overrides it); install
      it from the repository with: npm install --prefix sdk/assemblyscript

The output defaults to DIR/<name of DIR>.wasm; the command prints its path,
size and SHA-256 (the same digest 'sluice job status' shows as the module's).`,
		Example: `  sluice build examples/wordcount/go/split
  sluice build examples/wordcount/c/split
  sluice build examples/wordcount/rust/split
  sluice build examples/wordcount/as/split
  sluice build ./myop -o /tmp/myop.wasm`,
		Args: exactArgs("DIR"),
		RunE: func(cmd *cobra.Command, args []string) error {
			b, err := buildOperator(cmd.Context(), args[0], out)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), b)
			return nil
		},
	}
	cmd.Flags().StringVarP(&out, "output", "o", "", "output file (default DIR/<name of DIR>.wasm)")
	return cmd
}

// builtModule is the result of one build.
type builtModule struct {
	Path   string
	Size   int
	SHA256 string
	Bytes  []byte
}

func (b builtModule) String() string {
	return fmt.Sprintf("%s  %s  sha256:%s", b.Path, humanBytes(int64(b.Size)), b.SHA256)
}

// buildOperator compiles the operator source in dir to out (default
// dir/<base>.wasm) and returns the module.
func buildOperator(ctx context.Context, dir, out string) (builtModule, error) {
	lang, err := detectLanguage(dir)
	if err != nil {
		return builtModule{}, err
	}
	if out == "" {
		abs, err := filepath.Abs(dir)
		if err != nil {
			return builtModule{}, err
		}
		out = filepath.Join(dir, filepath.Base(abs)+".wasm")
	}
	// Every language's build writes to out; its directory may be new (a
	// job file's module: path, say).
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return builtModule{}, err
	}
	switch lang {
	case "go":
		if err := gowasm.Build(ctx, dir, out); err != nil {
			return builtModule{}, err
		}
	case "C":
		if err := cwasm.Build(ctx, dir, out); err != nil {
			return builtModule{}, err
		}
	case "Rust":
		if err := rustwasm.Build(ctx, dir, out); err != nil {
			return builtModule{}, err
		}
	case "AssemblyScript":
		if err := aswasm.Build(ctx, dir, out); err != nil {
			return builtModule{}, err
		}
	default:
		return builtModule{}, fmt.Errorf("%s: %s operators are not supported yet (issue: Operators from any language); only Go, C, Rust and AssemblyScript can be built today", dir, lang)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		return builtModule{}, err
	}
	sum := sha256.Sum256(data)
	return builtModule{Path: out, Size: len(data), SHA256: hex.EncodeToString(sum[:]), Bytes: data}, nil
}

// detectLanguage says which toolchain builds dir: "go" for a main package
// inside a Go module, "C" for .c files (cwasm.Build checks that they use
// the C SDK), "Rust" for a Cargo.toml (built by rustwasm.Build),
// "AssemblyScript" for an asconfig.json or package.json (aswasm.Build), or the
// name of a language sluice recognizes but cannot build yet. A directory
// with nothing recognizable is an error listing what was looked for.
func detectLanguage(dir string) (string, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return "", err
	}
	if !fi.IsDir() {
		return "", fmt.Errorf("%s is not a directory: sluice build takes an operator's source directory", dir)
	}
	exists := func(name string) bool {
		_, err := os.Stat(filepath.Join(dir, name))
		return err == nil
	}
	goFiles, _ := filepath.Glob(filepath.Join(dir, "*.go"))
	if len(goFiles) > 0 {
		if _, err := findGoMod(dir); err != nil {
			return "", err
		}
		if !hasMainPackage(goFiles) {
			return "", fmt.Errorf("%s: the Go files there are not package main; an operator is a main package (see sdk/go)", dir)
		}
		return "go", nil
	}
	switch {
	case exists("Cargo.toml"):
		return "Rust", nil
	case exists("asconfig.json"), exists("package.json"):
		return "AssemblyScript", nil
	}
	if cs, _ := filepath.Glob(filepath.Join(dir, "*.c")); len(cs) > 0 {
		return "C", nil
	}
	if zs, _ := filepath.Glob(filepath.Join(dir, "*.zig")); len(zs) > 0 {
		return "Zig", nil // recognized, not buildable yet
	}
	return "", fmt.Errorf("%s: no operator source found (looked for *.go with package main in a Go module, Cargo.toml, *.c, asconfig.json or package.json)", dir)
}

// findGoMod returns the go.mod governing dir.
func findGoMod(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for d := abs; ; d = filepath.Dir(d) {
		p := filepath.Join(d, "go.mod")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("%s: Go files but no go.mod in it or any parent; run 'go mod init' there (and require github.com/sluice-io/sluice for the SDK)", dir)
		}
	}
}

func hasMainPackage(files []string) bool {
	fset := token.NewFileSet()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		pf, err := parser.ParseFile(fset, f, nil, parser.PackageClauseOnly)
		if err == nil && pf.Name.Name == "main" {
			return true
		}
	}
	return false
}

// humanBytes formats a size for people: 2.1 MB rather than 2137088.
func humanBytes(n int64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.1f GB", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%.1f kB", float64(n)/1e3)
	}
	return fmt.Sprintf("%d B", n)
}
