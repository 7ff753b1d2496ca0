package sluice

import (
	"encoding/json"
	"errors"
	"fmt"
	"iter"
)

// Codec converts a Go value to and from the bytes of a state key or value.
type Codec[T any] interface {
	// Append appends the encoding of v to dst.
	Append(dst []byte, v T) []byte
	// Decode decodes b, which is only valid during the call: a decoded
	// value must not alias it.
	Decode(b []byte) (T, error)
}

// Provided codecs.
var (
	// String stores a string as its bytes.
	String Codec[string] = stringCodec{}
	// Bytes stores a byte slice as is (decoding copies it).
	Bytes Codec[[]byte] = bytesCodec{}
	// Int64 stores an integer as decimal ASCII ("42", "-7"), readable by
	// any consumer of the store's changelog. Keys encoded with it sort as
	// strings, not as numbers.
	Int64 Codec[int64] = int64Codec{}
)

// JSON returns a codec that stores values of type T as JSON.
func JSON[T any]() Codec[T] { return jsonCodec[T]{} }

type stringCodec struct{}

func (stringCodec) Append(dst []byte, v string) []byte { return append(dst, v...) }
func (stringCodec) Decode(b []byte) (string, error)    { return string(b), nil }

type bytesCodec struct{}

func (bytesCodec) Append(dst []byte, v []byte) []byte { return append(dst, v...) }
func (bytesCodec) Decode(b []byte) ([]byte, error)    { return append([]byte{}, b...), nil }

type int64Codec struct{}

func (int64Codec) Append(dst []byte, v int64) []byte {
	// A plain digit loop: strconv.AppendInt is several times slower in a
	// Go guest, where its calls and tables cost more than the divisions.
	var digits [20]byte
	i := len(digits)
	u := uint64(v)
	if v < 0 {
		u = -u
	}
	for u >= 10 {
		q := u / 10
		i--
		digits[i] = byte('0' + u - q*10)
		u = q
	}
	i--
	digits[i] = byte('0' + u)
	if v < 0 {
		dst = append(dst, '-')
	}
	return append(dst, digits[i:]...)
}

var errNotDecimal = errors.New("not a decimal integer")

// Decode parses without converting b to a string, which would allocate.
func (int64Codec) Decode(b []byte) (int64, error) {
	neg := len(b) > 0 && b[0] == '-'
	digits := b
	if neg {
		digits = b[1:]
	}
	if len(digits) == 0 || len(digits) > 19 {
		return 0, fmt.Errorf("%q: %w", b, errNotDecimal)
	}
	var n uint64
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("%q: %w", b, errNotDecimal)
		}
		n = n*10 + uint64(c-'0')
	}
	if neg {
		if n > 1<<63 {
			return 0, fmt.Errorf("%q: %w (out of range)", b, errNotDecimal)
		}
		return -int64(n), nil
	}
	if n > 1<<63-1 {
		return 0, fmt.Errorf("%q: %w (out of range)", b, errNotDecimal)
	}
	return int64(n), nil
}

type jsonCodec[T any] struct{}

func (jsonCodec[T]) Append(dst []byte, v T) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		// Values of a type that cannot be marshalled are a programming
		// error that every call would hit; the handler's recover turns
		// the panic into a failed record with this message.
		panic(fmt.Sprintf("sluice: JSON codec: %v", err))
	}
	return append(dst, b...)
}

func (jsonCodec[T]) Decode(b []byte) (T, error) {
	var v T
	err := json.Unmarshal(b, &v)
	return v, err
}

// Table is a Store with typed keys and values.
type Table[K, V any] struct {
	store  *Store
	keys   Codec[K]
	values Codec[V]
	kbuf   []byte
	vbuf   []byte
	err    error
}

// NewTable returns a typed view of the state store called name. Like
// NewStore, it may be called at package level.
func NewTable[K, V any](name string, keys Codec[K], values Codec[V]) *Table[K, V] {
	return &Table[K, V]{store: NewStore(name), keys: keys, values: values}
}

// Store returns the untyped store under t.
func (t *Table[K, V]) Store() *Store { return t.store }

func (t *Table[K, V]) key(k K) []byte {
	t.kbuf = t.keys.Append(t.kbuf[:0], k)
	return t.kbuf
}

// Get returns the value of k and whether it exists.
func (t *Table[K, V]) Get(k K) (v V, found bool, err error) {
	b, found, err := t.store.Get(t.key(k))
	if err != nil || !found {
		return v, false, err
	}
	v, err = t.values.Decode(b)
	if err != nil {
		return v, false, fmt.Errorf("sluice: store %q: decoding the value of %q: %w", t.store.name, t.kbuf, err)
	}
	return v, true, nil
}

// Put sets k to v.
func (t *Table[K, V]) Put(k K, v V) error {
	key := t.key(k)
	t.vbuf = t.values.Append(t.vbuf[:0], v)
	return t.store.Put(key, t.vbuf)
}

// Delete removes k.
func (t *Table[K, V]) Delete(k K) error { return t.store.Delete(t.key(k)) }

// All iterates over every entry in the order of the encoded keys. As with
// Store.Scan, check Err after the loop.
func (t *Table[K, V]) All() iter.Seq2[K, V] { return t.scan(nil, nil) }

// Range iterates over the entries whose encoded keys are at least the
// encoding of start and below the encoding of end.
func (t *Table[K, V]) Range(start, end K) iter.Seq2[K, V] {
	return t.scan(t.keys.Append(nil, start), t.keys.Append(nil, end))
}

func (t *Table[K, V]) scan(start, end []byte) iter.Seq2[K, V] {
	return func(yield func(K, V) bool) {
		t.err = nil
		for kb, vb := range t.store.Scan(start, end) {
			k, err := t.keys.Decode(kb)
			if err != nil {
				t.err = fmt.Errorf("sluice: store %q: decoding key %q: %w", t.store.name, kb, err)
				return
			}
			v, err := t.values.Decode(vb)
			if err != nil {
				t.err = fmt.Errorf("sluice: store %q: decoding the value of %q: %w", t.store.name, kb, err)
				return
			}
			if !yield(k, v) {
				return
			}
		}
		t.err = t.store.Err()
	}
}

// Err returns the error that ended the last All or Range early, or nil.
func (t *Table[K, V]) Err() error { return t.err }
