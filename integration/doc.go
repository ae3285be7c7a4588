// Package integration holds multi-process tests of the real binaries:
// TestMain builds kvnode and kvctl once with "go build", and the tests
// start clusters of kvnode processes on free loopback ports, each with its
// own data directory under t.TempDir(), kill them with SIGKILL or stop them
// with SIGTERM, restart them on the same data and ports, and check the
// promises of the spec (section 4) through the HTTP API (api.Client) and
// through kvctl.
//
// The package has no non-test code besides this comment. Run it with
//
//	go test ./integration
//	go test ./integration -run XXX -bench Create3Node -benchtime 2000x
//
// With -short the tests are skipped and nothing is built.
package integration
