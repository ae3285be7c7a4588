package main

import (
	"os"
	"path/filepath"
	"testing"
)

func TestParseStraceCounts(t *testing.T) {
	summary := `% time     seconds  usecs/call     calls    errors syscall
------ ----------- ----------- --------- --------- ----------------
 80.00    2.271907         423      5360           fdatasync
 20.00    0.100000         100        40         2 fsync
------ ----------- ----------- --------- --------- ----------------
100.00    2.371907         423      5400         2 total
`
	p := filepath.Join(t.TempDir(), "strace.txt")
	if err := os.WriteFile(p, []byte(summary), 0o600); err != nil {
		t.Fatal(err)
	}
	n, err := parseStraceCounts(p)
	if err != nil || n != 5400 {
		t.Fatalf("got %d, %v; want 5400 (fdatasync 5360 + fsync 40, not the total line)", n, err)
	}
	if err := os.WriteFile(p, []byte("100.00 1.0 1 many fdatasync\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := parseStraceCounts(p); err == nil {
		t.Fatal("a count that is not a number must be an error")
	}
}

func TestFlagsRefuseBadLoads(t *testing.T) {
	for _, args := range [][]string{
		{}, // no -kvnode
		{"-kvnode", "/bin/true", "-writers", "1,x"},
		{"-kvnode", "/bin/true", "-n", "0"},
		{"-kvnode", "/bin/true", "-size", "2"},
		{"-kvnode", "/nonexistent/kvnode"},
	} {
		if _, err := parseFlags(args, os.Stderr); err == nil {
			t.Errorf("%q: accepted", args)
		}
	}
}
