package faults

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	wal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/metadb"

	"github.com/shelfdb/shelf/api"
)

// The checks must catch the anomalies the suite exists for; these tests
// feed them small histories with and without one. They need no processes.

// histBuilder builds a history of record 1 from ops timed in ms.
type histBuilder struct{ h *history }

func newHist() *histBuilder { return &histBuilder{h: newHistory()} }

func (b *histBuilder) add(worker int, call, ret int64, in regInput, out regOutput) *histBuilder {
	b.h.add(op{Rec: 1, Worker: worker, In: in, Out: out, Call: call * int64(time.Millisecond), Return: ret * int64(time.Millisecond)})
	return b
}

func (b *histBuilder) check(t *testing.T) porcupine.CheckResult {
	t.Helper()
	return porcupine.CheckOperationsTimeout(registerModel, b.h.byRecord()[1], 10*time.Second)
}

var (
	ok        = regOutput{OK: true}
	unknown   = regOutput{Unknown: true}
	createA   = regInput{Kind: opCreate, Client: "A", Value: "v1"}
	borrowA   = regInput{Kind: opBorrow, Client: "A"}
	borrowB   = regInput{Kind: opBorrow, Client: "B"}
	updateA   = regInput{Kind: opUpdate, Client: "A", Value: "v2"}
	returnA   = regInput{Kind: opReturn, Client: "A"}
	readAny   = regInput{Kind: opRead, Client: "R"}
	sawV1     = regOutput{OK: true, Found: true, Value: "v1"}
	sawV1A    = regOutput{OK: true, Found: true, Value: "v1", Holder: "A"}
	sawV2A    = regOutput{OK: true, Found: true, Value: "v2", Holder: "A"}
	sawAbsent = regOutput{OK: true}
)

func TestModelAcceptsLinearizableHistories(t *testing.T) {
	for name, b := range map[string]*histBuilder{
		"sequential": newHist().add(0, 0, 1, createA, ok).add(0, 2, 3, borrowA, ok).add(0, 4, 5, updateA, ok).
			add(1, 6, 7, readAny, sawV2A).add(0, 8, 9, returnA, ok),
		"read concurrent with update": newHist().add(0, 0, 1, createA, ok).add(0, 2, 3, borrowA, ok).
			add(0, 4, 10, updateA, ok).add(1, 5, 6, readAny, sawV1A),
		"borrow race, one wins": newHist().add(0, 0, 1, createA, ok).add(0, 2, 5, borrowA, ok).
			add(1, 2, 5, borrowB, regOutput{Code: api.CodeBorrowed}),
		"unknown create seen later": newHist().add(0, 0, 1, createA, unknown).add(1, 5, 6, readAny, sawV1),
		"unknown create never seen": newHist().add(0, 0, 1, createA, unknown).add(1, 5, 6, readAny, sawAbsent),
	} {
		if res := b.check(t); res != porcupine.Ok {
			t.Errorf("%s: %v, want Ok", name, res)
		}
	}
}

func TestModelCatchesAnomalies(t *testing.T) {
	for name, b := range map[string]*histBuilder{
		// A follower answers with the value before an acknowledged update.
		"stale read": newHist().add(0, 0, 1, createA, ok).add(0, 2, 3, borrowA, ok).add(0, 4, 5, updateA, ok).
			add(1, 6, 7, readAny, sawV1A),
		// A forwarded create applied twice: the retry is rejected as
		// existing, and the client is told its create failed.
		"double create": newHist().add(0, 0, 1, createA, regOutput{Code: api.CodeExists}).add(1, 2, 3, readAny, sawV1),
		// A return applied twice answers not_borrowed to the holder.
		"double return": newHist().add(0, 0, 1, createA, ok).add(0, 2, 3, borrowA, ok).
			add(0, 4, 5, returnA, regOutput{Code: api.CodeNotBorrowed}),
		"two holders": newHist().add(0, 0, 1, createA, ok).add(0, 2, 3, borrowA, ok).add(1, 4, 5, borrowB, ok),
		"lost create": newHist().add(0, 0, 1, createA, ok).add(1, 2, 3, readAny, sawAbsent),
	} {
		if res := b.check(t); res != porcupine.Illegal {
			t.Errorf("%s: %v, want Illegal", name, res)
		}
	}
}

func TestCheckAckedWritesCatchesLostUpdate(t *testing.T) {
	b := newHist().add(0, 0, 1, createA, ok).add(0, 2, 3, borrowA, ok).add(0, 4, 5, updateA, ok)
	r := newReport()
	checkAckedWrites(b.h, map[uint64]finalRead{1: {Found: true, Value: "v2", Holder: "A"}}, r)
	if len(r.violations) != 0 {
		t.Errorf("kept update reported: %v", r.violations)
	}
	r = newReport()
	checkAckedWrites(b.h, map[uint64]finalRead{1: {Found: true, Value: "v1", Holder: "A"}}, r)
	if len(r.violations["acked-writes"]) != 1 {
		t.Errorf("lost update not reported: %v", r.violations)
	}
}

func TestCheckHoldersCatchesOverlap(t *testing.T) {
	b := newHist().add(0, 0, 1, createA, ok).add(0, 2, 3, borrowA, ok).add(1, 4, 5, borrowB, ok).add(0, 6, 7, returnA, ok)
	r := newReport()
	checkHolders(b.h, r)
	if len(r.violations["one-holder"]) != 1 {
		t.Errorf("overlapping holders not reported: %v", r.violations)
	}
	b = newHist().add(0, 0, 1, createA, ok).add(0, 2, 3, borrowA, ok).add(0, 4, 5, returnA, ok).add(1, 4, 6, borrowB, ok)
	r = newReport()
	checkHolders(b.h, r)
	if len(r.violations) != 0 {
		t.Errorf("a borrow concurrent with the holder's return reported: %v", r.violations)
	}
}

// TestCheckRaftLogsNamesDivergentIndex writes two raft logs that agree
// up to index 2 and differ at 3 (same term, other data: what a deposed
// leader writing under the new term leaves behind), in raft.db and in
// raft-wal/ (-faults.raftlog wal).
func TestCheckRaftLogsNamesDivergentIndex(t *testing.T) {
	for _, kind := range []string{"bolt", "wal"} {
		t.Run(kind, func(t *testing.T) {
			var nodes []*node
			for i, data := range []string{"new-leader", "old-leader"} {
				dir := t.TempDir()
				s, err := newTestLogStore(kind, dir)
				if err != nil {
					t.Fatal(err)
				}
				err = s.StoreLogs([]*raft.Log{
					{Index: 1, Term: 1, Type: raft.LogConfiguration, Data: []byte("conf")},
					{Index: 2, Term: 1, Type: raft.LogCommand, Data: []byte("a")},
					{Index: 3, Term: 2, Type: raft.LogCommand, Data: []byte(data)},
				})
				s.Close()
				if err != nil {
					t.Fatal(err)
				}
				nodes = append(nodes, &node{ID: []string{"n1", "n2"}[i], Dir: dir})
			}
			r := newReport()
			checkRaftLogs(nodes, 2, r)
			if len(r.violations) != 0 {
				t.Errorf("logs equal up to the commit index 2, reported: %v", r.violations)
			}
			checkRaftLogs(nodes, 3, r)
			got := r.violations["raft-logs"]
			if len(got) != 1 || !strings.Contains(got[0], "index 3") {
				t.Errorf("divergence at index 3: reported %q", got)
			}
		})
	}
}

// newTestLogStore creates a raft log of kind in dataDir where kvnode
// keeps it.
func newTestLogStore(kind, dataDir string) (raftLogReader, error) {
	if kind == "bolt" {
		return raftboltdb.NewBoltStore(filepath.Join(dataDir, "raft.db"))
	}
	dir := filepath.Join(dataDir, "raft-wal")
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, err
	}
	meta := &metadb.BoltMetaDB{}
	w, err := wal.Open(dir, wal.WithMetaStore(meta))
	if err != nil {
		return nil, err
	}
	return &walCopy{WAL: w, meta: meta}, nil
}
