package wake

import "testing"

// A channel taken before Notify is closed by it; one taken after is not.
func TestSignal(t *testing.T) {
	var s Signal
	before := s.C()
	if s.C() != before {
		t.Fatal("two waiters before a Notify got different channels")
	}
	s.Notify()
	select {
	case <-before:
	default:
		t.Fatal("Notify did not close the channel taken before it")
	}
	after := s.C()
	select {
	case <-after:
		t.Fatal("a channel taken after Notify is already closed")
	default:
	}
	s.Notify()
	s.Notify() // no waiter: nothing to close, no panic
	select {
	case <-after:
	default:
		t.Fatal("the second Notify did not close the channel taken after the first")
	}
}
