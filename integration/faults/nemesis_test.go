package faults

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// faultKind names a fault of the nemesis.
type faultKind string

// The faults.
const (
	faultKill     faultKind = "kill9-restart"  // SIGKILL a node, restart it after the hold
	faultPause    faultKind = "pause-leader"   // SIGSTOP the leader, SIGCONT after the hold
	faultIsolate  faultKind = "isolate-leader" // cut the leader from both others
	faultMinority faultKind = "minority"       // cut one follower from the others
	faultFlip     faultKind = "flip"           // leader cut off, then the minority rejoins and another node is cut
	faultOneWay   faultKind = "one-way"        // leader->followers (or followers->leader) lost, the other way works
	faultTorn     faultKind = "torn"           // SIGKILL a node, tear its fsm.db as a power loss would, restart it
)

// faultKinds lists every fault; schedule s starts with faultKinds[s%7]
// so that any seven consecutive seeds cover every kind.
var faultKinds = []faultKind{faultPause, faultIsolate, faultKill, faultFlip, faultOneWay, faultMinority, faultTorn}

// step is one fault of a schedule: calm, then the fault for hold.
type step struct {
	Kind faultKind
	Calm time.Duration
	Hold time.Duration
	Pick int  // chooses a node where the fault does not name one
	Flag bool // one-way: followers->leader instead of leader->followers
}

func (s step) String() string {
	return fmt.Sprintf("+%v %s hold %v pick %d flag %v", s.Calm.Round(time.Millisecond), s.Kind, s.Hold.Round(time.Millisecond), s.Pick, s.Flag)
}

// parseKinds parses -faults.kinds: "" means every kind.
func parseKinds(s string) ([]faultKind, error) {
	if s == "" {
		return faultKinds, nil
	}
	var kinds []faultKind
	for _, k := range strings.Split(s, ",") {
		k = strings.TrimSpace(k)
		if !slices.Contains(faultKinds, faultKind(k)) {
			return nil, fmt.Errorf("unknown fault kind %q: want some of %v", k, faultKinds)
		}
		kinds = append(kinds, faultKind(k))
	}
	return kinds, nil
}

// plan returns the schedule of a seed: faults drawn from kinds, 2-6 s
// long with 1-3 s of calm before each, until about dur has passed.
func plan(seed uint64, dur time.Duration, faultKinds []faultKind) []step {
	rng := rand.New(rand.NewPCG(seed, seed^0x5eed))
	var (
		steps []step
		total time.Duration
	)
	for i := 0; ; i++ {
		s := step{
			Kind: faultKinds[rng.IntN(len(faultKinds))],
			Calm: time.Second + time.Duration(rng.Int64N(int64(2*time.Second))),
			Hold: 2*time.Second + time.Duration(rng.Int64N(int64(4*time.Second))),
			Pick: rng.IntN(3),
			Flag: rng.IntN(2) == 0,
		}
		if i == 0 {
			s.Kind = faultKinds[seed%uint64(len(faultKinds))]
		}
		if i > 0 && total+s.Calm+s.Hold > dur {
			return steps
		}
		steps = append(steps, s)
		total += s.Calm + s.Hold
	}
}

// nemesis applies a plan to a cluster and undoes every fault.
type nemesis struct {
	tb testing.TB
	c  *cluster
	// onPause, if set, runs right after the leader is paused, with the
	// node and the hold (the workload queues writes there).
	onPause func(ctx context.Context, n *node, hold time.Duration)

	mu     sync.Mutex
	counts map[faultKind]int
	events []string
	start  time.Time
}

func newNemesis(tb testing.TB, c *cluster) *nemesis {
	return &nemesis{tb: tb, c: c, counts: map[faultKind]int{}, start: time.Now()}
}

func (m *nemesis) logf(format string, args ...any) {
	line := fmt.Sprintf("%7.3fs ", time.Since(m.start).Seconds()) + fmt.Sprintf(format, args...)
	m.mu.Lock()
	m.events = append(m.events, line)
	m.mu.Unlock()
}

// timeline returns what the nemesis did, one line per event.
func (m *nemesis) timeline() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return strings.Join(m.events, "\n")
}

// run applies the steps in order. Waiting out a fault's hold is the
// schedule itself, not a synchronisation. It returns early, healed, when
// ctx ends.
func (m *nemesis) run(ctx context.Context, steps []step) {
	for _, s := range steps {
		if !wait(ctx, s.Calm) {
			return
		}
		m.apply(ctx, s)
	}
}

// wait waits d or until ctx ends; it reports whether d passed.
func wait(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// target returns the leader, or the node s.Pick chooses if none leads.
func (m *nemesis) target(ctx context.Context, s step) *node {
	if l := m.c.leader(ctx); l != nil {
		return l
	}
	return m.c.nodes[s.Pick%len(m.c.nodes)]
}

// others returns the ids of the nodes other than n.
func (m *nemesis) others(n *node) []string {
	var out []string
	for _, o := range m.c.nodes {
		if o != n {
			out = append(out, o.ID)
		}
	}
	return out
}

// apply performs one fault and undoes it after its hold.
func (m *nemesis) apply(ctx context.Context, s step) {
	m.mu.Lock()
	m.counts[s.Kind]++
	m.mu.Unlock()
	nw := m.c.net
	// Each fault is undone with a context of its own: ctx may have ended.
	undoCtx := context.WithoutCancel(ctx)
	switch s.Kind {
	case faultKill:
		n := m.c.nodes[s.Pick%len(m.c.nodes)]
		m.logf("kill -9 %s", n.ID)
		n.Kill()
		wait(ctx, s.Hold)
		m.logf("restart %s", n.ID)
		if err := n.Restart(); err != nil {
			m.logf("restart %s: %v", n.ID, err)
		}
	case faultTorn:
		n := m.c.nodes[s.Pick%len(m.c.nodes)]
		m.logf("kill -9 %s, then a power loss: its fsm.db torn, the machine rebooted", n.ID)
		n.Kill()
		if err := powerLoss(n.Dir); err != nil {
			m.tb.Errorf("torn: %s: %v", n.ID, err)
		}
		wait(ctx, s.Hold)
		m.logf("restart %s", n.ID)
		before := strings.Count(n.tail(1<<20), rebuiltUnclean)
		if err := n.Restart(); err != nil {
			m.logf("restart %s: %v", n.ID, err)
			return
		}
		// The node must have noticed, not used the torn file.
		if err := poll(undoCtx, readyTimeout, func() (bool, string) {
			return strings.Count(n.tail(1<<20), rebuiltUnclean) > before, "no rebuild in its log"
		}); err != nil {
			m.tb.Errorf("torn: %s did not rebuild its fsm.db: %v", n.ID, err)
		}
	case faultPause:
		n := m.target(ctx, s)
		m.logf("SIGSTOP %s (leader)", n.ID)
		if err := n.Pause(); err != nil {
			m.logf("%v", err)
			return
		}
		if m.onPause != nil {
			m.onPause(ctx, n, s.Hold)
		}
		wait(ctx, s.Hold)
		m.logf("SIGCONT %s", n.ID)
		if err := n.Resume(); err != nil {
			m.logf("%v", err)
		}
	case faultIsolate:
		n := m.target(ctx, s)
		m.logf("isolate %s (leader)", n.ID)
		m.must(nw.Isolate(ctx, n.ID))
		wait(ctx, s.Hold)
		m.heal(undoCtx)
	case faultMinority:
		l := m.target(ctx, s)
		others := m.others(l)
		n := others[s.Pick%len(others)]
		m.logf("isolate %s (a follower of %s)", n, l.ID)
		m.must(nw.Isolate(ctx, n))
		wait(ctx, s.Hold)
		m.heal(undoCtx)
	case faultFlip:
		l := m.target(ctx, s)
		m.logf("flip: isolate %s (leader)", l.ID)
		m.must(nw.Isolate(ctx, l.ID))
		wait(ctx, s.Hold/2)
		// The old leader rejoins the majority; the node leading the
		// majority now (or one of them) is cut off instead.
		var next string
		if nl := m.c.leader(ctx); nl != nil && nl != l {
			next = nl.ID
		} else {
			others := m.others(l)
			next = others[s.Pick%len(others)]
		}
		m.must(nw.Heal(undoCtx))
		m.logf("flip: heal, isolate %s", next)
		m.must(nw.Isolate(ctx, next))
		wait(ctx, s.Hold-s.Hold/2)
		m.heal(undoCtx)
	case faultOneWay:
		l := m.target(ctx, s)
		if s.Flag {
			m.logf("one-way: %v cannot reach %s (leader)", m.others(l), l.ID)
			m.must(nw.CutOneWay(ctx, m.others(l), []string{l.ID}))
		} else {
			m.logf("one-way: %s (leader) cannot reach %v", l.ID, m.others(l))
			m.must(nw.CutOneWay(ctx, []string{l.ID}, m.others(l)))
		}
		wait(ctx, s.Hold)
		m.heal(undoCtx)
	}
}

func (m *nemesis) heal(ctx context.Context) {
	m.logf("heal")
	m.must(m.c.net.Heal(ctx))
}

// must logs a failure to set up or undo a fault; the test fails at the
// end if the network cannot heal (convergence fails).
func (m *nemesis) must(err error) {
	if err != nil {
		m.logf("nemesis: %v", err)
	}
}

// healAll undoes every fault: heals the network, resumes paused nodes and
// starts stopped ones.
func (m *nemesis) healAll(ctx context.Context) error {
	if err := m.c.net.Heal(ctx); err != nil {
		return err
	}
	for _, n := range m.c.nodes {
		if err := n.Resume(); err != nil {
			return err
		}
		if !n.Running() {
			if err := n.Restart(); err != nil {
				return fmt.Errorf("restart %s: %w", n.ID, err)
			}
		}
	}
	m.logf("healed all")
	return nil
}

// faults returns the number of faults applied, by kind.
func (m *nemesis) faults() map[faultKind]int {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[faultKind]int, len(m.counts))
	for k, v := range m.counts {
		out[k] = v
	}
	return out
}
