package host

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"sync"
)

// logWriter turns what a guest writes to stdout or stderr into log lines
// of its task. A line longer than maxLogLine is cut, so that a guest that
// never writes a newline cannot grow the buffer without bound.
type logWriter struct {
	log    *slog.Logger
	level  slog.Level
	stream string
	mu     sync.Mutex
	buf    []byte
}

const maxLogLine = 16 << 10

func newLogWriter(log *slog.Logger, level slog.Level, stream string) io.Writer {
	return &logWriter{log: log, level: level, stream: stream}
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			w.buf = append(w.buf, p...)
			if len(w.buf) >= maxLogLine {
				w.emit()
			}
			break
		}
		w.buf = append(w.buf, p[:i]...)
		w.emit()
		p = p[i+1:]
	}
	return n, nil
}

func (w *logWriter) emit() {
	line := w.buf
	if len(line) > maxLogLine {
		line = line[:maxLogLine]
	}
	w.log.Log(context.Background(), w.level, string(line), "stream", w.stream)
	w.buf = w.buf[:0]
}
