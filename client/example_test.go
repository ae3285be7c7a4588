package client_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/client"
)

// An application opens its replica once; reads are local from then on.
func ExampleOpen() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := client.Open(ctx, client.Config{
		Dir:     "replica/",                 // created if missing
		Servers: []string{"127.0.0.1:7001"}, // any node; more are learnt
		Name:    "workstation-7",            // shown to operators as the borrower
	})
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	if err := db.WaitSynced(ctx); err != nil {
		log.Fatal(err)
	}
	fmt.Println(db.ClusterID() != "", db.Online())
}

// Creating works offline too: the id comes from a range granted in
// advance, and the create waits in the outbox until the cluster is back.
func ExampleTree_Create() {
	ctx := context.Background()
	db, err := client.Open(ctx, client.Config{Dir: "replica/", Servers: []string{"127.0.0.1:7001"}, Name: "ws-7"})
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	value, _ := api.EncodeValue(map[string]any{"name": "R1", "qty": 10})
	res, err := db.Tree("parts").Create(ctx, 0, value)
	if err != nil {
		log.Fatal(err)
	}
	rec, _ := db.Tree("parts").Get(res.Key) // local: no network
	fmt.Println(res.Key, res.Pending, rec.Pending)
}

// Editing needs the record's borrow (check-out), which needs the cluster.
func ExampleTree_Checkout() {
	ctx := context.Background()
	db, err := client.Open(ctx, client.Config{Dir: "replica/", Servers: []string{"127.0.0.1:7001"}, Name: "ws-7"})
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	parts, key := db.Tree("parts"), api.Key{ID: 1, Rev: 1}
	if err := parts.Checkout(ctx, key, time.Hour); err != nil {
		log.Fatal(err) // errors.Is(err, client.ErrBorrowed): someone else holds it
	}
	value, _ := api.EncodeValue(map[string]any{"name": "R1", "qty": 11})
	if _, err := parts.Update(ctx, key, 0, value); err != nil {
		log.Fatal(err)
	}
	if err := parts.Return(ctx, key); err != nil {
		log.Fatal(err)
	}
}

// Every applied change arrives as an event, in commit order.
func ExampleDB_Events() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	db, err := client.Open(ctx, client.Config{Dir: "replica/", Servers: []string{"127.0.0.1:7001"}, Name: "ws-7"})
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	for ev := range db.Events(ctx, "parts") {
		switch ev.Type {
		case api.EventCreated, api.EventUpdated:
			fmt.Println("changed", ev.Key)
		case client.EventConflict:
			fmt.Println("the cluster refused an offline edit:", ev.Err)
		case client.EventResynced, client.EventLagged:
			fmt.Println("re-read everything shown")
		}
	}
}
