package client

import (
	"errors"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/fsm"
)

// A log page that moves the cluster to rules this client does not know
// stops the replica with ErrNeedsUpgrade: nothing of the page is applied,
// an EventReplicaFailed says why, and the replica is not marked for a
// rebuild (a snapshot would not help: the application must be upgraded).
func TestNewerRulesStopTheReplica(t *testing.T) {
	f, err := fsm.Open(fsm.Config{Path: filepath.Join(t.TempDir(), "replica.db"), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	db := &DB{replica: f, events: newEventLog(16), log: slog.New(slog.DiscardHandler)}
	set, _ := (&fsm.Command{Op: fsm.OpSetCluster, Cluster: "c1", Rules: fsm.RulesVersion}).Encode()
	if err := db.apply(api.LogPage{Entries: []api.LogEntry{{Index: 1, Data: set}}, Next: 1}); err != nil {
		t.Fatal(err)
	}
	raise, _ := (&fsm.Command{Op: fsm.OpSetRules, Rules: fsm.RulesVersion + 1}).Encode()
	err = db.apply(api.LogPage{Entries: []api.LogEntry{{Index: 2, Data: raise}}, Next: 2})
	if !errors.Is(err, ErrNeedsUpgrade) || !errors.Is(err, fsm.ErrNeedsUpgrade) {
		t.Fatalf("apply of newer rules: %v, want ErrNeedsUpgrade", err)
	}
	if f.AppliedIndex() != 1 || db.replicaBroken.Load() {
		t.Fatalf("applied %d, marked for rebuild %v", f.AppliedIndex(), db.replicaBroken.Load())
	}
	evs, _, _, _, _ := db.events.read(1, 10)
	if len(evs) != 1 || evs[0].Type != EventReplicaFailed || evs[0].Err == nil {
		t.Fatalf("events %+v, want one %s", evs, EventReplicaFailed)
	}
}
