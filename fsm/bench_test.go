package fsm

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/shelfdb/shelf/api"
)

func benchFSM(b *testing.B, noSync bool) (*FSM, uint64) {
	return benchFSMRules(b, noSync, 0)
}

// benchFSMRules is benchFSM for a cluster created under rules (0: the
// oldest rules, as a cluster made before set-cluster carried them).
func benchFSMRules(b *testing.B, noSync bool, rules uint32) (*FSM, uint64) {
	f, err := Open(Config{Path: filepath.Join(b.TempDir(), "fsm.db"), NoSync: noSync})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { f.Close() })
	var idx uint64
	for _, c := range []Command{{Op: OpSetCluster, Cluster: "c", Rules: rules}, {Op: OpRegisterClient, Client: "a", Name: "a"},
		{Op: OpGrantRange, Client: "a", Size: MaxRangeSize}} {
		idx++
		enc, _ := c.Encode()
		if r := f.Apply(idx, enc); r.Err != nil {
			b.Fatal(r.Err)
		}
	}
	return f, idx
}

// BenchmarkApplyCreate measures creating one record per log entry, with
// batches of the given size applied in one transaction (one fsync), as
// raft's BatchingFSM hands them over; ses=client gives each create a
// sequence number in the client's session (what the outbox sends),
// ses=key a fresh idempotency key of its own (an HTTP create with a key).
func BenchmarkApplyCreate(b *testing.B) {
	data, _ := api.EncodeValue(map[string]any{"name": "R1", "qty": 10, "desc": "resistor 10k 0603"})
	for _, batch := range []int{1, 64} {
		for _, ses := range []string{"none", "client", "key"} {
			b.Run(fmt.Sprintf("batch=%d/ses=%s", batch, ses), func(b *testing.B) {
				f, idx := benchFSM(b, false)
				entries := make([]Entry, 0, batch)
				id := uint64(0)
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i += batch {
					entries = entries[:0]
					for j := 0; j < batch; j++ {
						idx++
						id++
						c := &Command{Op: OpCreate, Time: int64(idx), Tree: "parts", Client: "a", Key: api.Key{ID: id % MaxRangeSize}, Data: data}
						switch ses {
						case "client":
							c.Session, c.Seq = "a", id
						case "key":
							c.Session, c.Seq, c.ReqHash = fmt.Sprintf("key-%d", id), 1, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
						}
						enc, _ := c.Encode()
						entries = append(entries, Entry{Index: idx, Data: enc})
					}
					f.ApplyBatch(entries)
				}
			})
		}
	}
}

// BenchmarkApplyBatchEntry measures the state machine's work per create
// when creates come as one batch entry (OpBatch) of 256 commands, as the
// leader packs an outbox batch, and raft hands over one entry at a time.
// The file is not fsynced: this is the CPU every replica (each server and
// each client) spends on one create of an outbox.
func BenchmarkApplyBatchEntry(b *testing.B) {
	data, _ := api.EncodeValue(map[string]any{"name": "R1", "qty": 10, "desc": "resistor 10k 0603"})
	for _, ses := range []string{"none", "client"} {
		b.Run("ses="+ses, func(b *testing.B) {
			f, idx := benchFSMRules(b, true, RulesVersion)
			const n = MaxBatchCommands
			cmds := make([]*Command, n)
			id := uint64(0)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i += n {
				for j := range cmds {
					id++
					c := &Command{Op: OpCreate, Tree: "parts", Client: "a", Key: api.Key{ID: id % MaxRangeSize}, Data: data}
					if ses == "client" {
						c.Session, c.Seq = "a", id
					}
					cmds[j] = c
				}
				idx++
				enc, _ := NewBatch(int64(idx), cmds).Encode()
				for _, r := range f.ApplyBatch([]Entry{{Index: idx, Data: enc}}) {
					if r.Err != nil || len(r.Batch) != n || r.Batch[n-1].Err != nil {
						b.Fatalf("batch entry: %+v", r)
					}
				}
			}
		})
	}
}

// BenchmarkGet measures a local read of one record, decoded by the caller.
func BenchmarkGet(b *testing.B) {
	f, idx := benchFSM(b, true)
	data, _ := api.EncodeValue(map[string]any{"name": "R1", "qty": 10})
	const n = 10000
	entries := make([]Entry, 0, n)
	for i := uint64(1); i <= n; i++ {
		idx++
		enc, _ := (&Command{Op: OpCreate, Time: 1, Tree: "parts", Client: "a", Key: api.Key{ID: i}, Data: data}).Encode()
		entries = append(entries, Entry{Index: idx, Data: enc})
	}
	f.ApplyBatch(entries)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := f.Get("parts", api.Key{ID: uint64(i%n) + 1, Rev: 1}); err != nil {
			b.Fatal(err)
		}
	}
}
