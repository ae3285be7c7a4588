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
	"syscall"
)

func main() {
	c := newCLI(os.Stdout, os.Stderr)
	ctx, cancel := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		for {
			select {
			case s := <-sigs:
				// While kvctl edit runs the editor, Ctrl-C belongs to the
				// editor (as with git): the terminal sends it to both.
				// SIGTERM and SIGHUP end the edit, and its borrow is
				// returned.
				if s == os.Interrupt && c.inEditor.Load() {
					continue
				}
				cancel()
			case <-done:
				return
			}
		}
	}()
	code := c.main(ctx, os.Args[1:])
	signal.Stop(sigs)
	close(done)
	<-stopped
	cancel()
	os.Exit(code)
}
