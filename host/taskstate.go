package host

import (
	"context"
	"errors"
	"strconv"

	"github.com/sluice-io/sluice/abi"
	"github.com/sluice-io/sluice/broker/group"
	"github.com/sluice-io/sluice/broker/storage"
	"github.com/sluice-io/sluice/host/state"
)

// taskStore is what a task needs of its state: host/state's State, with
// its errors mapped to ABI codes here rather than in the host calls.
type taskStore = *state.State

// openState opens (and restores) a task's state.
type openState func(ctx context.Context, t *task) (taskStore, error)

// storeSpec is one store of a task: a state store and its changelog, or
// a table and its topic.
type storeSpec struct {
	name      string
	changelog *storage.Partition
	table     bool
}

// stateOpener opens the Pebble database in dir for the task's stores.
func stateOpener(dir string, stores []storeSpec) openState {
	return func(ctx context.Context, t *task) (taskStore, error) {
		opts := state.Options{Dir: dir, Logger: t.log}
		for _, s := range stores {
			opts.Stores = append(opts.Stores, state.Store{Name: s.name, Changelog: s.changelog, Table: s.table})
		}
		return state.Open(opts)
	}
}

// restoreState brings the task's stores up to their changelogs, showing
// progress in the task's status. It runs on every (re)start: cheap when
// the local state is current, and needed after a failed flush.
func (t *task) restoreState(ctx context.Context) error {
	t.setState(TaskRestoring)
	return t.state.Restore(ctx, func(store string, restored, total int64) {
		t.statusMu.Lock()
		t.restore = &RestoreProgress{Store: store, Restored: restored, Total: total}
		if restored > t.restoredMax {
			t.restoredMax = restored
		}
		t.statusMu.Unlock()
	})
}

// stateCode maps a state error to the code the guest sees; errors other
// than the guest's own mistakes are host failures that fail the task.
func stateCode(err error) (int32, error) {
	switch {
	case err == nil:
		return int32(abi.OK), nil
	case errors.Is(err, state.ErrBadStore):
		return int32(abi.ErrBadStore), nil
	case errors.Is(err, state.ErrTooLarge):
		return int32(abi.ErrLimit), nil
	case errors.Is(err, state.ErrReadOnly):
		return int32(abi.ErrNotAllowed), nil
	}
	return int32(abi.ErrInternal), err
}

func (t *task) flushState() ([]group.Fact, error) {
	if err := t.state.Flush(); err != nil {
		return nil, err
	}
	offs := t.state.ChangelogOffsets()
	facts := make([]group.Fact, 0, len(offs))
	p := strconv.Itoa(int(t.partition))
	for name, off := range offs {
		facts = append(facts, group.Fact{Name: "changelog/" + name + "/" + p, Value: []byte(strconv.FormatInt(off, 10))})
	}
	return facts, nil
}

func (t *task) rollbackState() error {
	t.state.Rollback()
	return nil
}

func (t *task) closeState() {
	if t.state != nil {
		if err := t.state.Close(); err != nil {
			t.log.Warn("closing state", "err", err)
		}
		t.state = nil
	}
}
