package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

func newGroupCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "group",
		Short: "List, describe, reset and delete consumer groups",
		Long: `Inspect and manage consumer groups: the members that share a topic's
partitions (sluice consume --group, or any Kafka client) and the offsets
they have committed.`,
	}
	addBrokersFlag(cmd)
	cmd.AddCommand(newGroupListCmd(), newGroupDescribeCmd(), newGroupResetCmd(), newGroupDeleteCmd())
	return cmd
}

func newGroupListCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List consumer groups with their state, protocol type and member count",
		Args:  exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withAdmin(cmd, func(ctx context.Context, adm *kadm.Client) error {
				return listGroups(ctx, cmd.OutOrStdout(), adm)
			})
		},
	}
}

func listGroups(ctx context.Context, w io.Writer, adm *kadm.Client) error {
	listed, err := adm.ListGroups(ctx)
	if err != nil {
		return fmt.Errorf("list groups: %w", err)
	}
	// ListGroups carries no member counts; describing every group does.
	described := kadm.DescribedGroups{}
	if len(listed) > 0 {
		if described, err = adm.DescribeGroups(ctx, listed.Groups()...); err != nil {
			return fmt.Errorf("list groups: describe: %w", err)
		}
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "GROUP\tSTATE\tPROTOCOL-TYPE\tMEMBERS")
	for _, g := range listed.Sorted() {
		state, members := g.State, "?"
		if d, ok := described[g.Group]; ok && d.Err == nil {
			state, members = d.State, strconv.Itoa(len(d.Members))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", g.Group, orDash(state), orDash(g.ProtocolType), members)
	}
	return tw.Flush()
}

func newGroupDescribeCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "describe NAME",
		Short: "Show a group's members and, per partition, committed offset, log end offset, lag and owner",
		Long: `Show a consumer group's state, assignment strategy and members (client id,
host and assigned partitions), then for every partition the group owns or has
committed to: the committed offset, the log end offset, the lag (records
between them) and the member that owns the partition ("-" when none does).`,
		Args: exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withAdmin(cmd, func(ctx context.Context, adm *kadm.Client) error {
				return describeGroup(ctx, cmd.OutOrStdout(), adm, args[0])
			})
		},
	}
}

// errNoGroup is returned for a group the coordinator does not know.
var errNoGroup = errors.New("no such group")

// groupLag describes a group with its per-partition lag, and tells a group
// that does not exist from an empty one. Kafka describes an unknown group
// as "Dead" (newer versions with GROUP_ID_NOT_FOUND); a group that exists
// only through committed offsets is "Empty".
func groupLag(ctx context.Context, adm *kadm.Client, name string) (kadm.DescribedGroupLag, error) {
	lags, err := adm.Lag(ctx, name)
	if err != nil {
		return kadm.DescribedGroupLag{}, fmt.Errorf("group %s: %w", name, err)
	}
	l, ok := lags[name]
	if !ok {
		return l, fmt.Errorf("group %s: missing from the broker's answer", name)
	}
	if errors.Is(l.DescribeErr, kerr.GroupIDNotFound) || (l.Error() == nil && l.State == "Dead" && len(l.Members) == 0 && len(l.Lag) == 0) {
		return l, fmt.Errorf("group %s: %w", name, errNoGroup)
	}
	if err := l.Error(); err != nil {
		return l, fmt.Errorf("group %s: %w", name, err)
	}
	return l, nil
}

func describeGroup(ctx context.Context, w io.Writer, adm *kadm.Client, name string) error {
	l, err := groupLag(ctx, adm, name)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "Group:\t%s\n", l.Group)
	fmt.Fprintf(tw, "State:\t%s\n", l.State)
	fmt.Fprintf(tw, "Protocol:\t%s\n", orDash(strings.Trim(l.ProtocolType+"/"+l.Protocol, "/")))
	fmt.Fprintf(tw, "Members:\t%d\n", len(l.Members))
	if len(l.Members) > 0 {
		fmt.Fprintln(tw)
		fmt.Fprintln(tw, "MEMBER\tCLIENT-ID\tHOST\tPARTITIONS")
		for _, m := range l.Members {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", m.MemberID, orDash(m.ClientID), orDash(m.ClientHost), assignedPartitions(m))
		}
	}
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "TOPIC\tPARTITION\tCOMMITTED\tLOG-END\tLAG\tMEMBER")
	for _, p := range l.Lag.Sorted() {
		if p.Partition < 0 {
			continue // kadm's marker for a topic it could not list
		}
		committed, end, lag, member := "-", "?", "?", "-"
		if p.Commit.At >= 0 {
			committed = strconv.FormatInt(p.Commit.At, 10)
		}
		if p.End.Err == nil {
			end = strconv.FormatInt(p.End.Offset, 10)
		}
		if p.Err == nil {
			lag = strconv.FormatInt(p.Lag, 10)
		}
		if !p.IsEmpty() {
			member = p.Member.MemberID
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\n", p.Topic, p.Partition, committed, end, lag, member)
	}
	return tw.Flush()
}

// assignedPartitions renders a member's assignment as topic:p,p topic:p.
func assignedPartitions(m kadm.DescribedGroupMember) string {
	c, ok := m.Assigned.AsConsumer()
	if !ok || len(c.Topics) == 0 {
		return "-"
	}
	topics := make([]string, 0, len(c.Topics))
	for _, t := range c.Topics {
		ps := append([]int32(nil), t.Partitions...)
		sort.Slice(ps, func(i, j int) bool { return ps[i] < ps[j] })
		topics = append(topics, t.Topic+":"+ids(ps))
	}
	sort.Strings(topics)
	return strings.Join(topics, " ")
}

func newGroupDeleteCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a consumer group and its committed offsets (it must have no members)",
		Args:  exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withAdmin(cmd, func(ctx context.Context, adm *kadm.Client) error {
				resp, err := adm.DeleteGroup(ctx, args[0])
				if err == nil {
					err = resp.Err
				}
				if err != nil {
					if errors.Is(err, kerr.NonEmptyGroup) {
						err = fmt.Errorf("%w: stop its members first", err)
					}
					return fmt.Errorf("delete group %s: %w", args[0], withMessage(err, resp.ErrMessage))
				}
				fmt.Fprintf(cmd.OutOrStdout(), "deleted group %s\n", args[0])
				return nil
			})
		},
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
