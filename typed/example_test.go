package typed_test

import (
	"context"
	"fmt"
	"log"

	"github.com/shelfdb/shelf/client"
	"github.com/shelfdb/shelf/typed"
)

// Part is a record type: fields are stored under their codec tags.
type Part struct {
	Name string `codec:"name"`
	Qty  int    `codec:"qty"`
}

// Board refers to revisions of parts by typed keys.
type Board struct {
	Name  string            `codec:"name"`
	Parts []typed.Key[Part] `codec:"parts"`
}

func openDB() *client.DB {
	db, err := client.Open(context.Background(), client.Config{Dir: "replica/", Servers: []string{"127.0.0.1:7001"}, Name: "example"})
	if err != nil {
		log.Fatal(err)
	}
	return db
}

// Open a tree of a Go type, create a record and read it back locally.
func ExampleOpen() {
	ctx := context.Background()
	db := openDB()
	defer db.Close()
	parts, err := typed.Open[Part](ctx, db, "parts") // registers Part's schema
	if err != nil {
		log.Fatal(err)
	}
	key, err := parts.Create(ctx, Part{Name: "R1", Qty: 10})
	if err != nil {
		log.Fatal(err)
	}
	p, err := parts.Get(key) // local: no network
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(p.Name, p.Qty)
}

// Editing needs the record's borrow: check out, update, check in.
func ExampleTree_Update() {
	ctx := context.Background()
	db := openDB()
	defer db.Close()
	parts, err := typed.Open[Part](ctx, db, "parts")
	if err != nil {
		log.Fatal(err)
	}
	key := typed.Key[Part]{ID: 1, Rev: 1}
	if err := parts.Checkout(ctx, key); err != nil {
		log.Fatal(err) // client.ErrBorrowed names who holds it
	}
	defer parts.Return(ctx, key)
	err = parts.Update(ctx, key, func(p *Part) error {
		p.Qty--
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
}

// A released revision never changes; Revise makes the next one as a
// draft that boards can move to when it is released in turn.
func ExampleTree_Revise() {
	ctx := context.Background()
	db := openDB()
	defer db.Close()
	parts, _ := typed.Open[Part](ctx, db, "parts")
	boards, _ := typed.Open[Board](ctx, db, "boards")
	r1, _ := parts.Create(ctx, Part{Name: "R1", Qty: 10})
	_ = parts.Checkout(ctx, r1) // a creator does not hold its record: borrow to release
	_ = parts.Release(ctx, r1)
	if _, err := boards.Create(ctx, Board{Name: "main", Parts: []typed.Key[Part]{r1}}); err != nil {
		log.Fatal(err)
	}
	next, err := parts.Revise(ctx, r1) // r1's id, revision 2, borrowed by us
	if err != nil {
		log.Fatal(err)
	}
	_ = parts.Update(ctx, next, func(p *Part) error { p.Name = "R1 (lead-free)"; return nil })
}

// An index by name, kept in the local replica.
func ExampleNewIndex() {
	ctx := context.Background()
	db := openDB()
	defer db.Close()
	parts, _ := typed.Open[Part](ctx, db, "parts")
	byName, err := typed.NewIndex(parts, "by-name", func(p Part) []string { return []string{p.Name} })
	if err != nil {
		log.Fatal(err)
	}
	keys, _ := byName.Lookup("R1")
	for _, k := range keys {
		p, _ := parts.Get(k)
		fmt.Println(k, p.Qty)
	}
}

// Changes arrive as events, from every client.
func ExampleTree_Events() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	db := openDB()
	defer db.Close()
	parts, _ := typed.Open[Part](ctx, db, "parts")
	for ev := range parts.Events(ctx) {
		switch ev.Type {
		case typed.Created, typed.Updated:
			p, _ := parts.Get(ev.Key)
			fmt.Println(ev.Type, ev.Key, p.Name)
		case typed.Borrowed:
			fmt.Println(ev.Key, "checked out by", ev.Client)
		}
	}
}

// A migration step renames a field for records older than version 3.
func ExampleTree_Migrate() {
	ctx := context.Background()
	db := openDB()
	defer db.Close()
	parts, _ := typed.Open[Part](ctx, db, "parts")
	rep, err := parts.Migrate(ctx, typed.MigrateOptions{
		Steps: map[uint32]func(map[string]any) error{
			2: func(f map[string]any) error { f["name"] = f["title"]; delete(f, "title"); return nil },
		},
		Progress: func(done, total int) { fmt.Printf("\r%d/%d", done, total) },
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(rep.Migrated, "migrated;", len(rep.Borrowed), "borrowed by others, run again later")
}
