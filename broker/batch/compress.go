package batch

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// maxDecompressed bounds the output of decompressing one batch so that a
// small hostile batch cannot expand into gigabytes.
const maxDecompressed = 4 * MaxBatchSize

var zstdDecoder, _ = zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(maxDecompressed))

// xerialMagic starts snappy data framed the way the Java client writes it.
var xerialMagic = []byte{0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0}

func decompress(codec int, src []byte) ([]byte, error) {
	switch codec {
	case CompressionGzip:
		zr, err := gzip.NewReader(bytes.NewReader(src))
		if err != nil {
			return nil, err
		}
		return readBounded(zr)
	case CompressionSnappy:
		if bytes.HasPrefix(src, xerialMagic) {
			return unxerial(src)
		}
		return snappyBlock(src)
	case CompressionLZ4:
		return readBounded(lz4.NewReader(bytes.NewReader(src)))
	case CompressionZstd:
		return zstdDecoder.DecodeAll(src, nil)
	default:
		return nil, fmt.Errorf("unknown compression codec %d", codec)
	}
}

func snappyBlock(src []byte) ([]byte, error) {
	n, err := s2.DecodedLen(src)
	if err != nil {
		return nil, err
	}
	if n > maxDecompressed {
		return nil, errors.New("snappy block too large")
	}
	return s2.Decode(nil, src)
}

// unxerial decodes Java's xerial snappy framing: a 16-byte header followed
// by chunks, each a 4-byte big-endian length and a snappy block.
func unxerial(src []byte) ([]byte, error) {
	if len(src) < 16 {
		return nil, errors.New("short xerial header")
	}
	src = src[16:]
	var out []byte
	for len(src) > 0 {
		if len(src) < 4 {
			return nil, errors.New("short xerial chunk length")
		}
		n := int(binary.BigEndian.Uint32(src))
		src = src[4:]
		if n < 0 || n > len(src) {
			return nil, errors.New("xerial chunk overruns input")
		}
		chunk, err := snappyBlock(src[:n])
		if err != nil {
			return nil, err
		}
		if len(out)+len(chunk) > maxDecompressed {
			return nil, errors.New("xerial output too large")
		}
		out = append(out, chunk...)
		src = src[n:]
	}
	return out, nil
}

func readBounded(r io.Reader) ([]byte, error) {
	out, err := io.ReadAll(io.LimitReader(r, maxDecompressed+1))
	if err != nil {
		return nil, err
	}
	if len(out) > maxDecompressed {
		return nil, errors.New("decompressed batch too large")
	}
	return out, nil
}
