// Command sluice is the one sluice binary: it runs a node (serve), manages
// topics (topic) and consumer groups (group), writes and reads records from
// the shell (produce, consume), builds WebAssembly operators (build),
// deploys and inspects processing jobs (job), runs the word-count example on
// a throwaway node (demo) and measures a node end to end (bench).
//
// Client commands talk to a node over the Kafka protocol with franz-go, so
// they work against any Kafka-compatible broker too. They find the node
// through --brokers, or SLUICE_BROKERS when the flag is not given. The job
// commands talk to the node's admin API (HTTP) instead, found through
// --admin or SLUICE_ADMIN.
//
// Exit status: 0 on success, 1 when a command fails, 2 when the command
// line itself is wrong (unknown flag, missing argument).
package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

// run executes the command line and returns the process exit status. It is
// separate from main so that nothing between the command and os.Exit can
// skip deferred cleanup.
func run(args []string) int {
	root := newRootCmd()
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return 0
	}
	fmt.Fprintf(os.Stderr, "sluice: %v\n", err)
	var ue usageError
	// cobra reports an unknown subcommand with a plain error; it is a
	// command-line mistake all the same.
	if errors.As(err, &ue) || strings.HasPrefix(err.Error(), "unknown command ") {
		return 2
	}
	return 1
}

// usageError marks a mistake in the command line, as opposed to a failure
// while running the command, so the two get different exit statuses.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "sluice",
		Short: "A Kafka-compatible log with WebAssembly stream processing",
		Long: `sluice is a Kafka-compatible partitioned log and a stream processor whose
operators are WebAssembly modules. This binary runs a node and talks to one.`,
		// Errors are printed once, by run, with a "sluice:" prefix; usage is
		// printed for command-line mistakes only (see wrapUsage).
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	root.CompletionOptions.HiddenDefaultCmd = true
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return usageError{fmt.Errorf("%w\nRun '%s --help' for usage.", err, cmd.CommandPath())}
	})
	root.AddCommand(
		newServeCmd(),
		newTopicCmd(),
		newClusterCmd(),
		newPartitionCmd(),
		newProduceCmd(),
		newConsumeCmd(),
		newGroupCmd(),
		newBenchCmd(),
		newBuildCmd(),
		newJobCmd(),
		newDemoCmd(),
		newConformanceCmd(),
	)
	return root
}

// exactArgs is cobra.ExactArgs that reports a usage error, naming what is
// missing instead of only counting arguments.
func exactArgs(names ...string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < len(names) {
			return usageError{fmt.Errorf("%s: missing %s\nRun '%s --help' for usage.", cmd.CommandPath(), names[len(args)], cmd.CommandPath())}
		}
		if len(args) > len(names) {
			return usageError{fmt.Errorf("%s: unexpected argument %q\nRun '%s --help' for usage.", cmd.CommandPath(), args[len(names)], cmd.CommandPath())}
		}
		return nil
	}
}
