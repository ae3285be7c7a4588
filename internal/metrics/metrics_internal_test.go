package metrics

import (
	"testing"
	"time"
)

func TestLogStreamClients(t *testing.T) {
	m := New()
	now := time.Date(2026, 12, 4, 8, 0, 0, 0, time.UTC)
	m.now = func() time.Time { return now }
	done := m.LogStreamStart("a")
	m.LogStreamStart("b")()
	m.LogStreamStart("")()
	if n := m.recentLogClients(); n != 2 {
		t.Fatalf("clients = %d, want 2 (a and b)", n)
	}
	now = now.Add(LogClientWindow / 2)
	m.LogStreamStart("b")()
	now = now.Add(LogClientWindow/2 + time.Second)
	if n := m.recentLogClients(); n != 1 {
		t.Fatalf("clients a minute later = %d, want 1 (b polled again)", n)
	}
	done()
}
