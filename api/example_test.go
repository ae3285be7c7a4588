package api_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/shelfdb/shelf/api"
)

// Errors from the cluster keep their code across the wire: compare them
// with errors.Is against the sentinels, whatever the message says.
func ExampleError() {
	err := api.Errorf(api.CodeBorrowed, "record parts/7/1 is borrowed by %q", "workstation-3")
	fmt.Println(errors.Is(err, api.ErrBorrowed), errors.Is(err, api.ErrNotBorrowed))
	fmt.Println(api.HTTPStatus(api.CodeOf(err)))
	// Output:
	// true false
	// 409
}

func ExampleParseKey() {
	k, err := api.ParseKey("42/3")
	fmt.Println(k.ID, k.Rev, k, err)
	_, err = api.ParseKey("42/x")
	fmt.Println(err)
	// Output:
	// 42 3 42/3 <nil>
	// invalid revision "x": want a positive integer
}

// A record's value travels as CBOR; EncodeValue and DecodeValue convert
// from and to plain Go values (as decoded from JSON).
func ExampleEncodeValue() {
	b, _ := api.EncodeValue(map[string]any{"name": "R1", "qty": 10.0})
	v, _ := api.DecodeValue(b)
	fmt.Printf("%d bytes: %v\n", len(b), v)
	// Output:
	// 14 bytes: map[name:R1 qty:10]
}

// Operator access to a node: create a record with a cluster-assigned id,
// check it out as a registered client, change it and check it in.
func ExampleClient() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := api.NewClient("127.0.0.1:7001", nil)
	me, err := c.RegisterClient(ctx, "example")
	if err != nil {
		fmt.Println(err)
		return
	}
	data, _ := api.EncodeValue(map[string]any{"name": "R1", "qty": 10})
	wr, err := c.Create(ctx, "parts", api.WriteRequest{Data: data})
	if err != nil {
		fmt.Println(err)
		return
	}
	if _, err := c.Borrow(ctx, "parts", wr.Key, me.ID, 0); err != nil {
		fmt.Println(err)
		return
	}
	data, _ = api.EncodeValue(map[string]any{"name": "R1", "qty": 11})
	if _, err := c.Update(ctx, "parts", wr.Key, api.WriteRequest{Client: me.ID, Data: data}); err != nil {
		fmt.Println(err)
		return
	}
	_, err = c.Return(ctx, "parts", wr.Key, me.ID)
	fmt.Println(wr.Key, err)
}

// A write retried after a lost answer: every attempt carries the same
// Idempotency-Key, so the cluster applies it once and answers the later
// attempts with the first one's result (WriteResult.Repeat).
func ExampleWithIdempotencyKey() {
	c := api.NewClient("127.0.0.1:7001", nil)
	data, _ := api.EncodeValue(map[string]any{"name": "R1"})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ctx = api.WithIdempotencyKey(ctx, api.NewIdempotencyKey())
	var res api.WriteResult
	var err error
	for attempt := 0; attempt < 4; attempt++ {
		res, err = c.Create(ctx, "parts", api.WriteRequest{Data: data})
		if !errors.Is(err, api.ErrUnreachable) && !errors.Is(err, api.ErrUnavailable) && !errors.Is(err, api.ErrNoLeader) {
			break // answered: applied (once), or refused
		}
		time.Sleep(time.Duration(250<<attempt) * time.Millisecond)
	}
	fmt.Println(res.Key, res.Repeat, err)
}
