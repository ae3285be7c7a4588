// This program must not compile: TestKeyOfAnotherTreeDoesNotCompile
// checks that passing a Key[Part] where a Key[Board] is expected is an
// error of the Go compiler.
package main

import (
	"context"

	"github.com/shelfdb/shelf/typed"
)

// Part is a record type.
type Part struct{ Name string }

// Board is another record type.
type Board struct{ Name string }

func main() {
	var boards *typed.Tree[Board]
	pk := typed.Key[Part]{ID: 1, Rev: 1}
	_, _ = boards.Get(pk)
	_ = boards.Checkout(context.Background(), pk)
}
