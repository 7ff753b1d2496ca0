package sluice_test

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	sluice "github.com/sluice-io/sluice/sdk/go"
	"github.com/sluice-io/sluice/sdk/go/sdktest"
)

// run starts a host with stores and runs f inside one handler call, so
// that state writes are allowed; it fails the test if the batch fails.
func run(t *testing.T, host **sdktest.Host, stores []string, f func() error) {
	t.Helper()
	sluice.OnInit(nil)
	sluice.Handle(func(*sluice.Record, *sluice.Emitter) error { return f() })
	if *host == nil {
		h, err := sdktest.Start(sdktest.Config{Stores: stores})
		if err != nil {
			t.Fatal(err)
		}
		*host = h
	}
	if _, err := (*host).Process(sluice.Record{}); err != nil {
		t.Fatal(err)
	}
}

func TestStoreGetPutDelete(t *testing.T) {
	s := sluice.NewStore("kv")
	big := bytes.Repeat([]byte("0123456789"), 10_000) // far over the first Get buffer
	var host *sdktest.Host
	run(t, &host, []string{"kv"}, func() error {
		if _, found, err := s.Get([]byte("a")); found || err != nil {
			t.Errorf("Get of a missing key: found %v, err %v", found, err)
		}
		for k, v := range map[string][]byte{"a": []byte("1"), "empty": {}, "big": big} {
			if err := s.Put([]byte(k), v); err != nil {
				return err
			}
		}
		// Reads see the call's own writes.
		v, found, err := s.Get([]byte("big"))
		if err != nil || !found || !bytes.Equal(v, big) {
			t.Errorf("Get big: %d bytes, found %v, err %v; want %d bytes", len(v), found, err, len(big))
		}
		v, found, err = s.Get([]byte("empty"))
		if err != nil || !found || v == nil || len(v) != 0 {
			t.Errorf("Get empty = %q (nil %v), found %v, err %v; want an empty non-nil value", v, v == nil, found, err)
		}
		return s.Delete([]byte("a"))
	})
	st := host.State("kv")
	if _, ok := st["a"]; ok || st["empty"] != "" || len(st["big"]) != len(big) {
		t.Errorf("committed state has keys %v; want empty and big only", len(st))
	}
}

func TestStoreErrors(t *testing.T) {
	missing := sluice.NewStore("not-declared")
	var host *sdktest.Host
	run(t, &host, []string{"kv"}, func() error {
		_, _, err := missing.Get([]byte("k"))
		if !errors.Is(err, sluice.ErrUnknownStore) || !strings.Contains(err.Error(), `"not-declared"`) {
			t.Errorf("Get on an undeclared store: %v", err)
		}
		if err := missing.Put([]byte("k"), nil); !errors.Is(err, sluice.ErrUnknownStore) {
			t.Errorf("Put on an undeclared store: %v", err)
		}
		for range missing.Scan(nil, nil) {
			t.Error("Scan of an undeclared store yielded an entry")
		}
		if !errors.Is(missing.Err(), sluice.ErrUnknownStore) {
			t.Errorf("Scan error = %v", missing.Err())
		}
		err = sluice.NewStore("kv").Put(make([]byte, 65<<10), nil)
		if !errors.Is(err, sluice.ErrTooLarge) {
			t.Errorf("Put of a 65 KiB key: %v, want ErrTooLarge", err)
		}
		return nil
	})

	// Writes are not allowed during init.
	kv := sluice.NewStore("kv")
	sluice.OnInit(func(sluice.Params) error { return kv.Put([]byte("k"), []byte("v")) })
	defer sluice.OnInit(nil)
	_, err := sdktest.Start(sdktest.Config{Stores: []string{"kv"}})
	var ie *sdktest.InitError
	if !errors.As(err, &ie) || !strings.Contains(ie.Message, sluice.ErrNotAllowed.Error()) {
		t.Errorf("Put in init: %v, want an init error with ErrNotAllowed", err)
	}
}

func TestStoreScan(t *testing.T) {
	s := sluice.NewStore("scan")
	var host *sdktest.Host
	// Enough entries to take several scan buffers, and one entry larger
	// than the whole first buffer.
	want := map[string]string{}
	for i := range 2000 {
		want[fmt.Sprintf("k%05d", i)] = strings.Repeat("v", i%50)
	}
	want["k01000"] = strings.Repeat("x", 100_000)
	want["other"] = "o"
	run(t, &host, []string{"scan"}, func() error {
		for k, v := range want {
			if err := s.Put([]byte(k), []byte(v)); err != nil {
				return err
			}
		}
		return nil
	})
	run(t, &host, nil, func() error {
		var keys []string
		for k, v := range s.Scan([]byte("k"), []byte("l")) {
			if want[string(k)] != string(v) {
				t.Errorf("Scan: %s has %d bytes, want %d", k, len(v), len(want[string(k)]))
			}
			keys = append(keys, string(k))
		}
		if err := s.Err(); err != nil {
			t.Fatal(err)
		}
		if len(keys) != 2000 || keys[0] != "k00000" || keys[1999] != "k01999" {
			t.Errorf("Scan [k, l) saw %d keys from %v, want k00000..k01999", len(keys), keys[:min(3, len(keys))])
		}
		for i := 1; i < len(keys); i++ {
			if keys[i-1] >= keys[i] {
				t.Fatalf("Scan out of order: %s then %s", keys[i-1], keys[i])
			}
		}

		n := 0
		for k := range s.ScanPrefix([]byte("k0199")) {
			n++
			if !bytes.HasPrefix(k, []byte("k0199")) {
				t.Errorf("ScanPrefix yielded %s", k)
			}
		}
		if n != 10 {
			t.Errorf("ScanPrefix k0199 saw %d keys, want 10", n)
		}

		// Breaking out early, and a scan nested inside another.
		n = 0
		for k := range s.Scan(nil, nil) {
			inner := 0
			for range s.Scan(k, nil) {
				inner++
			}
			if inner != len(want)-n {
				t.Errorf("nested scan from %s saw %d keys, want %d", k, inner, len(want)-n)
			}
			n++
			if n == 3 {
				break
			}
		}
		if n != 3 || s.Err() != nil {
			t.Errorf("early break: %d iterations, err %v", n, s.Err())
		}
		return nil
	})
}

// TestStateCacheFollowsTheHost checks the SDK's state cache against the
// host's transactional staging: writes of a failed batch are forgotten by
// the cache as the host discards them, a write the operator made after a
// read is what the next batch reads, and Scan sees the batch's own writes.
func TestStateCacheFollowsTheHost(t *testing.T) {
	s := sluice.NewStore("cached")
	sluice.OnInit(nil)
	var reads []string
	sluice.Handle(func(r *sluice.Record, _ *sluice.Emitter) error {
		v, _, err := s.Get([]byte("k"))
		if err != nil {
			return err
		}
		reads = append(reads, string(v))
		switch string(r.Value) {
		case "put":
			return s.Put([]byte("k"), append(v, '+'))
		case "fail":
			return errors.New("asked to fail")
		case "scan":
			if err := s.Put([]byte("k2"), []byte("new")); err != nil {
				return err
			}
			var keys []string
			for k := range s.Scan(nil, nil) {
				keys = append(keys, string(k))
			}
			if got := strings.Join(keys, ","); got != "k,k2" {
				t.Errorf("scan in the writing batch = %s, want k,k2", got)
			}
		}
		return nil
	})
	host, err := sdktest.Start(sdktest.Config{Stores: []string{"cached"}})
	if err != nil {
		t.Fatal(err)
	}
	host.SetState("cached", "k", "host")
	rec := func(v string) sluice.Record { return sluice.Record{Value: []byte(v)} }
	if _, err := host.Process(rec("put"), rec("put")); err != nil {
		t.Fatal(err)
	}
	// The failed batch wrote "host+++" before failing: the next batch must
	// not read it from the cache.
	if _, err := host.Process(rec("put"), rec("fail")); err == nil {
		t.Fatal("the failing batch succeeded")
	}
	if _, err := host.Process(rec("get"), rec("scan")); err != nil {
		t.Fatal(err)
	}
	want := []string{"host", "host+", "host++", "host+++", "host++", "host++"}
	if fmt.Sprint(reads) != fmt.Sprint(want) {
		t.Errorf("reads = %q, want %q", reads, want)
	}
	if st := host.State("cached"); st["k"] != "host++" || st["k2"] != "new" {
		t.Errorf("host state = %v, want k=host++ k2=new", st)
	}
}

// TestBatchHooks checks OnBatchStart and OnBatchEnd: the end hook sees the
// whole batch, its outputs go out with the batch, it does not run for a
// failed batch, and the start hook runs again before the retry.
func TestBatchHooks(t *testing.T) {
	defer sluice.OnBatchStart(nil)
	defer sluice.OnBatchEnd(nil)
	var seen []string
	starts, ends := 0, 0
	sluice.OnBatchStart(func() { starts++; seen = seen[:0] })
	sluice.Handle(func(r *sluice.Record, _ *sluice.Emitter) error {
		if string(r.Value) == "bad" {
			return errors.New("bad record")
		}
		seen = append(seen, string(r.Value))
		return nil
	})
	sluice.OnBatchEnd(func(out *sluice.Emitter) error {
		ends++
		out.Emit(nil, []byte(strings.Join(seen, "+")))
		return nil
	})
	host, err := sdktest.Start(sdktest.Config{})
	if err != nil {
		t.Fatal(err)
	}
	rec := func(v string) sluice.Record { return sluice.Record{Value: []byte(v)} }
	if _, err := host.Process(rec("a"), rec("bad")); err == nil {
		t.Fatal("the batch with a bad record succeeded")
	}
	outs, err := host.Process(rec("a"), rec("b"))
	if err != nil {
		t.Fatal(err)
	}
	if len(outs) != 1 || string(outs[0].Value) != "a+b" || starts != 2 || ends != 1 {
		t.Errorf("outputs %v, %d starts, %d ends; want one output a+b, 2 starts, 1 end", outs, starts, ends)
	}
}
