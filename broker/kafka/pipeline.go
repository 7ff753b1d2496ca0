package kafka

import (
	"encoding/binary"
	"fmt"
	"runtime/debug"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Pipelining. A connection has two goroutines: the reader (conn.serve)
// decodes and handles requests in order, and the writer (conn.writeLoop)
// answers them in the same order. A produce request is handled as soon as
// it is read: its batches are appended, which fixes their offsets, and its
// answer is queued with the storage waits still outstanding. The writer
// waits for them, fills in the outcome and writes the response. So while
// request N waits for its fsync, requests N+1, N+2… are appended and ride
// on the same group-commit fsync, instead of paying one fsync each.
//
// Only produce requests run ahead of their answers. Any other request
// waits until every earlier one is answered, so it sees their effects just
// as if requests were handled one at a time (a fetch or ListOffsets after
// a produce sees the produced records); there is no reordering to reason
// about beyond produce behind produce, which Kafka clients pipeline anyway.

// maxInFlight bounds the requests one connection may have handled but not
// yet answered. Reaching it stops the reader, which is backpressure on the
// client and bounds the memory it can pin: an answer waiting for its fsync
// holds only the response, not the request frame. Kafka clients pipeline
// up to 5 requests by default.
const maxInFlight = 16

// answer is a handled request on its way to the writer.
type answer struct {
	cx    *reqCtx
	corr  int32
	resp  kmsg.Response // nil: nothing to send (produce with acks=0)
	start time.Time     // when the request was read, for the latency metric
}

// inflight counts a connection's requests that are handled but not yet
// answered. A condition variable rather than a semaphore channel, because
// the reader also needs to wait for zero.
type inflight struct {
	mu   sync.Mutex
	cond sync.Cond
	n    int
}

func (f *inflight) init() { f.cond.L = &f.mu }

// acquire waits until fewer than limit requests are in flight and counts
// one more. Only the reader calls it.
func (f *inflight) acquire(limit int) {
	f.mu.Lock()
	for f.n >= limit {
		f.cond.Wait()
	}
	f.n++
	f.mu.Unlock()
}

func (f *inflight) release() {
	f.mu.Lock()
	f.n--
	f.mu.Unlock()
	f.cond.Signal() // only the reader ever waits
}

// writeLoop answers queued requests in order until the reader closes the
// queue. After a failure (a write error, or an acks=0 produce that failed)
// it closes the connection and only drains: earlier storage waits are
// still awaited and buffers returned, but nothing more is sent.
func (c *conn) writeLoop() {
	defer close(c.writerDone)
	broken := false
	for a := range c.queue {
		if err := c.answer(a, broken); err != nil && !broken {
			broken = true
			if !c.s.isClosed() {
				c.log.Warn("closing kafka connection", "err", err)
			}
			// Unblocks the reader, which is likely waiting for a frame.
			c.nc.Close()
		}
		c.inflight.release()
	}
}

// answer completes one request and, unless mute, writes its response.
func (c *conn) answer(a answer, mute bool) (err error) {
	cx := a.cx
	defer func() {
		// The connection's recover does not cover this goroutine. The
		// client would wait forever for a missing answer, so the
		// connection is closed instead.
		if r := recover(); r != nil {
			c.log.Error("panic answering kafka request", "api", kmsg.NameForKey(cx.key), "panic", r, "stack", string(debug.Stack()))
			err = errInternal
		}
		for _, bp := range cx.release {
			putBuf(bp)
		}
		c.s.m.observe(cx.key, time.Since(a.start))
	}()
	if cx.await != nil {
		if h := c.s.testAwaitHook.Load(); h != nil {
			(*h)()
		}
		if err := cx.await(); err != nil {
			return err
		}
	}
	if a.resp == nil || mute {
		return nil
	}
	return c.writeResponse(cx.key, a.corr, a.resp, cx.respSize)
}

// writeResponse encodes resp after a response header and writes it.
func (c *conn) writeResponse(key int16, corr int32, resp kmsg.Response, sizeHint int) error {
	bp := getBuf(max(sizeHint, 512))
	buf := append((*bp)[:0], 0, 0, 0, 0) // size, filled in below
	buf = kbin.AppendInt32(buf, corr)
	// Response header v1 (tagged fields) goes with flexible responses,
	// except ApiVersions, whose response header is always v0 so that a
	// client can read it before it knows what we support.
	if resp.IsFlexible() && key != apiVersionsKey {
		buf = append(buf, 0)
	}
	buf = resp.AppendTo(buf)
	binary.BigEndian.PutUint32(buf, uint32(len(buf)-frameSizeLen))
	// A client that stops reading must not pin this goroutine forever.
	err := c.nc.SetWriteDeadline(time.Now().Add(c.s.cfg.IdleTimeout))
	if err == nil {
		_, err = c.nc.Write(buf)
	}
	*bp = buf
	putBuf(bp)
	if err != nil {
		return fmt.Errorf("write response: %w", err)
	}
	return nil
}
