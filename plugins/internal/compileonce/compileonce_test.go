package compileonce

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
)

func TestCompileOncePerContent(t *testing.T) {
	c := New[*int](errors.New("closed"), nil)
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
			h, err := c.Compile(context.Background(), []byte("module"), compile)
			if err != nil {
				t.Error(err)
				return
			}
			got[i] = h.Module
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
	c := New[*int](errors.New("closed"), nil)
	fail := errors.New("cancelled")
	if _, err := c.Compile(context.Background(), []byte("m"), func(context.Context, []byte, string) (*int, error) { return nil, fail }); err != fail {
		t.Fatalf("got %v", err)
	}
	v := 1
	h, err := c.Compile(context.Background(), []byte("m"), func(context.Context, []byte, string) (*int, error) { return &v, nil })
	if err != nil || h.Module != &v {
		t.Fatalf("retry: %v, %v", h, err)
	}
}

func TestClose(t *testing.T) {
	errClosed := errors.New("closed")
	c := New[*int](errClosed, nil)
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

// sha is the key of wasm in the cache.
func sha(wasm []byte) string {
	sum := sha256.Sum256(wasm)
	return hex.EncodeToString(sum[:])
}

func TestHoldersAndRelease(t *testing.T) {
	var freed []*int
	c := New[*int](errors.New("closed"), func(m *int) { freed = append(freed, m) })
	compiles := 0
	compile := func(context.Context, []byte, string) (*int, error) {
		compiles++
		v := compiles
		return &v, nil
	}
	ctx := context.Background()
	wasm := []byte("m")
	h1, err := c.Compile(ctx, wasm, compile)
	if err != nil {
		t.Fatal(err)
	}
	h2, err := c.Compile(ctx, wasm, compile)
	if err != nil {
		t.Fatal(err)
	}
	if h1 == h2 || h1.Module != h2.Module || compiles != 1 {
		t.Fatalf("holders %p %p of modules %p %p after %d compiles", h1, h2, h1.Module, h2.Module, compiles)
	}
	if n := c.Holders(sha(wasm)); n != 2 {
		t.Fatalf("%d holders, want 2", n)
	}
	h1.Release()
	h1.Release() // harmless: does not release h2's hold
	if n := c.Holders(sha(wasm)); n != 1 || !h1.Released() || h2.Released() {
		t.Fatalf("after h1's release twice: %d holders, released %v %v", n, h1.Released(), h2.Released())
	}
	if len(freed) != 0 || c.Len() != 1 {
		t.Fatalf("freed %v with a holder left (%d cached)", freed, c.Len())
	}
	h2.Release()
	if len(freed) != 1 || freed[0] != h2.Module || c.Len() != 0 || c.Holders(sha(wasm)) != 0 {
		t.Fatalf("after the last release: freed %v, %d cached", freed, c.Len())
	}
	// Compiling again compiles anew.
	h3, err := c.Compile(ctx, wasm, compile)
	if err != nil {
		t.Fatal(err)
	}
	if compiles != 2 || *h3.Module != 2 || c.Holders(sha(wasm)) != 1 {
		t.Fatalf("recompile: %d compiles, module %d, %d holders", compiles, *h3.Module, c.Holders(sha(wasm)))
	}
	// Close frees what is still held, once; a release afterwards does
	// nothing.
	drain, _ := c.Close()
	drain(func(m *int) { freed = append(freed, m) })
	h3.Release()
	if len(freed) != 2 || freed[1] != h3.Module {
		t.Fatalf("after Close: freed %v", freed)
	}
}

// TestWaiterThatGivesUp: a Compile waiting for another's compilation
// counts as a holder while it waits and stops counting when its context
// is done, and the compilation's own holder then frees the module alone.
func TestWaiterThatGivesUp(t *testing.T) {
	var freed atomic.Int32
	c := New[*int](errors.New("closed"), func(*int) { freed.Add(1) })
	wasm := []byte("m")
	release := make(chan struct{})
	first := make(chan *Holder[*int])
	go func() {
		h, err := c.Compile(context.Background(), wasm, func(context.Context, []byte, string) (*int, error) {
			<-release
			v := 1
			return &v, nil
		})
		if err != nil {
			t.Error(err)
		}
		first <- h
	}()
	for c.Len() == 0 {
		runtime.Gosched()
	}
	ctx, cancel := context.WithCancel(context.Background())
	waited := make(chan error)
	go func() {
		_, err := c.Compile(ctx, wasm, nil)
		waited <- err
	}()
	for c.Holders(sha(wasm)) != 2 {
		runtime.Gosched()
	}
	cancel()
	if err := <-waited; err != context.Canceled {
		t.Fatalf("waiter: %v", err)
	}
	close(release)
	h := <-first
	if n := c.Holders(sha(wasm)); n != 1 {
		t.Fatalf("%d holders, want 1", n)
	}
	h.Release()
	if freed.Load() != 1 || c.Len() != 0 {
		t.Fatalf("freed %d, %d cached", freed.Load(), c.Len())
	}
}

// TestConcurrentCompileAndRelease (run it with -race): holders come and go
// concurrently; every module compiled is freed exactly once, none while
// held.
func TestConcurrentCompileAndRelease(t *testing.T) {
	type mod struct {
		freed atomic.Int32
		held  atomic.Int32
	}
	var compiled, freed atomic.Int32
	c := New[*mod](errors.New("closed"), func(m *mod) {
		if m.held.Load() != 0 {
			t.Error("freed a module still held")
		}
		if m.freed.Add(1) != 1 {
			t.Error("freed a module twice")
		}
		freed.Add(1)
	})
	compile := func(context.Context, []byte, string) (*mod, error) {
		compiled.Add(1)
		return &mod{}, nil
	}
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 500; i++ {
				wasm := []byte{byte(i % 3)}
				h, err := c.Compile(context.Background(), wasm, compile)
				if err != nil {
					t.Error(err)
					return
				}
				h.Module.held.Add(1)
				if h.Module.freed.Load() != 0 {
					t.Error("got a freed module")
				}
				runtime.Gosched()
				h.Module.held.Add(-1)
				h.Release()
				h.Release()
			}
		}()
	}
	wg.Wait()
	if c.Len() != 0 || compiled.Load() != freed.Load() {
		t.Fatalf("%d cached, %d compiled, %d freed", c.Len(), compiled.Load(), freed.Load())
	}
}
