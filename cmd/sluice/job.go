package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluice-io/sluice/host"
	"github.com/sluice-io/sluice/host/admin"
)

const (
	defaultAdmin = "127.0.0.1:9644"
	// deployTimeout covers the node compiling and test-instantiating the
	// module, which takes seconds for a large one on a slow machine.
	deployTimeout   = 2 * time.Minute
	jobAdminTimeout = 30 * time.Second
	// cliBy is the origin the CLI's deploys and rollbacks are recorded
	// with in a job's history, to tell them from a script's ("api") or
	// the node's jobs directory ("file PATH").
	cliBy = "cli"
)

func newJobCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "job",
		Short: "Deploy, list, inspect, stop, start, roll back and delete processing jobs on a node",
		Long: `Manage a node's processing jobs through its admin API, which 'sluice serve'
serves on its HTTP listener (--metrics-listen, default 127.0.0.1:9644). Point
the commands at another node with --admin or SLUICE_ADMIN.

A job is a YAML file naming a WebAssembly module (or a source directory to
build), its input and output topics, state stores, parameters, limits and
error policy; see examples/wordcount/split.yaml. Every deploy makes a new
version of the job; 'sluice job history' lists them and 'sluice job rollback'
runs an earlier one again.`,
	}
	cmd.PersistentFlags().String("admin", defaultAdmin, "the node's admin API address, host:port (env SLUICE_ADMIN)")
	cmd.AddCommand(newJobDeployCmd(), newJobListCmd(), newJobStatusCmd(), newJobStopCmd(), newJobStartCmd(),
		newJobHistoryCmd(), newJobRollbackCmd(), newJobDeleteCmd())
	return cmd
}

// adminAddr is --admin, else SLUICE_ADMIN, else the default.
func adminAddr(cmd *cobra.Command) string {
	f := cmd.Flags().Lookup("admin")
	if !f.Changed {
		if env := os.Getenv(envPrefix + "_ADMIN"); env != "" {
			return env
		}
	}
	return f.Value.String()
}

// withJobAdmin runs fn with an admin API client and a bounded context, and
// turns "nothing listening" into advice.
func withJobAdmin(cmd *cobra.Command, timeout time.Duration, fn func(ctx context.Context, c *admin.Client) error) error {
	addr := adminAddr(cmd)
	c := admin.NewClient(addr, nil)
	ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
	defer cancel()
	err := fn(ctx, c)
	var ue *admin.UnreachableError
	if errors.As(err, &ue) {
		if errors.Is(err, syscall.ECONNREFUSED) {
			return fmt.Errorf("cannot reach the sluice node's admin API at %s: is `sluice serve` running? (--admin)", addr)
		}
		return fmt.Errorf("cannot reach the sluice node's admin API at %s (--admin): %v", addr, ue.Err)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("the node at %s did not answer within %s", addr, timeout)
	}
	return err
}

func newJobDeployCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "deploy FILE",
		Short: "Deploy a job file (building its source first if it names one)",
		Long: `Read the job file, load its module (or build its "source" directory as
'sluice build' would), and send both to the node, which checks the module
against the ABI, initializes it with the job's parameters, creates missing
output and changelog topics and starts one task per input partition. Nothing
changes on the node if any check fails. Deploying a job whose name is already
deployed replaces it with a new version; the job's history records it as
deployed by "cli".`,
		Example: `  sluice build examples/wordcount/go/split
  sluice job deploy examples/wordcount/split.yaml`,
		Args: exactArgs("FILE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			spec, module, err := loadJob(cmd.Context(), cmd.ErrOrStderr(), args[0])
			if err != nil {
				return err
			}
			return withJobAdmin(cmd, deployTimeout, func(ctx context.Context, c *admin.Client) error {
				st, err := c.DeployBy(ctx, spec, module, cliBy)
				if err != nil {
					return fmt.Errorf("deploy %s: %w", spec.Name, err)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "deployed %s: %d tasks, %s -> %s, module sha256:%s\n",
					st.Name, len(st.Tasks), strings.Join(st.Inputs, ","), strings.Join(st.Outputs, ","), st.ModuleSHA)
				return nil
			})
		},
	}
}

// loadJob parses a job file and returns its spec with the module's bytes,
// building the source directory when the file names one. Build progress
// goes to log.
func loadJob(ctx context.Context, log io.Writer, file string) (host.JobSpec, []byte, error) {
	spec, err := host.LoadJobFile(file)
	if err != nil {
		return spec, nil, err
	}
	if spec.Source != "" && spec.Module == "" {
		tmp, err := os.MkdirTemp("", "sluice-build-")
		if err != nil {
			return spec, nil, err
		}
		defer os.RemoveAll(tmp)
		fmt.Fprintf(log, "building %s\n", spec.Source)
		b, err := buildOperator(ctx, spec.Source, filepath.Join(tmp, "module.wasm"))
		if err != nil {
			return spec, nil, fmt.Errorf("%s: source %s: %w", file, spec.Source, err)
		}
		return spec, b.Bytes, nil
	}
	module, err := os.ReadFile(spec.Module)
	if errors.Is(err, os.ErrNotExist) {
		hint := "'sluice build' on the operator's source directory"
		if _, derr := detectLanguage(filepath.Dir(spec.Module)); derr == nil {
			hint = "'sluice build " + filepath.Dir(spec.Module) + "'"
		}
		return spec, nil, fmt.Errorf("%s: module %s does not exist; build it with %s", file, spec.Module, hint)
	}
	if err != nil {
		return spec, nil, fmt.Errorf("%s: module: %w", file, err)
	}
	return spec, module, nil
}

func newJobListCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List jobs: state, runtime, tasks running, records in, lag",
		Args:  exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withJobAdmin(cmd, jobAdminTimeout, func(ctx context.Context, c *admin.Client) error {
				jobs, err := c.List(ctx)
				if err != nil {
					return err
				}
				if asJSON {
					return writeJSON(cmd.OutOrStdout(), jobs)
				}
				writeJobList(cmd.OutOrStdout(), jobs)
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the node's answer as JSON")
	return cmd
}

func writeJobList(w io.Writer, jobs []host.JobStatus) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSTATE\tRUNTIME\tTASKS\tRECORDS IN\tRECORDS OUT\tLAG")
	for _, j := range jobs {
		t := totals(j)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d/%d\t%d\t%d\t%d\n", j.Name, j.State, j.Runtime,
			t.running, len(j.Tasks), t.in, t.out, t.lag)
	}
	tw.Flush()
}

type jobTotals struct {
	running       int
	in, out       uint64
	lag           int64
	recordsPerSec float64
}

func totals(j host.JobStatus) jobTotals {
	var t jobTotals
	for _, task := range j.Tasks {
		if task.State == host.TaskRunning || task.State == host.TaskBootstrapping {
			t.running++
		}
		t.in += task.RecordsIn
		t.out += task.RecordsOut
		t.recordsPerSec += task.RecordsPerSec
		for _, in := range task.Inputs {
			t.lag += in.Lag
		}
	}
	return t
}

func newJobStatusCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status NAME",
		Short: "Show a job's tasks: partition, state, offsets, lag, records, restarts, errors",
		Long: `Show one job and each of its tasks (one per input partition): the task's state,
for every input its position (next offset to process), last committed
checkpoint, end (high watermark) and lag (end - committed), records in and out
since the task started, input records/s over the last few seconds, restarts,
the last error, and restore progress while a store is rebuilt from its
changelog.`,
		Args: exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withJobAdmin(cmd, jobAdminTimeout, func(ctx context.Context, c *admin.Client) error {
				st, err := c.Status(ctx, args[0])
				if err != nil {
					return err
				}
				if asJSON {
					return writeJSON(cmd.OutOrStdout(), st)
				}
				writeJobStatus(cmd.OutOrStdout(), st)
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the node's answer as JSON")
	return cmd
}

func writeJobStatus(w io.Writer, j host.JobStatus) {
	t := totals(j)
	fmt.Fprintf(w, "Name:      %s\n", j.Name)
	fmt.Fprintf(w, "State:     %s\n", j.State)
	if j.Version > 0 { // 0: a node from before job versions
		fmt.Fprintf(w, "Version:   %d\n", j.Version)
	}
	if j.Error != "" {
		fmt.Fprintf(w, "Error:     %s\n", j.Error)
	}
	if j.LastDeployError != "" {
		fmt.Fprintf(w, "Refused:   %s\n", oneLine(j.LastDeployError))
	}
	fmt.Fprintf(w, "Runtime:   %s\n", j.Runtime)
	fmt.Fprintf(w, "Module:    sha256:%s\n", j.ModuleSHA)
	fmt.Fprintf(w, "Inputs:    %s\n", strings.Join(j.Inputs, ", "))
	fmt.Fprintf(w, "Outputs:   %s\n", strings.Join(j.Outputs, ", "))
	if len(j.Tables) > 0 {
		fmt.Fprintf(w, "Tables:    %s\n", strings.Join(j.Tables, ", "))
	}
	if !j.Deployed.IsZero() {
		fmt.Fprintf(w, "Deployed:  %s\n", j.Deployed.Local().Format(time.RFC3339))
	}
	fmt.Fprintf(w, "Tasks:     %d running of %d; %d records in, %d out, %.0f records/s, lag %d\n\n",
		t.running, len(j.Tasks), t.in, t.out, t.recordsPerSec, t.lag)

	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PARTITION\tSTATE\tINPUT\tPOSITION\tCOMMITTED\tEND\tLAG\tIN\tOUT\tRECORDS/S\tRESTARTS\tRESTORE\tLAST ERROR")
	multi := false
	for _, task := range j.Tasks {
		multi = multi || len(task.Inputs)+len(task.Tables) > 1
	}
	for _, task := range j.Tasks {
		restore := "-"
		if r := task.Restore; r != nil {
			restore = fmt.Sprintf("%s %d/%d", r.Store, r.Restored, r.Total)
		}
		lastErr := "-"
		if task.LastError != "" {
			lastErr = task.LastError
			if !task.LastErrorAt.IsZero() {
				lastErr = task.LastErrorAt.Local().Format("15:04:05") + " " + lastErr
			}
		}
		inputs := task.Inputs
		if len(inputs) == 0 {
			inputs = []host.InputPosition{{Topic: "-"}}
		}
		for i, in := range inputs {
			if i == 0 {
				fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%s\t%d\t%d\t%d\t%d\t%.0f\t%d\t%s\t%s\n",
					task.Partition, task.State, in.Topic, in.Position, committed(in.Committed), in.End, in.Lag,
					task.RecordsIn, task.RecordsOut, task.RecordsPerSec, task.Restarts, restore, oneLine(lastErr))
				continue
			}
			// Further inputs of a multi-input job: only their positions.
			fmt.Fprintf(tw, "\t\t%s\t%d\t%s\t%d\t%d\t\t\t\t\t\t\n", in.Topic, in.Position, committed(in.Committed), in.End, in.Lag)
		}
		if multi && task.StreamTime >= 0 {
			// Joins go by stream time: the newest timestamp handled.
			fmt.Fprintf(tw, "\t\tstream time\t%s\t\t\t\t\t\t\t\t\t\n", time.UnixMilli(task.StreamTime).UTC().Format("2006-01-02T15:04:05.000Z"))
		}
		// Tables: where each is, and its bootstrap (the end it had when
		// the task started) while it is not done.
		for _, tb := range task.Tables {
			boot := fmt.Sprintf("table %s, %d applied", tb.Table, tb.Applied)
			if tb.Position < tb.BootstrapEnd {
				boot = fmt.Sprintf("table %s, bootstrap %d/%d", tb.Table, tb.Position, tb.BootstrapEnd)
			}
			fmt.Fprintf(tw, "\t\t%s\t%d\t-\t%d\t%d\t\t\t\t\t%s\t\n", tb.Topic, tb.Position, tb.End, tb.End-tb.Position, boot)
		}
	}
	tw.Flush()
}

// committed shows "no checkpoint yet" (-1) as "-".
func committed(off int64) string {
	if off < 0 {
		return "-"
	}
	return strconv.FormatInt(off, 10)
}

// oneLine keeps a multi-line error (a guest's panic, a build log) from
// breaking the table.
func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " | ")
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}

func newJobStopCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "stop NAME",
		Short: "Stop a job's tasks after a final checkpoint; its state is kept",
		Args:  exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withJobAdmin(cmd, jobAdminTimeout, func(ctx context.Context, c *admin.Client) error {
				st, err := c.Stop(ctx, args[0])
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s: %s\n", st.Name, st.State)
				return nil
			})
		},
	}
}

func newJobStartCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "start NAME",
		Short: "Start a stopped job from its last checkpoint",
		Args:  exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withJobAdmin(cmd, jobAdminTimeout, func(ctx context.Context, c *admin.Client) error {
				st, err := c.Start(ctx, args[0])
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s: %s\n", st.Name, st.State)
				return nil
			})
		},
	}
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
