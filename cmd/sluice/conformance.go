package main

import (
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluice-io/sluice/conformance/suites"
	"github.com/sluice-io/sluice/plugins/runtimes"
)

func newConformanceCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "conformance",
		Short: "Check an operator module, or the runtimes, against the conformance suites",
		Long: `The conformance suites define a correct operator and a correct runtime
independently of language and engine (package conformance/suites):

  abi          any module: validation, instantiation, the golden input layouts,
               large values, many batches; well-formed emits and state handles
  runtime      the runtime's side of the ABI, with built-in guests (no module):
               bounds checks of every host function, codes, statuses, faults
  operator     a module claiming a contract (split, count, passthrough) gives
               the reference implementation's outputs and state, byte for byte
  equivalence  the same module on every runtime gives identical results

'sluice conformance list' shows every case; 'sluice conformance run' runs them.`,
	}
	cmd.AddCommand(newConformanceListCmd(), newConformanceRunCmd())
	return cmd
}

func newConformanceListCmd() *cobra.Command {
	var operator string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the suites and their cases, with what each checks",
		Args:  exactArgs(),
		RunE: func(cmd *cobra.Command, args []string) error {
			printSuites(cmd.OutOrStdout(), operator)
			return nil
		},
	}
	cmd.Flags().StringVar(&operator, "operator", "", "list only this contract's operator cases (split, count, passthrough)")
	return cmd
}

func printSuites(w io.Writer, operator string) {
	for i, s := range suites.List() {
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "%s: %s\n", s.Name, s.Doc)
		for _, c := range s.Cases {
			if operator != "" && s.Name == suites.SuiteOperator && !strings.HasPrefix(c.Name, operator+"/") {
				continue
			}
			fmt.Fprintf(w, "  %-40s %s\n", c.ID(), c.Doc)
		}
	}
}

func newConformanceRunCmd() *cobra.Command {
	var (
		runtimeName, operator, filter, params string
		verbose, table                        bool
	)
	cmd := &cobra.Command{
		Use:   "run [MODULE.wasm]",
		Short: "Run the conformance suites on a module (or, without one, on the runtimes)",
		Long: `Run the conformance suites on MODULE.wasm and print PASS, FAIL or SKIP for each
case on each runtime, then a summary. The exit status is 1 if any case fails.

Without --operator, the contract is inferred from the file name when it names
exactly one of split, count and passthrough (and the command says so); use
--operator none to run only the generic suites. Without MODULE, only the cases
that need no module run: the runtime suite and its equivalence across runtimes.`,
		Example: `  sluice conformance run examples/wordcount/go/split/split.wasm
  sluice conformance run op.wasm --operator count --runtime wasmtime
  sluice conformance run op.wasm --run '^abi/' -v
  sluice conformance run --runtime all --table`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 1 {
				return usageError{fmt.Errorf("%s: unexpected argument %q\nRun '%s --help' for usage.", cmd.CommandPath(), args[1], cmd.CommandPath())}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			out := cmd.OutOrStdout()
			cfg := suites.Config{}
			if params != "" {
				cfg.Params = []byte(params)
			}
			if filter != "" {
				re, err := regexp.Compile(filter)
				if err != nil {
					return usageError{fmt.Errorf("--run: %w", err)}
				}
				cfg.Filter = re
			}
			switch operator {
			case "none":
			case "", suites.OperatorSplit, suites.OperatorCount, suites.OperatorPassthrough:
				cfg.Operator = operator
			default:
				return usageError{fmt.Errorf("--operator %q: use split, count, passthrough or none", operator)}
			}
			if len(args) == 1 {
				wasm, err := os.ReadFile(args[0])
				if err != nil {
					return err
				}
				cfg.Module = wasm
				if operator == "" {
					if cfg.Operator = suites.InferOperator(args[0]); cfg.Operator != "" {
						fmt.Fprintf(out, "operator contract: %s (from the file name; --operator to choose another, --operator none for the generic suites only)\n", cfg.Operator)
					} else {
						fmt.Fprintf(out, "operator contract: none (the file name names none of %s; --operator to check one)\n", strings.Join(suites.Operators, ", "))
					}
				}
			} else {
				if cfg.Operator != "" {
					return usageError{fmt.Errorf("--operator %s needs a MODULE to check", cfg.Operator)}
				}
				fmt.Fprintln(out, "no module given: running the cases that need none (the runtime suite and its equivalence)")
			}

			var names []string
			if runtimeName != "all" {
				if err := runtimes.Check(runtimeName); err != nil {
					return usageError{fmt.Errorf("--runtime: %w", err)}
				}
				names = []string{runtimeName}
			}
			rts, closeAll, err := suites.OpenRuntimes(cmd.Context(), names, runtimes.Options{})
			if err != nil {
				return err
			}
			defer closeAll()
			cfg.Runtimes = rts
			var rtNames []string
			for _, rt := range rts {
				rtNames = append(rtNames, rt.Name())
			}
			fmt.Fprintf(out, "runtimes: %s\n", strings.Join(rtNames, ", "))

			start := time.Now()
			docs := map[string]string{}
			if verbose {
				for _, s := range suites.List() {
					for _, c := range s.Cases {
						docs[c.ID()] = c.Doc
					}
				}
			}
			cfg.Progress = func(r suites.Result) { printResult(out, r, docs[r.ID()]) }
			rep := suites.Run(cmd.Context(), cfg)
			if len(rep.Results) == 0 {
				return fmt.Errorf("no case matches --run %q", filter)
			}
			if table {
				fmt.Fprintf(out, "\n%s", rep.Table())
			}
			status := "ok"
			if rep.Failed() {
				status = "FAIL"
			}
			fmt.Fprintf(out, "\n%s: %s in %s\n", status, rep.Summary(), time.Since(start).Round(time.Millisecond))
			if rep.Failed() {
				var ids []string
				for _, r := range rep.Failures() {
					ids = append(ids, r.ID()+" ["+r.Runtime+"]")
				}
				return fmt.Errorf("%d conformance cases failed: %s", len(ids), strings.Join(ids, ", "))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&runtimeName, "runtime", "all", "runtime to check on: "+strings.Join(runtimes.Known, ", ")+" or all (those built into this binary)")
	f.StringVar(&operator, "operator", "", "contract to check the module against: split, count, passthrough or none (default: from the file name)")
	f.StringVar(&filter, "run", "", "run only the cases whose ID (suite/case, as 'sluice conformance list' shows) matches this regular expression")
	f.StringVar(&params, "params", "", "parameters (JSON) for the module's sluice_init in the abi suite")
	f.BoolVarP(&verbose, "verbose", "v", false, "also print what each case checks")
	f.BoolVar(&table, "table", false, "print a markdown table of passes per suite and runtime")
	return cmd
}

// printResult prints one result as a test runner does: the status, the
// case and runtime, the time, what the case checks (doc, with -v), then
// why it failed or was skipped.
func printResult(w io.Writer, r suites.Result, doc string) {
	fmt.Fprintf(w, "%-4s  %-48s [%s] %s\n", r.Status, r.ID(), r.Runtime, r.Duration.Round(time.Millisecond))
	if doc != "" {
		fmt.Fprintf(w, "      checks: %s\n", doc)
	}
	if r.Message != "" {
		for _, line := range strings.Split(r.Message, "\n") {
			fmt.Fprintf(w, "      %s\n", line)
		}
	}
}
