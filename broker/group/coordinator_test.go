package group

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
)

// TestCoordinatorJoinWaitsWithoutLock parks a JoinGroup (the initial delay
// is long), checks that other calls proceed meanwhile, then that a second
// member's join and a leave complete it, and that Close answers a parked
// join with COORDINATOR_NOT_AVAILABLE.
func TestCoordinatorJoinWaitsWithoutLock(t *testing.T) {
	b := openBroker(t, t.TempDir())
	defer b.Close()
	c, err := New(b, Options{Config: Config{InitialRebalanceDelay: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	req := joinReq("", "range")
	req.RequireKnownID = false
	req.RebalanceTimeout = time.Hour
	done := make(chan JoinResult, 1)
	go func() { done <- c.Join(req, nil) }()

	deadline := time.Now().Add(10 * time.Second)
	for {
		if d, _ := c.Describe("g"); d.State == PreparingRebalance && len(d.Members) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("join never registered")
		}
		time.Sleep(time.Millisecond) // poll interval
	}
	// The machine is not locked while the join waits.
	if err := c.Heartbeat("other", "x", "", 0); err != kerr.UnknownMemberID {
		t.Fatalf("heartbeat: %v", err)
	}
	if len(c.List()) != 1 {
		t.Fatal("list")
	}
	select {
	case r := <-done:
		t.Fatalf("join answered early: %+v", r)
	default:
	}

	stop := make(chan struct{})
	close(stop)
	if r := c.Join(joinReq("", "range"), stop); r.Err != kerr.MemberIDRequired {
		t.Fatalf("immediate answer lost to a closed stop channel: %+v", r)
	}

	c.Close()
	if r := <-done; r.Err != kerr.CoordinatorNotAvailable {
		t.Fatalf("after Close: %+v", r)
	}
}
