package sqlexport

import (
	"fmt"
	"io"
	"strings"
)

// progress draws "verb [#####.....] n/total" on one line, rewritten in
// place; a nil writer draws nothing.
type progress struct {
	w      io.Writer
	verb   string
	total  int
	n      int
	last   int // the last drawn width of bar, to draw only on change
	active bool
}

func newProgress(w io.Writer, verb string, total int) *progress {
	return &progress{w: w, verb: verb, total: total, last: -1}
}

func (p *progress) add(k int) {
	if p == nil || p.w == nil {
		return
	}
	p.n += k
	const width = 30
	filled := width
	if p.total > 0 && p.n < p.total {
		filled = p.n * width / p.total
	}
	if filled == p.last && p.n%100 != 0 {
		return
	}
	p.last = filled
	p.active = true
	fmt.Fprintf(p.w, "\r%s [%s%s] %d/%d", p.verb, strings.Repeat("#", filled), strings.Repeat(".", width-filled), p.n, p.total)
}

func (p *progress) done() {
	if p != nil && p.w != nil && p.active {
		fmt.Fprintln(p.w)
	}
}
