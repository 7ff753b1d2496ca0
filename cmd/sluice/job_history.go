package main

// The commands that deal with a job's versions: history, rollback, and
// delete, which throws the history away with the job.

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluice-io/sluice/host"
	"github.com/sluice-io/sluice/host/admin"
)

func newJobHistoryCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "history NAME",
		Short: "List a job's versions: when, by whom, module, parameters, result",
		Long: `List every version of a job, oldest first: each deploy (and each rollback)
makes one, and so does a deploy that failed, with the reason. For each: its
result (active, replaced or failed), when it was deployed (UTC), where from
("cli", "api", "file PATH" for the node's jobs directory, or a rollback),
the first 12 hex digits of its module's sha256, the longest pause of a task
while it swapped to this version in place, and its parameters as compact
JSON (cut short in the table; --json shows them whole).`,
		Args: exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withJobAdmin(cmd, jobAdminTimeout, func(ctx context.Context, c *admin.Client) error {
				versions, err := c.History(ctx, args[0])
				if err != nil {
					return err
				}
				if asJSON {
					return writeJSON(cmd.OutOrStdout(), versions)
				}
				writeJobHistory(cmd.OutOrStdout(), versions)
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the node's answer as JSON")
	return cmd
}

// writeJobHistory prints versions newest last, so that the version running
// now is next to the prompt, whatever order the node sent them in.
func writeJobHistory(w io.Writer, versions []host.JobVersion) {
	versions = slices.SortedStableFunc(slices.Values(versions), func(a, b host.JobVersion) int {
		return cmp.Compare(a.Version, b.Version)
	})
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VERSION\tRESULT\tWHEN\tBY\tMODULE\tPAUSE\tPARAMETERS\tERROR")
	for _, v := range versions {
		when := "-"
		if !v.At.IsZero() {
			when = v.At.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", v.Version, dash(v.Result), when, dash(oneLine(v.By)),
			dash(shortSHA(v.ModuleSHA)), swapPause(v.SwapPause), compactParams(v.Parameters), dash(oneLine(v.Error)))
	}
	tw.Flush()
}

// dash keeps an empty cell visible, so that the columns stay readable (and
// splittable on whitespace).
func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// shortSHA is the first 12 hex digits of a module's sha256: enough to tell
// a job's versions apart and to match `sha256sum` output by eye.
func shortSHA(sha string) string {
	if len(sha) > 12 {
		return sha[:12]
	}
	return sha
}

// swapPause shows a version's in-place swap pause, which is milliseconds
// or less when things go well, to a precision that means something.
func swapPause(d time.Duration) string {
	switch {
	case d <= 0:
		return "-"
	case d < time.Millisecond:
		return d.Round(time.Microsecond).String()
	case d < time.Second:
		return d.Round(100 * time.Microsecond).String()
	}
	return d.Round(time.Millisecond).String()
}

// maxParamsWidth keeps a job with large parameters from pushing the ERROR
// column off the screen.
const maxParamsWidth = 80

// compactParams is the parameters as one line of JSON, keys sorted (as
// encoding/json does for maps), so that two versions compare by eye.
func compactParams(p map[string]any) string {
	if len(p) == 0 {
		return "-"
	}
	b, err := json.Marshal(p)
	if err != nil {
		return "?"
	}
	s := string(b)
	if len(s) > maxParamsWidth {
		s = s[:maxParamsWidth-3] + "..."
	}
	return s
}

func newJobRollbackCmd() *cobra.Command {
	var to int
	cmd := &cobra.Command{
		Use:   "rollback NAME",
		Short: "Run an earlier version of a job again, as a new version",
		Long: `Deploy an earlier version of a job again, with the module and parameters it
had, in place as any new version is deployed. The rollback is itself a new
version in the history, so it can be rolled back in turn.

Without --to, roll back to the newest version before the active one that did
not fail: usually the one the last deploy replaced.`,
		Example: `  sluice job rollback wordcount
  sluice job rollback wordcount --to 3`,
		Args: exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if to < 0 {
				return usageError{fmt.Errorf("--to %d: want a version number from 'sluice job history %s'", to, args[0])}
			}
			name := args[0]
			return withJobAdmin(cmd, deployTimeout, func(ctx context.Context, c *admin.Client) error {
				target := to
				if target == 0 {
					// Resolve "previous" here rather than send 0, so
					// that the message below names the version the node
					// was asked for, not a guess after the fact. If the
					// history has no candidate, the node's own answer to
					// 0 says why.
					versions, err := c.History(ctx, name)
					if err != nil {
						return err
					}
					target = previousGoodVersion(versions)
				}
				st, err := c.Rollback(ctx, name, target, cliBy)
				if err != nil {
					return fmt.Errorf("rollback %s: %w", name, err)
				}
				what := fmt.Sprintf("version %d", target)
				if target == 0 {
					what = "the previous version"
				}
				fmt.Fprintf(cmd.OutOrStdout(), "rolled back %s to %s: now version %d, module sha256:%s\n",
					st.Name, what, st.Version, st.ModuleSHA)
				return nil
			})
		},
	}
	cmd.Flags().IntVar(&to, "to", 0, "the version to run again (default: the one before the active version that did not fail)")
	return cmd
}

// previousGoodVersion is what the node means by rollback version 0: the
// newest version before the active one whose result is not failed. 0 if
// there is none, or no version is active.
func previousGoodVersion(versions []host.JobVersion) int {
	versions = slices.SortedStableFunc(slices.Values(versions), func(a, b host.JobVersion) int {
		return cmp.Compare(a.Version, b.Version)
	})
	active := slices.IndexFunc(versions, func(v host.JobVersion) bool { return v.Result == host.VersionActive })
	for i := active - 1; i >= 0; i-- {
		if versions[i].Result != host.VersionFailed {
			return versions[i].Version
		}
	}
	return 0
}

func newJobDeleteCmd() *cobra.Command {
	var yes bool
	cmd := &cobra.Command{
		Use:   "delete NAME",
		Short: "Stop a job and remove it with its history, state and changelog topics",
		Long: `Stop a job and remove it from the node for good: its record and version
history, its modules, its tasks' local state and its changelog topics. Its
output topics (and what was written to them) stay. There is no undo: the
state is rebuilt only by reprocessing the inputs. To pause a job and keep its
state, use 'sluice job stop'.

Asks for --yes, since the state cannot be recovered.`,
		Example: `  sluice job delete wordcount --yes`,
		Args:    exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if !yes {
				return usageError{errors.New(deleteRefusal(name))}
			}
			return withJobAdmin(cmd, jobAdminTimeout, func(ctx context.Context, c *admin.Client) error {
				// The status first, to name the output topics that stay,
				// and to answer "no such job" as every other command
				// does.
				st, err := c.Status(ctx, name)
				if err != nil {
					return err
				}
				if err := c.Delete(ctx, name); err != nil {
					return fmt.Errorf("delete %s: %w", name, err)
				}
				msg := "deleted " + name
				if len(st.Outputs) > 0 {
					msg += "; its output topics stay: " + strings.Join(st.Outputs, ", ")
				}
				fmt.Fprintln(cmd.OutOrStdout(), msg)
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&yes, "yes", false, "confirm that the job, its history, local state and changelog topics are to be deleted")
	return cmd
}

// deleteRefusal is what delete without --yes says: what would go, what
// stays, and the two ways on.
func deleteRefusal(name string) string {
	return fmt.Sprintf(`not deleting job %q without --yes: deleting stops it and removes its record and version history, its modules, its local state and its changelog topics, which cannot be undone; its output topics stay.
Run 'sluice job delete %s --yes' to delete it, or 'sluice job stop %s' to stop it and keep its state.`, name, name, name)
}
