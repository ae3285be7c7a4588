// Command kvctl is the operator CLI of Shelf. It talks to any node over the
// HTTP API (CBOR on the wire) and prints tables for people or stable JSON
// for scripts:
//
//	kvctl [-s HTTP_ADDR[,HTTP_ADDR...]] [-o table|json] <command> [args]
//
// With several addresses a request goes to the first node that takes it
// (failing over when one cannot be reached or has no leader). Run "kvctl
// help" for the commands, "kvctl help COMMAND" (or "kvctl COMMAND -h")
// for one. Flags may also follow the command and default to environment
// variables (SHELF_HTTP, SHELF_OUTPUT, SHELF_TIMEOUT, ...). Errors go to
// stderr as "kvctl: <message>", or with -o json as
// {"error":{"code":…,"message":…}}; the exit code tells their kind: 1
// error, 2 usage, 3 not found, 4 conflict, 5 cannot reach the server or
// timed out (--timeout, default 10s).
package main

import (
	"context"
	"os"
	"os/signal"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
