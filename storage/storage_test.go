package storage

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/shelfdb/shelf/api"
	bolt "go.etcd.io/bbolt"
)

func TestOpenCreatesAndReopens(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.View(Check); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db, err = Open(path, Options{})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	db.Close()
}

func TestOpenRefusesBadFiles(t *testing.T) {
	dir := t.TempDir()

	garbage := filepath.Join(dir, "garbage.db")
	os.WriteFile(garbage, []byte("this is not a database, it is a shopping list"), 0o600)
	if _, err := Open(garbage, Options{}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("garbage: %v", err)
	}

	foreign := filepath.Join(dir, "foreign.db")
	fdb, err := bolt.Open(foreign, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	fdb.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("users")); return err })
	fdb.Close()
	if _, err := Open(foreign, Options{}); !errors.Is(err, ErrForeign) {
		t.Fatalf("foreign: %v", err)
	}

	// A truncated copy of a real file must be refused, not mapped (bbolt
	// would die with SIGBUS on the missing pages).
	full := filepath.Join(dir, "full.db")
	db, err := Open(full, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	db.Update(func(tx *bolt.Tx) error {
		b, _ := tx.Bucket(BucketTrees).CreateBucket([]byte("t"))
		for i := range uint64(5000) {
			if err := b.Put(RecordKey(api.Key{ID: i + 1, Rev: 1}), make([]byte, 100)); err != nil {
				return err
			}
		}
		return nil
	})
	db.Close()
	data, _ := os.ReadFile(full)
	truncated := filepath.Join(dir, "truncated.db")
	os.WriteFile(truncated, data[:64<<10], 0o600) // the records reach past 500 KiB
	if _, err := Open(truncated, Options{}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("truncated: %v", err)
	}
}

func TestOpenReportsLock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := Open(path, Options{LockTimeout: 50 * time.Millisecond}); !errors.Is(err, ErrLocked) {
		t.Fatalf("second open: %v", err)
	}
}

func TestRecordKeyOrder(t *testing.T) {
	keys := []api.Key{{ID: 1, Rev: 1}, {ID: 1, Rev: 2}, {ID: 1, Rev: 256}, {ID: 2, Rev: 1}, {ID: 256, Rev: 1}}
	for i := 1; i < len(keys); i++ {
		if string(RecordKey(keys[i-1])) >= string(RecordKey(keys[i])) {
			t.Fatalf("%v does not sort before %v", keys[i-1], keys[i])
		}
	}
	k, err := ParseRecordKey(RecordKey(api.Key{ID: 7, Rev: 3}))
	if err != nil || k != (api.Key{ID: 7, Rev: 3}) {
		t.Fatalf("%v %v", k, err)
	}
	if _, err := ParseRecordKey([]byte{1, 2}); !errors.Is(err, ErrCorrupt) {
		t.Fatal(err)
	}
}
