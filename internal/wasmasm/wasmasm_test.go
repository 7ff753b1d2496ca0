package wasmasm

import (
	"bytes"
	"slices"
	"testing"
)

func TestLEB128(t *testing.T) {
	for _, c := range []struct {
		v    uint64
		want []byte
	}{{0, []byte{0}}, {127, []byte{0x7f}}, {128, []byte{0x80, 0x01}}, {624485, []byte{0xe5, 0x8e, 0x26}}} {
		if got := ULEB(nil, c.v); !bytes.Equal(got, c.want) {
			t.Errorf("ULEB(%d) = %x, want %x", c.v, got, c.want)
		}
	}
	for _, c := range []struct {
		v    int64
		want []byte
	}{{0, []byte{0}}, {-1, []byte{0x7f}}, {63, []byte{0x3f}}, {64, []byte{0xc0, 0x00}}, {-123456, []byte{0xc0, 0xbb, 0x78}}} {
		if got := SLEB(nil, c.v); !bytes.Equal(got, c.want) {
			t.Errorf("SLEB(%d) = %x, want %x", c.v, got, c.want)
		}
	}
}

func TestSectionAndName(t *testing.T) {
	got := Section([]byte{9}, 0, Name(nil, "ab")) // a custom section
	if want := []byte{9, 0, 3, 2, 'a', 'b'}; !bytes.Equal(got, want) {
		t.Fatalf("got %x, want %x", got, want)
	}
}

func TestWithCustomSection(t *testing.T) {
	module := append(slices.Clone(Header), SectionType, 1, 0) // an empty type section
	got := WithCustomSection(module, "v", []byte("12"))
	want := append(slices.Clone(module), SectionCustom, 4, 1, 'v', '1', '2')
	if !bytes.Equal(got, want) {
		t.Fatalf("WithCustomSection = % x, want % x", got, want)
	}
	if !bytes.Equal(module, append(slices.Clone(Header), SectionType, 1, 0)) {
		t.Fatal("WithCustomSection changed its input")
	}
}
