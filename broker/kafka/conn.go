package kafka

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime/debug"
	"time"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Frame layout: a 4-byte big-endian size, then that many bytes holding the
// request header (api key int16, api version int16, correlation id int32,
// client id nullable string, and from header v2 on, tagged fields) and the
// request body.
const (
	frameSizeLen = 4
	minFrameSize = 8 // key, version and correlation id
	// frameReadChunk is how much of a frame is read before the rest is
	// allocated: a client declaring a 100 MiB frame gets memory as its bytes
	// arrive, not on its word.
	frameReadChunk = 1 << 20
	readBufferSize = 64 << 10
)

// Errors that end a connection. They are logged, never sent.
var (
	errFrameSize    = errors.New("invalid frame size")
	errUnknownKey   = errors.New("unknown api key")
	errBadVersion   = errors.New("api version unknown to the codec")
	errBadHeader    = errors.New("malformed request header")
	errBadBody      = errors.New("malformed request body")
	errCloseOnAcks0 = errors.New("acks=0 produce failed; closing so the client refreshes metadata")
)

// request is one decoded request.
type request struct {
	key     int16
	version int16
	corr    int32
	// body is the request; nil for an ApiVersions request of a version we
	// do not know, which is answered without being parsed.
	body kmsg.Request
	// clientID is the header's client id, aliasing the frame.
	clientID []byte
}

// conn is one client connection. Its reader goroutine handles requests one
// at a time and its writer answers them in the same order (pipeline.go).
type conn struct {
	s  *Server
	nc net.Conn
	br *bufio.Reader
	// log carries the remote address; built once per connection.
	log *slog.Logger

	// queue carries handled requests to the writer, in request order.
	// Never full: inflight admits at most its capacity.
	queue      chan answer
	inflight   inflight
	writerDone chan struct{}
}

func newConn(s *Server, nc net.Conn) *conn {
	c := &conn{
		s:          s,
		nc:         nc,
		br:         bufio.NewReaderSize(nc, readBufferSize),
		log:        s.log.With("remote", nc.RemoteAddr().String()),
		queue:      make(chan answer, maxInFlight),
		writerDone: make(chan struct{}),
	}
	c.inflight.init()
	return c
}

// serve runs the connection until the client leaves, a protocol error, or
// the server closes.
func (c *conn) serve() {
	c.s.m.connections.Inc()
	defer c.s.m.connections.Dec()
	defer c.nc.Close()
	go c.writeLoop()
	defer func() {
		// Earlier requests are still answered, then the connection closes.
		close(c.queue)
		<-c.writerDone
	}()
	defer func() {
		// Last line of defense: a bug in a handler must cost one
		// connection, not the node.
		if r := recover(); r != nil {
			c.log.Error("panic serving kafka connection", "panic", r, "stack", string(debug.Stack()))
		}
	}()
	for {
		if err := c.nc.SetReadDeadline(time.Now().Add(c.s.cfg.IdleTimeout)); err != nil {
			return
		}
		bp, err := readFrame(c.br, c.s.cfg.MaxRequestSize)
		if err != nil {
			c.logReadError(err)
			return
		}
		if err := c.handleFrame(bp); err != nil {
			if !c.s.isClosed() {
				c.log.Warn("closing kafka connection", "err", err)
			}
			return
		}
	}
}

func (c *conn) logReadError(err error) {
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed), c.s.isClosed():
		return // client hung up, or we are shutting down
	case errors.Is(err, errFrameSize), errors.Is(err, io.ErrUnexpectedEOF):
		c.log.Warn("closing kafka connection: bad frame", "err", err)
	default:
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			c.log.Debug("closing idle kafka connection")
			return
		}
		c.log.Debug("kafka connection read failed", "err", err)
	}
}

// readFrame reads one size-prefixed frame into a pooled buffer, which the
// caller returns with putBuf.
func readFrame(r io.Reader, maxSize int32) (*[]byte, error) {
	var sz [frameSizeLen]byte
	if _, err := io.ReadFull(r, sz[:]); err != nil {
		return nil, err
	}
	size := int32(binary.BigEndian.Uint32(sz[:]))
	if size < minFrameSize || size > maxSize {
		return nil, fmt.Errorf("%w: %d (allowed %d..%d)", errFrameSize, size, minFrameSize, maxSize)
	}
	n := int(size)
	have := min(n, frameReadChunk)
	bp := getBuf(have)
	if _, err := io.ReadFull(r, *bp); err != nil {
		putBuf(bp)
		return nil, err
	}
	for have < n {
		next := min(n, 2*have)
		nbp := getBuf(next)
		copy(*nbp, (*bp)[:have])
		putBuf(bp)
		bp = nbp
		if _, err := io.ReadFull(r, (*bp)[have:next]); err != nil {
			putBuf(bp)
			return nil, err
		}
		have = next
	}
	return bp, nil
}

// decodeRequest parses the request header and body of one frame. The body's
// byte fields (produce records) alias frame.
func decodeRequest(frame []byte, apis *apiTable) (request, error) {
	rd := kbin.Reader{Src: frame}
	req := request{key: rd.Int16(), version: rd.Int16(), corr: rd.Int32()}
	if !rd.Ok() {
		return req, errBadHeader
	}
	body := kmsg.RequestForKey(req.key)
	if body == nil {
		return req, fmt.Errorf("%w %d", errUnknownKey, req.key)
	}
	if req.key == apiVersionsKey && !apis.supports(req.key, req.version) {
		// A newer client's ApiVersions may have a header and body we
		// cannot parse; we answer with version 0 without reading them.
		return req, nil
	}
	if req.version < 0 || req.version > body.MaxVersion() {
		return req, fmt.Errorf("%w: %s v%d", errBadVersion, kmsg.NameForKey(req.key), req.version)
	}
	body.SetVersion(req.version)
	// ControlledShutdown v0 is the one request whose header has no client
	// id; flexible requests use header v2, which ends in tagged fields.
	// The client id aliases the frame; only the group coordinator keeps
	// it (as a string), so nothing is copied on the produce path.
	if !(req.key == 7 && req.version == 0) {
		if n := rd.Int16(); n > 0 {
			req.clientID = rd.Span(int(n))
		}
	}
	if body.IsFlexible() {
		kmsg.SkipTags(&rd)
	}
	if !rd.Ok() {
		return req, errBadHeader
	}
	if err := body.ReadFrom(rd.Src); err != nil {
		return req, fmt.Errorf("%w: %s v%d: %v", errBadBody, kmsg.NameForKey(req.key), req.version, err)
	}
	req.body = body
	return req, nil
}

// handleFrame decodes and handles one request and queues its answer. It
// takes ownership of the pooled frame. A returned error closes the
// connection once the requests before it are answered.
func (c *conn) handleFrame(frame *[]byte) error {
	start := time.Now()
	req, err := decodeRequest(*frame, &c.s.apis)
	if err != nil {
		putBuf(frame)
		if !errors.Is(err, errUnknownKey) && !errors.Is(err, errBadHeader) {
			c.s.m.countMalformed(req.key)
		}
		return err
	}
	if req.key == produceKey {
		c.inflight.acquire(maxInFlight)
	} else {
		c.inflight.acquire(1) // after every earlier request is answered
	}
	cx := &reqCtx{s: c.s, c: c, key: req.key, version: req.version, clientID: req.clientID}
	var resp kmsg.Response
	switch api := c.s.apis.lookup(req.key); {
	case req.body == nil:
		resp = apiVersionsFallback(&c.s.apis)
		cx.count(unsupportedCode)
	case api == nil || req.version < api.min || req.version > api.max:
		c.log.Debug("unsupported kafka request", "api", kmsg.NameForKey(req.key), "version", req.version)
		resp = unsupportedResponse(req.body)
		cx.count(unsupportedCode)
	case c.s.cluster != nil && !c.s.coordinates(cx, req.body):
		// Answered with NOT_COORDINATOR (or why not) for every group.
		resp = cx.notCoordinator
	default:
		resp, err = api.handle(cx, req.body)
	}
	// Decoded byte fields alias the frame, and most responses may refer
	// to the request, so the frame lives until the response is written
	// unless the handler is done with it.
	if cx.frameDone {
		putBuf(frame)
	} else {
		cx.release = append(cx.release, frame)
	}
	if err != nil {
		for _, bp := range cx.release {
			putBuf(bp)
		}
		c.inflight.release()
		c.s.m.observe(req.key, time.Since(start))
		return err
	}
	c.queue <- answer{cx: cx, corr: req.corr, resp: resp, start: start}
	return nil
}
