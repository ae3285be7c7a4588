package cluster

import (
	"errors"
	"io"
	"sync/atomic"

	"github.com/hashicorp/raft"
	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/fsm"
)

// raftFSM adapts *fsm.FSM to raft.BatchingFSM. Command entries carry
// their data; configuration entries reach the state machine with nil data
// so that they only advance its applied index.
type raftFSM struct {
	f *fsm.FSM
	// events receives the events of every applied batch; a restore
	// resets it.
	events *eventBuffer
	// changed is called after every batch and restore; the node uses it
	// to notice a new cluster id and refresh its gossip metadata.
	changed func()
	// failed is called once when the state machine cannot apply (a
	// storage failure, or rules newer than this code): the node stops.
	failed func(error)
	broken atomic.Bool
}

var _ raft.BatchingFSM = (*raftFSM)(nil)

// Apply implements raft.FSM.
func (a *raftFSM) Apply(l *raft.Log) any {
	return a.ApplyBatch([]*raft.Log{l})[0]
}

// ApplyBatch implements raft.BatchingFSM: one bbolt transaction, one
// fsync, for the whole batch.
func (a *raftFSM) ApplyBatch(logs []*raft.Log) []any {
	entries := make([]fsm.Entry, len(logs))
	for i, l := range logs {
		entries[i].Index = l.Index
		if l.Type == raft.LogCommand {
			entries[i].Data = l.Data
			if entries[i].Data == nil {
				// An empty command is still a command (the state machine
				// rejects it); nil would mark it as a non-command.
				entries[i].Data = []byte{}
			}
		}
	}
	out := make([]any, len(logs))
	var results []*fsm.Result
	var err error
	if a.broken.Load() {
		err = errors.New("the state machine stopped after an earlier failure")
	} else if results, err = a.f.TryApplyBatch(entries); err != nil {
		// Raft counts these entries as applied, but fsm.db did not take
		// them: never apply anything after them. The node stops; on its
		// next start raft hands them over again.
		a.broken.Store(true)
		if a.failed != nil {
			a.failed(err)
		}
	}
	if err != nil {
		for i := range out {
			out[i] = &fsm.Result{Err: api.Errorf(api.CodeUnavailable, "not applied: %v", err)}
		}
		return out
	}
	var events []api.Event
	for i := range out {
		if i < len(results) {
			out[i] = results[i]
			if results[i] != nil {
				events = append(events, results[i].Events...)
			}
		}
	}
	if a.events != nil {
		a.events.add(events, a.f.AppliedIndex())
	}
	if a.changed != nil {
		a.changed()
	}
	return out
}

// Snapshot implements raft.FSM. The fsm snapshot is a read transaction,
// so Persist may run while new entries are applied.
func (a *raftFSM) Snapshot() (raft.FSMSnapshot, error) {
	s, err := a.f.Snapshot()
	if err != nil {
		return nil, err
	}
	return &raftSnapshot{s: s}, nil
}

// Restore implements raft.FSM: it replaces the whole state.
func (a *raftFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	err := a.f.Restore(rc)
	if a.events != nil {
		// The events between the old state and the snapshot are unknown.
		a.events.reset(a.f.AppliedIndex())
	}
	if a.changed != nil {
		a.changed()
	}
	return err
}

// raftSnapshot adapts *fsm.Snapshot to raft.FSMSnapshot.
type raftSnapshot struct{ s *fsm.Snapshot }

// Persist writes the snapshot to the sink.
func (r *raftSnapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := r.s.WriteTo(sink); err != nil {
		_ = sink.Cancel()
		return err
	}
	return sink.Close()
}

// Release ends the snapshot's read transaction.
func (r *raftSnapshot) Release() { r.s.Release() }
