package faults

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/shelfdb/shelf/api"
)

// opKind names an operation on one record.
type opKind string

// The operations of the workload on a record.
const (
	opCreate opKind = "create"
	opRead   opKind = "read"
	opBorrow opKind = "borrow"
	opUpdate opKind = "update"
	opReturn opKind = "return"
)

// regInput is an operation as invoked.
type regInput struct {
	Kind   opKind
	Client string // acting client id
	Value  string // create, update: the label of the value written
	Node   string // node the request went to
}

// regOutput is how an operation ended. Unknown: no answer (timeout, cut
// connection, 5xx): the operation may or may not have taken effect, and
// stays pending until after the end of the history.
type regOutput struct {
	Unknown bool
	OK      bool
	Code    api.Code // a definite rejection by the state machine
	Found   bool     // read: the record exists
	Value   string   // read: the label of the value
	Holder  string   // read: the borrow holder, "" for none
}

// regState is a record as the model sees it.
type regState struct {
	Exists bool
	Value  string
	Holder string
}

// definite reports whether an error code is a state machine rejection:
// the command was applied and changed nothing. Anything else leaves the
// outcome unknown.
func definite(code api.Code) bool {
	switch code {
	case api.CodeExists, api.CodeNotBorrowed, api.CodeBorrowed, api.CodeNotFound:
		return true
	}
	return false
}

// clientNames maps client ids to the workers' names, for descriptions.
var clientNames sync.Map

// clientName returns the name of a client id for descriptions.
func clientName(id string) string {
	if n, ok := clientNames.Load(id); ok {
		return n.(string)
	}
	return id
}

// registerModel is the model of one record: it exists or not, has a
// value and at most one borrow holder (borrows never expire here).
var registerModel = porcupine.Model{
	Init: func() interface{} { return regState{} },
	Step: func(state, input, output interface{}) (bool, interface{}) {
		s, in, out := state.(regState), input.(regInput), output.(regOutput)
		var (
			can  bool     // the operation's precondition holds
			next regState // the state if it takes effect
		)
		switch in.Kind {
		case opRead:
			if !out.Found {
				return !s.Exists, s
			}
			return s.Exists && out.Value == s.Value && out.Holder == s.Holder, s
		case opCreate:
			can, next = !s.Exists, regState{Exists: true, Value: in.Value}
		case opBorrow:
			can, next = s.Exists && (s.Holder == "" || s.Holder == in.Client), regState{Exists: true, Value: s.Value, Holder: in.Client}
		case opUpdate:
			can, next = s.Exists && s.Holder == in.Client, regState{Exists: true, Value: in.Value, Holder: s.Holder}
		case opReturn:
			can, next = s.Exists && s.Holder == in.Client, regState{Exists: true, Value: s.Value}
		}
		switch {
		case out.Unknown:
			// Took effect (linearized here) or never did (linearized after
			// everything, where it changes nothing observed).
			if can {
				return true, next
			}
			return true, s
		case out.OK:
			return can, next
		}
		// A definite rejection: the precondition failed, for the reason
		// given.
		switch out.Code {
		case api.CodeNotFound:
			return !s.Exists, s
		case api.CodeExists:
			return in.Kind == opCreate && s.Exists, s
		case api.CodeBorrowed, api.CodeNotBorrowed:
			return s.Exists && !can, s
		}
		return !can, s
	},
	DescribeOperation: func(input, output interface{}) string {
		in, out := input.(regInput), output.(regOutput)
		var res string
		switch {
		case out.Unknown:
			res = "unknown"
		case in.Kind == opRead && !out.Found:
			res = "not found"
		case in.Kind == opRead:
			res = fmt.Sprintf("%s held by %q", out.Value, clientName(out.Holder))
		case out.OK:
			res = "ok"
		default:
			res = string(out.Code)
		}
		switch in.Kind {
		case opCreate, opUpdate:
			return fmt.Sprintf("%s(%s) by %s via %s -> %s", in.Kind, in.Value, clientName(in.Client), in.Node, res)
		}
		return fmt.Sprintf("%s by %s via %s -> %s", in.Kind, clientName(in.Client), in.Node, res)
	},
	DescribeState: func(state interface{}) string {
		s := state.(regState)
		if !s.Exists {
			return "absent"
		}
		return fmt.Sprintf("%s, holder %q", s.Value, clientName(s.Holder))
	},
}

// op is one recorded operation on record Rec.
type op struct {
	Rec    uint64
	Worker int // porcupine's client id: one per worker, never concurrent with itself
	In     regInput
	Out    regOutput
	Call   int64 // ns since the history began
	Return int64 // ns since the history began; unknown outcomes: set at check time
}

// history records operations with their invocation and response times,
// and the values written, by label.
type history struct {
	start time.Time

	mu      sync.Mutex
	ops     []op
	labels  map[string]string // value bytes -> label
	workers int
}

func newHistory() *history {
	return &history{start: time.Now(), labels: map[string]string{}}
}

// now returns the time since the history began.
func (h *history) now() int64 { return int64(time.Since(h.start)) }

// worker returns a new porcupine client id.
func (h *history) worker() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.workers++
	return h.workers - 1
}

// value returns the CBOR bytes of a value labelled label, and remembers
// the label of those bytes.
func (h *history) value(label string) []byte {
	b, err := api.EncodeValue(map[string]any{"v": label})
	if err != nil {
		panic(fmt.Sprintf("encode a string map: %v", err)) // cannot happen
	}
	h.mu.Lock()
	h.labels[string(b)] = label
	h.mu.Unlock()
	return b
}

// label returns the label of value bytes read back.
func (h *history) label(b []byte) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	if l, ok := h.labels[string(b)]; ok {
		return l
	}
	return fmt.Sprintf("unknown-value-%x", b)
}

// add records a finished (or abandoned) operation.
func (h *history) add(o op) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ops = append(h.ops, o)
}

// outcome turns a request's error into an output.
func outcome(err error) regOutput {
	if err == nil {
		return regOutput{OK: true}
	}
	var ae *api.Error
	if errors.As(err, &ae) && definite(ae.Code) {
		return regOutput{Code: ae.Code}
	}
	return regOutput{Unknown: true}
}

// byRecord returns the operations per record, with the return time of
// every unknown outcome set after the end of the history.
func (h *history) byRecord() map[uint64][]porcupine.Operation {
	h.mu.Lock()
	defer h.mu.Unlock()
	var end int64
	for _, o := range h.ops {
		end = max(end, o.Call, o.Return)
	}
	out := map[uint64][]porcupine.Operation{}
	for _, o := range h.ops {
		ret := o.Return
		if o.Out.Unknown {
			ret = end + int64(time.Second)
		}
		out[o.Rec] = append(out[o.Rec], porcupine.Operation{ClientId: o.Worker, Input: o.In, Call: o.Call, Output: o.Out, Return: ret})
	}
	return out
}

// snapshot returns a copy of the recorded operations.
func (h *history) snapshot() []op {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.ops)
}

// report collects the outcome of the checks of one schedule.
type report struct {
	mu         sync.Mutex
	violations map[string][]string // check -> problems
	checked    map[string]int      // check -> items checked
	notes      []string
}

// The checks, in the order the summary lists them.
var checkNames = []string{"linearizable", "acked-writes", "unique-ids", "one-holder", "converged", "raft-logs"}

func newReport() *report {
	return &report{violations: map[string][]string{}, checked: map[string]int{}}
}

func (r *report) fail(check, format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.violations[check] = append(r.violations[check], fmt.Sprintf(format, args...))
}

func (r *report) count(check string, n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.checked[check] += n
}

func (r *report) note(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.notes = append(r.notes, fmt.Sprintf(format, args...))
}

// checkLinearizable checks every record's history against registerModel
// and writes a porcupine visualization of each violation into dir.
func checkLinearizable(h *history, r *report, dir string) {
	recs := h.byRecord()
	ids := make([]uint64, 0, len(recs))
	for id := range recs {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		ops := recs[id]
		r.count("linearizable", len(ops))
		res, info := porcupine.CheckOperationsVerbose(registerModel, ops, 30*time.Second)
		switch res {
		case porcupine.Ok:
			continue
		case porcupine.Unknown:
			r.note("record %d: linearizability check of %d operations timed out (undecided)", id, len(ops))
			continue
		}
		path := filepath.Join(dir, fmt.Sprintf("record-%d.html", id))
		if f, err := os.Create(path); err != nil {
			path = fmt.Sprintf("(no visualization: %v)", err)
		} else {
			if err := porcupine.Visualize(registerModel, info, f); err != nil {
				path = fmt.Sprintf("(visualization failed: %v)", err)
			}
			f.Close()
		}
		txt := filepath.Join(dir, fmt.Sprintf("record-%d.txt", id))
		if err := os.WriteFile(txt, []byte(describeOps(ops)), 0o644); err != nil {
			txt = fmt.Sprintf("(no listing: %v)", err)
		}
		// Tell stale reads from broken writes: are the writes alone,
		// rejections included, linearizable?
		var writes []porcupine.Operation
		for _, o := range ops {
			if o.Input.(regInput).Kind != opRead {
				writes = append(writes, o)
			}
		}
		kind := "the writes alone are linearizable: reads saw states that were stale or never existed"
		switch porcupine.CheckOperationsTimeout(registerModel, writes, 30*time.Second) {
		case porcupine.Illegal:
			kind = "the writes alone are NOT linearizable (a write took effect twice, or was rejected for a state it should not have seen)"
		case porcupine.Unknown:
			kind = "undecided whether the writes alone are linearizable"
		}
		r.fail("linearizable", "record %d: %d operations are not linearizable; %s; timeline: %s; listing: %s", id, len(ops), kind, path, txt)
	}
}

// finalRead is one record as read after healing.
type finalRead struct {
	Found  bool
	Value  string
	Holder string
}

// checkAckedWrites checks that every acknowledged create exists at the end
// and that no acknowledged update was overwritten by an older one.
func checkAckedWrites(h *history, final map[uint64]finalRead, r *report) {
	ops := h.snapshot()
	byRec := map[uint64][]op{}
	for _, o := range ops {
		if o.In.Kind == opCreate || o.In.Kind == opUpdate {
			byRec[o.Rec] = append(byRec[o.Rec], o)
		}
	}
	for id, writes := range byRec {
		fr, read := final[id]
		var last *op // the acknowledged update that returned last
		for i, o := range writes {
			if !o.Out.OK {
				continue
			}
			r.count("acked-writes", 1)
			if o.In.Kind == opCreate && read && !fr.Found {
				r.fail("acked-writes", "record %d: create of %s acknowledged by %s, record gone at the end", id, o.In.Value, o.In.Node)
			}
			if o.In.Kind == opUpdate && (last == nil || o.Return > last.Return) {
				last = &writes[i]
			}
		}
		if last == nil || !read || !fr.Found {
			continue
		}
		if fr.Value == last.In.Value {
			continue
		}
		// The final value must come from a write that may have taken
		// effect after the last acknowledged update.
		ok := false
		for _, w := range writes {
			if w.In.Value == fr.Value && w.In.Kind == opUpdate && (w.Out.OK || w.Out.Unknown) && (w.Out.Unknown || w.Return > last.Call) {
				ok = true
			}
		}
		if !ok {
			r.fail("acked-writes", "record %d: update to %s acknowledged by %s at %v is lost: the record ends with %s",
				id, last.In.Value, last.In.Node, time.Duration(last.Return).Round(time.Millisecond), fr.Value)
		}
	}
}

// checkHolders checks that no borrow was acknowledged to one client while
// another certainly held the record: between the acknowledgement of its
// borrow and the invocation of its return.
func checkHolders(h *history, r *report) {
	type span struct {
		client   string
		from, to int64
	}
	ops := h.snapshot()
	byRec := map[uint64][]op{}
	for _, o := range ops {
		if o.In.Kind == opBorrow || o.In.Kind == opReturn {
			byRec[o.Rec] = append(byRec[o.Rec], o)
		}
	}
	for id, list := range byRec {
		sort.Slice(list, func(i, j int) bool { return list[i].Call < list[j].Call })
		var held []span
		for i, b := range list {
			if b.In.Kind != opBorrow || !b.Out.OK {
				continue
			}
			r.count("one-holder", 1)
			end := int64(1 << 62)
			for _, x := range list[i+1:] {
				if x.In.Client == b.In.Client && x.In.Kind == opReturn && x.Call > b.Return {
					end = x.Call
					break
				}
			}
			held = append(held, span{b.In.Client, b.Return, end})
		}
		for _, b := range list {
			if b.In.Kind != opBorrow || !b.Out.OK {
				continue
			}
			for _, s := range held {
				if s.client != b.In.Client && b.Call > s.from && b.Return < s.to {
					r.fail("one-holder", "record %d: borrow by %s acknowledged within [%v, %v] while %s held it since %v",
						id, clientName(b.In.Client), time.Duration(b.Call).Round(time.Millisecond), time.Duration(b.Return).Round(time.Millisecond),
						clientName(s.client), time.Duration(s.from).Round(time.Millisecond))
				}
			}
		}
	}
}

// checkAudit checks the replicated borrow history of a record: a borrow
// starts only when none is held.
func checkAudit(ctx context.Context, n *node, tree string, id uint64, r *report) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	entries, err := n.Client.History(ctx, tree, api.Key{ID: id, Rev: 1})
	if errors.Is(err, api.ErrNotFound) {
		return
	}
	if err != nil {
		r.note("record %d: borrow history from %s: %v", id, n.ID, err)
		return
	}
	holder := ""
	for _, e := range entries {
		switch e.Action {
		case api.AuditBorrowed, api.AuditTaken:
			if holder != "" && e.Action == api.AuditBorrowed {
				r.fail("one-holder", "record %d: the replicated history has a borrow by %s at index %d while %s held it", id, clientName(e.Client), e.Index, clientName(holder))
			}
			holder = e.Client
		case api.AuditRenewed:
			if holder != e.Client {
				r.fail("one-holder", "record %d: the replicated history renews %s's borrow at index %d while %q held it", id, clientName(e.Client), e.Index, clientName(holder))
			}
		default:
			holder = ""
		}
	}
}

// checkRanges checks that the ranges granted, as every node lists them,
// never overlap and include every grant a client was told of.
func checkRanges(ctx context.Context, nodes []*node, granted []api.Range, r *report) {
	for _, n := range nodes {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		rs, err := n.Client.Ranges(ctx, "")
		cancel()
		if err != nil {
			r.fail("unique-ids", "ranges from %s: %v", n.ID, err)
			continue
		}
		sort.Slice(rs, func(i, j int) bool { return rs[i].Start < rs[j].Start })
		r.count("unique-ids", len(rs))
		for i := 1; i < len(rs); i++ {
			if rs[i].Start < rs[i-1].End {
				r.fail("unique-ids", "%s lists overlapping ranges [%d,%d) of %s and [%d,%d) of %s", n.ID,
					rs[i-1].Start, rs[i-1].End, rs[i-1].Client, rs[i].Start, rs[i].End, rs[i].Client)
			}
		}
		for _, g := range granted {
			if !slices.ContainsFunc(rs, func(x api.Range) bool { return x.Start == g.Start && x.End == g.End && x.Client == g.Client }) {
				r.fail("unique-ids", "%s does not list the range [%d,%d) granted to %s", n.ID, g.Start, g.End, g.Client)
			}
		}
	}
}

// listIDs lists every record id of tree on n.
func listIDs(ctx context.Context, n *node, tree string) ([]uint64, error) {
	var (
		ids   []uint64
		after api.Key
	)
	for range 10_000 {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		p, err := n.Client.List(ctx, tree, after, 1000)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("list %s on %s: %w", tree, n.ID, err)
		}
		for _, rec := range p.Records {
			ids = append(ids, rec.Key.ID)
		}
		if p.After == "" {
			return ids, nil
		}
		if after, err = api.ParseKey(p.After); err != nil {
			return nil, fmt.Errorf("list %s on %s: cursor %q: %w", tree, n.ID, url.QueryEscape(p.After), err)
		}
	}
	return nil, fmt.Errorf("list %s on %s does not end", tree, n.ID)
}

// summary accumulates reports over schedules.
type summary struct {
	schedules  int
	failed     []uint64
	faults     map[faultKind]int
	ops        int
	violations map[string]int
}

func newSummary() *summary {
	return &summary{faults: map[faultKind]int{}, violations: map[string]int{}}
}

func (s *summary) add(seed uint64, r *report, faults map[faultKind]int) {
	s.schedules++
	for k, n := range faults {
		s.faults[k] += n
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	s.ops += r.checked["linearizable"]
	for c, v := range r.violations {
		s.violations[c] += len(v)
	}
	if len(r.violations) > 0 {
		s.failed = append(s.failed, seed)
	}
}

func (s *summary) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "fault-injection summary: %d schedules, %d failed %v\n", s.schedules, len(s.failed), s.failed)
	var kinds []string
	for k, n := range s.faults {
		kinds = append(kinds, fmt.Sprintf("%s=%d", k, n))
	}
	slices.Sort(kinds)
	fmt.Fprintf(&b, "  faults: %s\n", strings.Join(kinds, " "))
	fmt.Fprintf(&b, "  operations checked for linearizability: %d\n", s.ops)
	for _, c := range checkNames {
		fmt.Fprintf(&b, "  violations %-13s %d\n", c+":", s.violations[c])
	}
	return b.String()
}

// describeOps lists operations by invocation time, one a line.
func describeOps(ops []porcupine.Operation) string {
	ops = slices.Clone(ops)
	sort.SliceStable(ops, func(i, j int) bool { return ops[i].Call < ops[j].Call })
	var b strings.Builder
	for _, o := range ops {
		ret := fmt.Sprintf("%10.3fs", time.Duration(o.Return).Seconds())
		if o.Output.(regOutput).Unknown {
			ret = "   pending"
		}
		fmt.Fprintf(&b, "%10.3fs %s  w%-2d %s\n", time.Duration(o.Call).Seconds(), ret, o.ClientId,
			registerModel.DescribeOperation(o.Input, o.Output))
	}
	return b.String()
}
