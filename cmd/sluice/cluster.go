package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
)

func newClusterCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "Show the state of a cluster",
	}
	addBrokersFlag(cmd)
	cmd.AddCommand(&cobra.Command{
		Use:   "status",
		Short: "Nodes, controller, and each node's partitions, with under-replicated and offline ones",
		Long: `Show the cluster as the node at --brokers sees it: the live nodes with their
addresses and racks, the controller, how many partitions each node leads and
holds, and every partition whose in-sync replicas are fewer than its replicas
(under-replicated) or that has no leader (offline). A replica on a node that
is not live is listed as offline.`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withAdmin(cmd, func(ctx context.Context, adm *kadm.Client) error {
				return clusterStatus(ctx, cmd.OutOrStdout(), adm)
			})
		},
	})
	return cmd
}

// clusterStatus prints what Metadata says about the cluster.
func clusterStatus(ctx context.Context, w io.Writer, adm *kadm.Client) error {
	md, err := adm.Metadata(ctx)
	if err != nil {
		return fmt.Errorf("cluster status: %w", err)
	}
	live := make(map[int32]bool, len(md.Brokers))
	leads := map[int32]int{}
	holds := map[int32]int{}
	type problem struct {
		topic     string
		partition int32
		what      string
	}
	var problems []problem
	for _, t := range md.Topics.Sorted() {
		if t.Err != nil {
			continue
		}
		for _, p := range t.Partitions.Sorted() {
			for _, r := range p.Replicas {
				holds[r]++
			}
			switch {
			case p.Leader < 0:
				problems = append(problems, problem{t.Topic, p.Partition, "offline: no leader"})
				continue
			case len(p.ISR) < len(p.Replicas):
				var missing []int32
				for _, r := range p.Replicas {
					if !slices.Contains(p.ISR, r) {
						missing = append(missing, r)
					}
				}
				problems = append(problems, problem{t.Topic, p.Partition, "under-replicated: " + ids(missing) + " not in sync"})
			}
			leads[p.Leader]++
		}
	}
	for _, b := range md.Brokers {
		live[b.NodeID] = true
	}

	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "Cluster:\t%s\n", md.Cluster)
	controller := "none"
	if md.Controller >= 0 {
		controller = strconv.Itoa(int(md.Controller))
	}
	fmt.Fprintf(tw, "Controller:\t%s\n", controller)
	fmt.Fprintf(tw, "Live nodes:\t%d\n", len(md.Brokers))
	fmt.Fprintf(tw, "Under-replicated or offline partitions:\t%d\n", len(problems))
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "NODE\tADDRESS\tRACK\tSTATE\tLEADS\tREPLICAS")
	nodes := make([]int32, 0, len(holds)+len(live))
	for id := range live {
		nodes = append(nodes, id)
	}
	for id := range holds {
		if !live[id] {
			nodes = append(nodes, id)
		}
	}
	sort.Slice(nodes, func(i, j int) bool { return nodes[i] < nodes[j] })
	brokers := map[int32]kadm.BrokerDetail{}
	for _, b := range md.Brokers {
		brokers[b.NodeID] = b
	}
	for _, id := range nodes {
		addr, rack, state := "-", "-", "offline"
		if b, ok := brokers[id]; ok {
			addr, state = b.Host+":"+strconv.Itoa(int(b.Port)), "live"
			if b.Rack != nil && *b.Rack != "" {
				rack = *b.Rack
			}
		}
		if id == md.Controller {
			state += ",controller"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%d\n", id, addr, rack, state, leads[id], holds[id])
	}
	if len(problems) > 0 {
		fmt.Fprintln(tw)
		fmt.Fprintln(tw, "TOPIC\tPARTITION\tPROBLEM")
		for _, p := range problems {
			fmt.Fprintf(tw, "%s\t%d\t%s\n", p.topic, p.partition, p.what)
		}
	}
	return tw.Flush()
}

func newPartitionCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "partition",
		Short: "Move partitions between nodes",
	}
	addBrokersFlag(cmd)
	var (
		partition int32
		replicas  string
	)
	reassign := &cobra.Command{
		Use:   "reassign TOPIC",
		Short: "Move a partition's replicas to other nodes",
		Long: `Give a partition a new replica set. The controller adds the new replicas,
waits until they have caught up and joined the ISR, moves leadership to the
first new replica if the leader is leaving, then removes the old ones.
Producers and consumers carry on throughout. The command returns once the
request is accepted; 'sluice topic describe' shows the progress.`,
		Example: `  sluice partition reassign orders --partition 2 --replicas 2,3,4`,
		Args:    exactArgs("TOPIC"),
		RunE: func(cmd *cobra.Command, args []string) error {
			var ids []int32
			for _, f := range strings.Split(replicas, ",") {
				n, err := strconv.ParseInt(strings.TrimSpace(f), 10, 32)
				if err != nil || n < 0 {
					return usageError{fmt.Errorf("--replicas %q: want comma-separated node ids", replicas)}
				}
				ids = append(ids, int32(n))
			}
			return withAdmin(cmd, func(ctx context.Context, adm *kadm.Client) error {
				req := kadm.AlterPartitionAssignmentsReq{}
				req.Assign(args[0], partition, ids)
				resp, err := adm.AlterPartitionAssignments(ctx, req)
				if err != nil {
					return fmt.Errorf("reassign %s-%d: %w", args[0], partition, err)
				}
				for _, r := range resp.Sorted() {
					if r.Err != nil {
						return fmt.Errorf("reassign %s-%d: %w", r.Topic, r.Partition, withMessage(r.Err, r.ErrMessage))
					}
				}
				fmt.Fprintf(cmd.OutOrStdout(), "reassignment of %s-%d to replicas %s accepted\n", args[0], partition, replicas)
				return nil
			})
		},
	}
	reassign.Flags().Int32Var(&partition, "partition", 0, "partition to move")
	reassign.Flags().StringVar(&replicas, "replicas", "", "the new replica set, comma-separated node ids, preferred leader first")
	_ = reassign.MarkFlagRequired("replicas")
	cmd.AddCommand(reassign)
	return cmd
}
