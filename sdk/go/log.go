package sluice

import (
	"fmt"

	"github.com/sluice-io/sluice/abi"
)

// Level is a log level. The values are log/slog's.
type Level int32

const (
	LevelDebug = Level(abi.LevelDebug)
	LevelInfo  = Level(abi.LevelInfo)
	LevelWarn  = Level(abi.LevelWarn)
	LevelError = Level(abi.LevelError)
)

func (l Level) String() string {
	switch l {
	case LevelDebug:
		return "DEBUG"
	case LevelInfo:
		return "INFO"
	case LevelWarn:
		return "WARN"
	case LevelError:
		return "ERROR"
	}
	return fmt.Sprintf("LEVEL(%d)", int32(l))
}

// Log writes msg to the task's log at level. The host keeps the first
// 16 KiB of a message. Writing to os.Stdout or os.Stderr also reaches the
// task's log, without a level.
func Log(level Level, msg string) { hostLog(int32(level), msg) }

// Logf is Log with fmt.Sprintf formatting.
func Logf(level Level, format string, args ...any) {
	hostLog(int32(level), fmt.Sprintf(format, args...))
}
