package typed_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/internal/testserver"
	"github.com/shelfdb/shelf/typed"
)

type benchPart struct {
	Name string  `codec:"name"`
	Qty  int     `codec:"qty"`
	Desc string  `codec:"desc"`
	Cost float64 `codec:"cost"`
}

// benchTree opens a tree of n parts through one in-process server.
func benchTree(b *testing.B, n int) (*typed.Tree[benchPart], []typed.Key[benchPart]) {
	s := testserver.Start(b)
	db := testserver.OpenWith(b, b.TempDir(), nil, s.Addr)
	ctx := context.Background()
	parts, err := typed.Open[benchPart](ctx, db, "parts")
	if err != nil {
		b.Fatal(err)
	}
	keys := make([]typed.Key[benchPart], n)
	for i := range keys {
		if keys[i], err = parts.Create(ctx, benchPart{Name: fmt.Sprintf("R%d", i%100), Qty: i, Desc: "resistor 10k 0603 1%", Cost: 0.002}); err != nil {
			b.Fatal(err)
		}
	}
	return parts, keys
}

// BenchmarkRead compares a typed Get and View with the untyped client
// Get (which copies the CBOR bytes and decodes nothing).
func BenchmarkRead(b *testing.B) {
	parts, keys := benchTree(b, 500)
	untyped := parts.DB().Tree("parts")
	b.Run("typed-Get", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			if _, err := parts.Get(keys[i%len(keys)]); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("typed-View", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			if err := parts.View(keys[i%len(keys)], func(*benchPart) error { return nil }); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("untyped-Get", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			if _, err := untyped.Get(keys[i%len(keys)].Untyped()); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkIndexLookup looks up one name among 100 in an index of 2000
// records (20 keys a name).
func BenchmarkIndexLookup(b *testing.B) {
	parts, _ := benchTree(b, 2000)
	byName, err := typed.NewIndex(parts, "by-name", func(p benchPart) []string { return []string{p.Name} })
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		keys, err := byName.Lookup(fmt.Sprintf("R%d", i%100))
		if err != nil || len(keys) != 20 {
			b.Fatalf("lookup: %d keys, %v", len(keys), err)
		}
	}
}

// BenchmarkCodec measures encoding and decoding a record alone.
func BenchmarkCodec(b *testing.B) {
	p := benchPart{Name: "R1", Qty: 10, Desc: "resistor 10k 0603 1%", Cost: 0.002}
	data, err := api.Marshal(&p)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("encode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := api.Marshal(&p); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var q benchPart
			if err := api.Unmarshal(data, &q); err != nil {
				b.Fatal(err)
			}
		}
	})
}
