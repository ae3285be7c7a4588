// Package wake owns the one "wake the waiters" mechanism of the project:
// a Signal whose waiters take a channel that the next Notify closes.
package wake

import "sync"

// Signal wakes everyone waiting for the next change of something. The
// zero value is ready to use; a Signal must not be copied after first
// use.
type Signal struct {
	mu sync.Mutex
	ch chan struct{} // closed at the next Notify; nil until someone waits
}

// C returns a channel closed at the next Notify. Take it before looking
// at the state it guards, so that a change in between is not missed.
func (s *Signal) C() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch == nil {
		s.ch = make(chan struct{})
	}
	return s.ch
}

// Notify wakes the waiters of every channel C returned so far.
func (s *Signal) Notify() {
	s.mu.Lock()
	if s.ch != nil {
		close(s.ch)
		s.ch = nil
	}
	s.mu.Unlock()
}
