package storage

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/shelfdb/shelf/api"
	bolt "go.etcd.io/bbolt"
)

// BenchmarkVerify measures the check Open does on every start, on files
// of 100k and 1M records of 100 bytes.
func BenchmarkVerify(b *testing.B) {
	for _, n := range []int{100_000, 1_000_000} {
		b.Run(fmt.Sprintf("records=%d", n), func(b *testing.B) {
			path := filepath.Join(b.TempDir(), "big.db")
			db, err := Open(path, Options{NoSync: true})
			if err != nil {
				b.Fatal(err)
			}
			for start := 0; start < n; start += 100_000 {
				err := db.Update(func(tx *bolt.Tx) error {
					t, err := tx.Bucket(BucketTrees).CreateBucketIfNotExists([]byte("t"))
					if err != nil {
						return err
					}
					for i := start; i < start+100_000 && i < n; i++ {
						if err := t.Put(RecordKey(api.Key{ID: uint64(i) + 1, Rev: 1}), make([]byte, 100)); err != nil {
							return err
						}
					}
					return nil
				})
				if err != nil {
					b.Fatal(err)
				}
			}
			db.Close()
			info, err := Inspect(path)
			if err != nil {
				b.Fatal(err)
			}
			b.Run("Verify", func(b *testing.B) {
				for b.Loop() {
					if err := Verify(path); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(info.Size)/(1<<20), "MiB")
			})
			// For comparison: bbolt's own check of the same file.
			b.Run("bbolt-Check", func(b *testing.B) {
				for b.Loop() {
					db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
					if err != nil {
						b.Fatal(err)
					}
					err = db.View(func(tx *bolt.Tx) error {
						for err := range tx.Check() {
							return err
						}
						return nil
					})
					db.Close()
					if err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}
