package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kgo"
)

func newProduceCmd() *cobra.Command {
	var (
		keySep    string
		acks      string
		partition int32
		linger    time.Duration
		timeout   time.Duration
	)
	cmd := &cobra.Command{
		Use:   "produce TOPIC",
		Short: "Write stdin to a topic, one record per line",
		Long: `Write stdin to a topic, one record per line (the trailing newline is not
part of the record). With --key-separator, the text before the first
separator is the key and the rest the value; a line without the separator is
an error. Keyed records go to the partition Kafka's default partitioner
(murmur2 of the key) picks, so any Kafka client agrees where a key lives;
unkeyed records are spread in sticky batches.

Records are batched and sent while stdin is still being read. At end of
input every record is flushed; the command fails, with a non-zero status, if
any record was not acknowledged.`,
		Example: `  seq 1000 | sluice produce numbers
  printf 'alice:1\nbob:2\n' | sluice produce scores --key-separator :`,
		Args: exactArgs("TOPIC"),
		RunE: func(cmd *cobra.Command, args []string) error {
			var opts []kgo.Opt
			switch acks {
			case "all", "-1":
				opts = append(opts, kgo.RequiredAcks(kgo.AllISRAcks()))
			case "1":
				opts = append(opts, kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite())
			case "0":
				opts = append(opts, kgo.RequiredAcks(kgo.NoAck()), kgo.DisableIdempotentWrite())
			default:
				return usageError{fmt.Errorf("--acks %q: want all, 1 or 0", acks)}
			}
			manual := cmd.Flags().Changed("partition")
			if manual {
				if partition < 0 {
					return usageError{fmt.Errorf("--partition %d: must not be negative", partition)}
				}
				opts = append(opts, kgo.RecordPartitioner(kgo.ManualPartitioner()))
			}
			opts = append(opts,
				kgo.DefaultProduceTopic(args[0]),
				kgo.ProducerLinger(linger),
				kgo.RecordDeliveryTimeout(timeout),
				kgo.MaxBufferedRecords(1<<20),
			)
			cl, err := newClient(cmd, opts...)
			if err != nil {
				return err
			}
			defer cl.Close()
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			p := &lineProducer{cl: cl, sep: []byte(keySep), partition: partition, manual: manual}
			n, err := p.run(ctx, cmd.InOrStdin())
			if err != nil {
				return fmt.Errorf("produce to %s: %w (%d records acknowledged before the failure)", args[0], err, n)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&keySep, "key-separator", "", "split each line into key and value at the first occurrence of this string")
	f.StringVar(&acks, "acks", "all", "acknowledgement the broker gives before a record counts as written: all, 1 or 0 (0 is fire and forget)")
	f.Int32Var(&partition, "partition", 0, "write every record to this partition instead of using the partitioner")
	f.DurationVar(&linger, "linger", 5*time.Millisecond, "how long a batch waits for more records before it is sent")
	f.DurationVar(&timeout, "timeout", 30*time.Second, "give up on a record not acknowledged within this time")
	addBrokersFlag(cmd)
	return cmd
}

// lineProducer turns lines into records. Records are carved out of large
// shared slabs rather than allocated one by one, since producing is mostly
// copying lines and the garbage collector would otherwise dominate.
type lineProducer struct {
	cl        *kgo.Client
	sep       []byte
	partition int32
	manual    bool

	acked    atomic.Int64
	errOnce  sync.Once
	firstErr error
	failed   chan struct{} // closed on the first failed record
}

const slabSize = 1 << 20

func (p *lineProducer) run(ctx context.Context, in io.Reader) (int64, error) {
	p.failed = make(chan struct{})
	promise := func(_ *kgo.Record, err error) {
		if err != nil {
			p.errOnce.Do(func() { p.firstErr = err; close(p.failed) })
			return
		}
		p.acked.Add(1)
	}
	r := bufio.NewReaderSize(in, 256<<10)
	var slab []byte
	for lineNo := 1; ; lineNo++ {
		line, err := readLine(r)
		if len(line) == 0 && err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return p.acked.Load(), fmt.Errorf("reading stdin: %w", err)
		}
		select {
		case <-p.failed:
			return p.acked.Load(), p.firstErr
		case <-ctx.Done():
			return p.acked.Load(), context.Cause(ctx)
		default:
		}
		if len(slab) < len(line) {
			slab = make([]byte, max(slabSize, len(line)))
		}
		buf := slab[:len(line):len(line)]
		slab = slab[len(line):]
		copy(buf, line)
		if buf == nil {
			buf = []byte{} // an empty line is an empty value, not a null one
		}
		rec := &kgo.Record{Value: buf}
		if len(p.sep) > 0 {
			i := bytes.Index(buf, p.sep)
			if i < 0 {
				return p.acked.Load(), fmt.Errorf("line %d has no key separator %q", lineNo, p.sep)
			}
			rec.Key, rec.Value = buf[:i:i], buf[i+len(p.sep):]
		}
		if p.manual {
			rec.Partition = p.partition
		}
		// Produce blocks while MaxBufferedRecords are in flight, which is
		// the back pressure that bounds memory on an endless stdin.
		p.cl.Produce(ctx, rec, promise)
		if errors.Is(err, io.EOF) { // the last line had no newline
			break
		} else if err != nil {
			return p.acked.Load(), fmt.Errorf("reading stdin: %w", err)
		}
	}
	if err := p.cl.Flush(ctx); err != nil {
		return p.acked.Load(), err
	}
	select {
	case <-p.failed:
		return p.acked.Load(), p.firstErr
	default:
	}
	return p.acked.Load(), nil
}

// readLine returns the next line without its "\n". The slice is valid until
// the next call. Lines longer than the reader's buffer are assembled.
func readLine(r *bufio.Reader) ([]byte, error) {
	line, err := r.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		long := append([]byte(nil), line...)
		for errors.Is(err, bufio.ErrBufferFull) {
			line, err = r.ReadSlice('\n')
			long = append(long, line...)
		}
		line = long
	}
	if len(line) > 0 && line[len(line)-1] == '\n' {
		return line[:len(line)-1], err
	}
	if err == nil {
		err = io.EOF
	}
	return line, err
}
