package bench

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// conn is one Kafka protocol connection that the benchmark drives by hand.
// Requests may be written by one goroutine while another reads responses,
// which lets a connection keep several requests in flight: Kafka answers
// requests on a connection in the order they were sent.
type conn struct {
	nc       net.Conn
	r        *bufio.Reader
	format   *kmsg.RequestFormatter
	versions map[int16]int16 // highest version the broker supports, by API key
	corr     int32
	body     []byte // response buffer, reused
	closeMu  sync.Once
}

// dialConn connects and learns which API versions the broker supports.
func dialConn(ctx context.Context, addr string) (*conn, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		// Large produce requests and fetch responses move faster through
		// bigger socket buffers; the kernel caps what it grants.
		tc.SetReadBuffer(4 << 20)
		tc.SetWriteBuffer(4 << 20)
	}
	c := &conn{
		nc:     nc,
		r:      bufio.NewReaderSize(nc, 1<<20),
		format: kmsg.NewRequestFormatter(kmsg.FormatterClientID("sluice-bench")),
	}
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	defer stop()
	// Version 0 is the one every broker answers without negotiation.
	req := kmsg.NewPtrApiVersionsRequest()
	resp := kmsg.NewPtrApiVersionsResponse()
	if err := c.roundTrip(req, resp); err != nil {
		nc.Close()
		return nil, fmt.Errorf("api versions from %s: %w", addr, err)
	}
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		nc.Close()
		return nil, fmt.Errorf("api versions from %s: %w", addr, err)
	}
	c.versions = make(map[int16]int16, len(resp.ApiKeys))
	for _, k := range resp.ApiKeys {
		c.versions[k.ApiKey] = k.MaxVersion
	}
	return c, nil
}

// version picks the highest version of an API that both sides support, no
// higher than ceiling, and fails if that is below floor.
func (c *conn) version(key, floor, ceiling int16) (int16, error) {
	max, ok := c.versions[key]
	if !ok {
		return 0, fmt.Errorf("broker does not support %s", kmsg.NameForKey(key))
	}
	v := min(max, ceiling)
	if v < floor {
		return 0, fmt.Errorf("broker supports %s up to v%d; the benchmark needs v%d", kmsg.NameForKey(key), max, floor)
	}
	return v, nil
}

// encode frames a request with correlation id 0; setCorrelation patches it
// before each send, so a request encoded once can be sent many times.
func (c *conn) encode(req kmsg.Request) []byte {
	return c.format.AppendRequest(nil, req, 0)
}

// corrOffset is where the correlation id sits in a request frame: after
// the size, api key and api version.
const corrOffset = 4 + 2 + 2

func setCorrelation(frame []byte, id int32) {
	binary.BigEndian.PutUint32(frame[corrOffset:], uint32(id))
}

// send writes a framed request after giving it the next correlation id.
// Only one goroutine may send.
func (c *conn) send(frame []byte) (int32, error) {
	c.corr++
	setCorrelation(frame, c.corr)
	_, err := c.nc.Write(frame)
	return c.corr, err
}

// readResponse reads the next response frame and decodes it into resp,
// checking that it answers request corr. The decoded response may alias
// an internal buffer that the next read overwrites. Only one goroutine may
// read.
func (c *conn) readResponse(corr int32, resp kmsg.Response) error {
	var size [4]byte
	if _, err := io.ReadFull(c.r, size[:]); err != nil {
		return err
	}
	n := int(binary.BigEndian.Uint32(size[:]))
	if n < 4 || n > 1<<30 {
		return fmt.Errorf("response frame of %d bytes", n)
	}
	if cap(c.body) < n {
		c.body = make([]byte, n)
	}
	body := c.body[:n]
	if _, err := io.ReadFull(c.r, body); err != nil {
		return err
	}
	if got := int32(binary.BigEndian.Uint32(body)); got != corr {
		return fmt.Errorf("response has correlation id %d, want %d", got, corr)
	}
	body = body[4:]
	// Flexible responses carry tagged fields in their header, except
	// ApiVersions, whose header is always version 0.
	if resp.IsFlexible() && resp.Key() != 18 {
		var err error
		if body, err = skipTags(body); err != nil {
			return err
		}
	}
	if u, ok := resp.(interface{ UnsafeReadFrom([]byte) error }); ok {
		return u.UnsafeReadFrom(body)
	}
	return resp.ReadFrom(body)
}

// roundTrip sends one request and waits for its response.
func (c *conn) roundTrip(req kmsg.Request, resp kmsg.Response) error {
	resp.SetVersion(req.GetVersion())
	corr, err := c.send(c.encode(req))
	if err != nil {
		return err
	}
	return c.readResponse(corr, resp)
}

func skipTags(b []byte) ([]byte, error) {
	n, k := binary.Uvarint(b)
	if k <= 0 {
		return nil, errors.New("bad tagged fields in response header")
	}
	b = b[k:]
	for ; n > 0; n-- {
		if _, k = binary.Uvarint(b); k <= 0 {
			return nil, errors.New("bad tag in response header")
		}
		b = b[k:]
		size, k := binary.Uvarint(b)
		if k <= 0 || uint64(len(b)-k) < size {
			return nil, errors.New("bad tag in response header")
		}
		b = b[k+int(size):]
	}
	return b, nil
}

func (c *conn) close() {
	c.closeMu.Do(func() { c.nc.Close() })
}
