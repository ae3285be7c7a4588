// Package faults is the fault-injection suite: three real kvnode
// processes, each in its own network namespace (internal/netns), under a
// seeded nemesis schedule of kills, restarts, pauses and partitions, while
// HTTP workers and embedded clients read and write. Afterwards the
// recorded history is checked: linearizability per record (porcupine), no
// acknowledged write lost, no record id granted twice, at most one borrow
// holder at a time, equal content hashes and applied indexes on every node
// and client replica after healing, and identical raft logs at every
// committed index.
//
// The package has no non-test code besides this comment. It needs root
// and the ip and iptables commands. Run it with
//
//	go test ./integration/faults -run TestFaults -v
//	go test ./integration/faults -run TestFaults -faults.seed=N -v   # replay one schedule
//	go test ./integration/faults -run TestFaults -faults.schedules=300 -timeout 6h
//
// See docs/testing.md. With -short the tests are skipped and nothing is
// built.
package faults
