package fsm

import (
	"fmt"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/shelfdb/shelf/api"
)

// memoProgram returns a random mix of the commands whose values the memo
// holds (sessions, ranges, tree counts) and of those that change them
// behind its back: creates with client sessions (new, repeated, and old
// enough to be forgotten), with idempotency keys (reused with the same
// and with another request, and evicted over the limit), updates and
// deletes, a client removed and registered again, new ranges, new trees.
func memoProgram(seed uint64, n int) []Command {
	rnd := rand.New(rand.NewPCG(seed, 1))
	clients := []string{"a", "b", "c"}
	cmds := []Command{{Op: OpSetCluster, Cluster: "c1"}}
	for _, c := range clients {
		cmds = append(cmds, Command{Op: OpRegisterClient, Client: c, Name: c},
			Command{Op: OpGrantRange, Client: c, Size: 40})
	}
	seq := map[string]uint64{}
	// Ids 1..120 are the three first ranges, in order a, b, c; later
	// ranges follow. Creating at an id of another client's range, or of
	// a range retired with its client, is refused, and that is part of
	// what the programs compare.
	next := uint64(1)
	for range n {
		c := clients[rnd.IntN(len(clients))]
		var cmd Command
		tree := fmt.Sprintf("t%d", rnd.IntN(2))
		ownKey := func() api.Key { // an id of c's first range
			return api.Key{ID: uint64(1 + 40*slices.Index(clients, c) + rnd.IntN(20)), Rev: 1}
		}
		switch k := rnd.IntN(40); {
		case k < 18:
			cmd = Command{Op: OpCreate, Tree: tree, Client: c, Key: api.Key{ID: uint64(1 + rnd.IntN(160))}, Data: []byte{0x01}}
			if rnd.IntN(2) == 0 {
				cmd.Key = ownKey()
				cmd.Key.Rev = 0
			}
			switch rnd.IntN(4) {
			case 0, 1:
				seq[c]++
				cmd.Session, cmd.Seq = c, seq[c]
			case 2:
				if seq[c] > 0 {
					cmd.Session, cmd.Seq = c, 1+rnd.Uint64N(seq[c]) // a repeat, or forgotten
				}
			}
		case k < 24:
			cmd = Command{Op: OpCreate, Tree: "keys", Session: fmt.Sprintf("key-%d", rnd.IntN(8)), Seq: 1,
				ReqHash: fmt.Sprintf("%064d", rnd.IntN(2)), Data: []byte{0x02}}
		case k < 26:
			cmd = Command{Op: OpCreate, Tree: fmt.Sprintf("new%d", next), Data: []byte{0x03}}
			next++
		case k < 29:
			cmd = Command{Op: OpBorrow, Tree: tree, Client: c, Key: ownKey()}
		case k < 32:
			cmd = Command{Op: OpUpdate, Tree: tree, Client: c, Key: ownKey(), Data: []byte{0x04}}
		case k < 34:
			cmd = Command{Op: OpReturn, Tree: tree, Client: c, Key: ownKey()}
		case k < 35:
			cmd = Command{Op: OpDelete, Tree: tree, Client: c, Key: ownKey()}
		case k < 36 && rnd.IntN(3) == 0:
			cmd = Command{Op: OpRemoveClient, Client: c}
		case k < 38:
			cmd = Command{Op: OpRegisterClient, Client: c, Name: fmt.Sprintf("%s%d", c, rnd.IntN(3))}
		case k < 39:
			cmd = Command{Op: OpGrantRange, Client: c, Size: 20}
		default:
			cmd = Command{Op: OpClientSeen, Client: c, Applied: uint64(rnd.IntN(100))}
		}
		cmds = append(cmds, cmd)
	}
	return cmds
}

// outcome is what a command's result says, in comparable form.
type outcome struct {
	Err     string
	Key     api.Key
	Repeat  bool
	Version uint32
	Range   api.Range
	Client  string
	Events  []api.Event
}

func outcomeOf(r *Result) outcome {
	o := outcome{Key: r.Key, Repeat: r.Repeat, Version: r.Version, Events: r.Events}
	if r.Err != nil {
		o.Err = r.Err.Error()
	}
	if r.Range != nil {
		o.Range = *r.Range
	}
	if r.Client != nil {
		o.Client = r.Client.ID + "/" + r.Client.Name
	}
	return o
}

func memoFSM(t *testing.T, flushEach bool) *FSM {
	t.Helper()
	f, err := Open(Config{Path: filepath.Join(t.TempDir(), "fsm.db"), NoSync: true, Logger: slog.New(slog.DiscardHandler),
		SessionWindow: 4, MaxIdemKeys: 5})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	setRulesForTest(t, f, RulesVersion)
	f.flushEachCommand = flushEach
	return f
}

// The memo changes no outcome: a program applied with the memo kept over
// the whole transaction gives, command for command, the results and the
// state (its content hash) it gives when every command writes its values
// back at once, as before the memo. Both as batch entries (many commands
// at one index) and as single entries handed over many at a time.
func TestMemoChangesNoOutcome(t *testing.T) {
	start := time.Date(2026, 12, 4, 9, 0, 0, 0, time.UTC).UnixNano()
	for seed := uint64(1); seed <= 20; seed++ {
		prog := memoProgram(seed, 400)
		for _, shape := range []string{"batch entries", "single entries"} {
			var entries []Entry
			idx := uint64(0)
			add := func(c *Command) {
				idx++
				b, err := c.Encode()
				if err != nil {
					t.Fatal(err)
				}
				entries = append(entries, Entry{Index: idx, Data: b})
			}
			add(&prog[0])
			rest := prog[1:]
			for i := 0; i < len(rest); {
				if shape == "single entries" {
					c := rest[i]
					c.Time = start + int64(i)*int64(time.Second)
					add(&c)
					i++
					continue
				}
				n := min(1+int(seed+uint64(i))%50, len(rest)-i)
				ptrs := make([]*Command, n)
				for j := range ptrs {
					ptrs[j] = &rest[i+j]
				}
				add(NewBatch(start+int64(i)*int64(time.Second), ptrs))
				i += n
			}
			var got [2][]outcome
			var hash [2]string
			for k, flushEach := range []bool{true, false} {
				f := memoFSM(t, flushEach)
				// Hand entries over in runs of up to 7, one transaction each.
				for i := 0; i < len(entries); i += 7 {
					for _, r := range f.ApplyBatch(entries[i:min(i+7, len(entries))]) {
						if r.Batch == nil {
							got[k] = append(got[k], outcomeOf(r))
						}
						for _, br := range r.Batch {
							got[k] = append(got[k], outcomeOf(br))
						}
					}
				}
				var err error
				if _, hash[k], err = f.ContentHash(); err != nil {
					t.Fatal(err)
				}
			}
			if len(got[0]) != len(prog) {
				t.Fatalf("seed %d, %s: %d results for %d commands", seed, shape, len(got[0]), len(prog))
			}
			for i := range got[0] {
				if !reflect.DeepEqual(got[0][i], got[1][i]) {
					t.Fatalf("seed %d, %s: command %d (%+v):\nwritten back at once: %+v\nwith the memo:        %+v", seed, shape, i, prog[i], got[0][i], got[1][i])
				}
			}
			if hash[0] != hash[1] {
				t.Fatalf("seed %d, %s: state differs: %s written back at once, %s with the memo", seed, shape, hash[0], hash[1])
			}
		}
	}
}

// The programs reach what the memo must get right: repeats answered,
// forgotten sequence numbers and reused keys refused, creates refused
// after their client was removed, and successes.
func TestMemoProgramCoversTheCases(t *testing.T) {
	seen := map[string]int{}
	for seed := uint64(1); seed <= 20; seed++ {
		f := memoFSM(t, false)
		prog := memoProgram(seed, 400)
		for i := range prog {
			b, _ := prog[i].Encode()
			r := f.ApplyBatch([]Entry{{Index: uint64(i + 1), Data: b}})[0]
			switch {
			case r.Repeat:
				seen["repeat"]++
			case r.Err == nil:
				seen["ok "+prog[i].Op.String()]++
			default:
				seen[string(r.Err.Code)]++
			}
		}
	}
	for _, want := range []string{"repeat", "ok create", "ok remove-client", "ok grant-range", "ok update", "ok delete",
		string(api.CodeSeqForgotten), string(api.CodeKeyReused), string(api.CodeUnknownClient), string(api.CodeNotInRange)} {
		if seen[want] == 0 {
			t.Errorf("no %q in the programs: %v", want, seen)
		}
	}
}
