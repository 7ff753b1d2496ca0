package main

import (
	"encoding/json"
	"fmt"
	"strconv"
	"unicode/utf8"

	"github.com/twmb/franz-go/pkg/kgo"
)

// formatHelp documents --format; it is shown in consume's help.
const formatHelp = `--format is either "json" (one JSON object per record, with topic, partition,
offset, timestamp, key and value; key and value are strings when they are
valid UTF-8, otherwise arrays of byte values)
or a template in which these verbs are replaced:

  %v  value          %k  key (empty when null)
  %p  partition      %o  offset
  %t  timestamp, milliseconds since the Unix epoch
  %T  topic          %%  a literal %

and \n, \t, \r and \\ are a newline, tab, carriage return and backslash.
Nothing is added after each record: end the template with \n to get lines.
The default is "%v\n", the value on a line of its own.`

// recordFormatter writes records in a format compiled once, so the hot loop
// does no parsing.
type recordFormatter struct {
	json bool
	ops  []formatOp
}

type formatOp struct {
	verb byte   // 0 for literal text
	lit  []byte // literal text when verb is 0
}

func compileFormat(f string) (*recordFormatter, error) {
	if f == "json" {
		return &recordFormatter{json: true}, nil
	}
	var ops []formatOp
	var lit []byte
	flush := func() {
		if len(lit) > 0 {
			ops = append(ops, formatOp{lit: lit})
			lit = nil
		}
	}
	for i := 0; i < len(f); i++ {
		switch c := f[i]; c {
		case '%':
			if i+1 == len(f) {
				return nil, fmt.Errorf("format %q ends with a lone %%", f)
			}
			i++
			switch v := f[i]; v {
			case '%':
				lit = append(lit, '%')
			case 'v', 'k', 'p', 'o', 't', 'T':
				flush()
				ops = append(ops, formatOp{verb: v})
			default:
				return nil, fmt.Errorf("format %q: unknown verb %%%c (known: %%v %%k %%p %%o %%t %%T %%%%)", f, v)
			}
		case '\\':
			if i+1 == len(f) {
				lit = append(lit, '\\')
				continue
			}
			i++
			switch e := f[i]; e {
			case 'n':
				lit = append(lit, '\n')
			case 't':
				lit = append(lit, '\t')
			case 'r':
				lit = append(lit, '\r')
			case '\\':
				lit = append(lit, '\\')
			default:
				lit = append(lit, '\\', e)
			}
		default:
			lit = append(lit, c)
		}
	}
	flush()
	return &recordFormatter{ops: ops}, nil
}

// append formats r onto dst.
func (f *recordFormatter) append(dst []byte, r *kgo.Record) []byte {
	if f.json {
		return appendJSONRecord(dst, r)
	}
	for _, op := range f.ops {
		switch op.verb {
		case 0:
			dst = append(dst, op.lit...)
		case 'v':
			dst = append(dst, r.Value...)
		case 'k':
			dst = append(dst, r.Key...)
		case 'p':
			dst = strconv.AppendInt(dst, int64(r.Partition), 10)
		case 'o':
			dst = strconv.AppendInt(dst, r.Offset, 10)
		case 't':
			dst = strconv.AppendInt(dst, r.Timestamp.UnixMilli(), 10)
		case 'T':
			dst = append(dst, r.Topic...)
		}
	}
	return dst
}

type jsonRecord struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
	Timestamp int64  `json:"timestamp"`
	Key       any    `json:"key"`
	Value     any    `json:"value"`
}

func appendJSONRecord(dst []byte, r *kgo.Record) []byte {
	b, _ := json.Marshal(jsonRecord{
		Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Timestamp: r.Timestamp.UnixMilli(),
		Key: jsonBytes(r.Key), Value: jsonBytes(r.Value),
	})
	dst = append(dst, b...)
	return append(dst, '\n')
}

// jsonBytes keeps text readable and binary exact: JSON strings cannot hold
// arbitrary bytes, so non-UTF-8 data becomes an array of numbers.
func jsonBytes(b []byte) any {
	switch {
	case b == nil:
		return nil
	case utf8.Valid(b):
		return string(b)
	}
	n := make([]int, len(b))
	for i, c := range b {
		n[i] = int(c)
	}
	return n
}
