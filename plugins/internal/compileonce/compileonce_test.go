package compileonce

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
)

func TestCompileOncePerContent(t *testing.T) {
	c := New[*int](errors.New("closed"))
	var calls atomic.Int32
	release := make(chan struct{})
	compile := func(_ context.Context, wasm []byte, sha string) (*int, error) {
		calls.Add(1)
		<-release
		if len(sha) != 64 {
			t.Errorf("sha %q", sha)
		}
		v := len(wasm)
		return &v, nil
	}
	var wg sync.WaitGroup
	got := make([]*int, 4)
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m, err := c.Compile(context.Background(), []byte("module"), compile)
			if err != nil {
				t.Error(err)
			}
			got[i] = m
		}()
	}
	close(release)
	wg.Wait()
	for _, m := range got {
		if m != got[0] {
			t.Fatal("concurrent compiles of the same bytes returned different modules")
		}
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("compiled %d times", n)
	}
}

func TestFailureIsNotCached(t *testing.T) {
	c := New[*int](errors.New("closed"))
	fail := errors.New("cancelled")
	if _, err := c.Compile(context.Background(), []byte("m"), func(context.Context, []byte, string) (*int, error) { return nil, fail }); err != fail {
		t.Fatalf("got %v", err)
	}
	v := 1
	m, err := c.Compile(context.Background(), []byte("m"), func(context.Context, []byte, string) (*int, error) { return &v, nil })
	if err != nil || m != &v {
		t.Fatalf("retry: %v, %v", m, err)
	}
}

func TestClose(t *testing.T) {
	errClosed := errors.New("closed")
	c := New[*int](errClosed)
	v := 1
	if _, err := c.Compile(context.Background(), []byte("m"), func(context.Context, []byte, string) (*int, error) { return &v, nil }); err != nil {
		t.Fatal(err)
	}
	drain, ok := c.Close()
	if !ok || !c.Closed() {
		t.Fatal("Close did not close")
	}
	var released []*int
	drain(func(m *int) { released = append(released, m) })
	if len(released) != 1 || released[0] != &v {
		t.Fatalf("released %v", released)
	}
	if _, ok := c.Close(); ok {
		t.Fatal("second Close reported ok")
	}
	if _, err := c.Compile(context.Background(), []byte("m"), nil); err != errClosed {
		t.Fatalf("Compile after Close: %v", err)
	}
}
