package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shelfdb/shelf/api"
	bolt "go.etcd.io/bbolt"
)

// fullFile writes a Shelf file with n records spread over a few trees
// (nested buckets, overflow values, inline buckets) and returns its bytes.
func fullFile(t testing.TB, dir string, n int) (string, []byte) {
	t.Helper()
	path := filepath.Join(dir, "full.db")
	db, err := Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		trees := tx.Bucket(BucketTrees)
		for tr := range 3 {
			b, err := trees.CreateBucket(fmt.Appendf(nil, "tree%d", tr))
			if err != nil {
				return err
			}
			for i := range uint64(n) {
				v := make([]byte, 100)
				if i%500 == 0 {
					v = make([]byte, 9000) // overflow pages
				}
				if err := b.Put(RecordKey(api.Key{ID: i + 1, Rev: 1}), v); err != nil {
					return err
				}
			}
		}
		_, err := trees.CreateBucket([]byte("small")) // stays inline
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	// Some deletes leave free pages.
	err = db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(BucketTrees).Bucket([]byte("tree1"))
		for i := range uint64(n / 4) {
			if err := b.Delete(RecordKey(api.Key{ID: i + 1, Rev: 1})); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// bbolt grows the file ahead of use (16 MiB steps with our map size);
	// the pages past the high-water mark are not part of the database.
	info, err := Inspect(path)
	if err != nil {
		t.Fatal(err)
	}
	m0, err := (&verifier{f: mustOpen(t, path), size: int64(len(data))}).meta()
	if err != nil {
		t.Fatal(err)
	}
	data = data[:m0.pgid*uint64(info.PageSize)]
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path, data
}

func mustOpen(t testing.TB, path string) *os.File {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// wantCorrupt opens path and requires an ErrCorrupt (or ErrForeign when
// foreign) error naming the file.
func wantBad(t *testing.T, path string, want error) {
	t.Helper()
	db, err := Open(path, Options{})
	if err == nil {
		db.Close()
		t.Fatalf("%s opened, want %v", filepath.Base(path), want)
	}
	if !errors.Is(err, want) {
		t.Fatalf("%s: %v, want %v", filepath.Base(path), err, want)
	}
	if !strings.Contains(err.Error(), path) {
		t.Fatalf("error %q does not name the file %s", err, path)
	}
}

func TestOpenDamagedFiles(t *testing.T) {
	dir := t.TempDir()
	_, data := fullFile(t, dir, 5000)
	if len(data) < 1<<20 {
		t.Fatalf("test file of %d bytes, want > 1 MiB", len(data))
	}
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cases := []struct {
		name string
		data []byte
		msg  string
	}{
		{"empty", nil, "empty"},
		{"shorter than a page", data[:100], "truncated"},
		{"one page", data[:4096], "truncated"},
		{"100 KB", data[:100<<10], "truncated"},
		{"not page aligned", data[:len(data)-1000], "not a multiple of the page size"},
		{"half", data[:len(data)/2/4096*4096], "truncated"},
		{"zeros", make([]byte, 64<<10), "not a bbolt database"},
		{"json", []byte(`{"peers": ["127.0.0.1:7003"], "note": "not a database"}`), "too short for a database"},
		{"json page", append([]byte(`{"peers": ["127.0.0.1:7003"]}`), make([]byte, 8192)...), "not a bbolt database"},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := write(fmt.Sprintf("case%d.db", i), c.data)
			wantBad(t, p, ErrCorrupt)
			_, err := Open(p, Options{})
			if !strings.Contains(err.Error(), c.msg) {
				t.Errorf("error %q does not say %q", err, c.msg)
			}
		})
	}
	t.Run("both meta pages", func(t *testing.T) {
		b := append([]byte(nil), data...)
		copy(b[16:4096], make([]byte, 4080))
		copy(b[4096+16:8192], make([]byte, 4080))
		wantBad(t, write("metas.db", b), ErrCorrupt)
	})
	t.Run("one meta page", func(t *testing.T) {
		// bbolt falls back to the other meta page: the file still opens.
		b := append([]byte(nil), data...)
		copy(b[16:100], make([]byte, 84))
		p := write("meta0.db", b)
		db, err := Open(p, Options{})
		if err != nil {
			t.Fatalf("one good meta page: %v", err)
		}
		db.Close()
	})
}

// TestOpenGarbagePages writes random bytes over random pages of a real
// file (seeded): Open must refuse with ErrCorrupt naming the file, or, if
// only free pages were hit, open a file whose every record reads back.
func TestOpenGarbagePages(t *testing.T) {
	dir := t.TempDir()
	_, data := fullFile(t, dir, 5000)
	pages := len(data) / 4096
	refused := 0
	const runs = 40
	for seed := range uint64(runs) {
		r := rand.New(rand.NewPCG(seed, 42))
		b := append([]byte(nil), data...)
		metaHit := false
		for range 1 + r.IntN(3) {
			pg := r.IntN(pages)
			junk := make([]byte, 4096)
			for i := 0; i < len(junk); i += 8 {
				binary.LittleEndian.PutUint64(junk[i:], r.Uint64())
			}
			off := pg * 4096
			switch r.IntN(3) {
			case 0:
				// Keep the page id, as a torn write would.
				copy(junk[:8], b[off:off+8])
			case 1:
				// Not at a page boundary.
				off += r.IntN(4096)
			}
			copy(b[off:], junk)
			metaHit = metaHit || off < 2*4096
		}
		p := filepath.Join(dir, fmt.Sprintf("garbage%d.db", seed))
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		db, err := Open(p, Options{})
		if err != nil {
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), p) {
				t.Fatalf("seed %d: %v", seed, err)
			}
			refused++
			continue
		}
		err = Guard(p, func() error {
			return db.View(func(tx *bolt.Tx) error {
				n := 0
				err := tx.Bucket(BucketTrees).ForEachBucket(func(k []byte) error {
					return tx.Bucket(BucketTrees).Bucket(k).ForEach(func(_, _ []byte) error { n++; return nil })
				})
				// A damaged meta page makes bbolt fall back to the
				// other one: the transaction before (the deletes).
				if n != 3*5000-5000/4 && !(metaHit && n == 3*5000) {
					return fmt.Errorf("%d records", n)
				}
				return err
			})
		})
		db.Close()
		if err != nil {
			t.Fatalf("seed %d: opened, but reading: %v", seed, err)
		}
	}
	if refused < runs/2 {
		t.Errorf("only %d of %d damaged files refused", refused, runs)
	}
	t.Logf("%d of %d damaged files refused, the others hit only free pages", refused, runs)
}

func TestOpenWrongFiles(t *testing.T) {
	dir := t.TempDir()
	// A raft log (raft-boltdb's buckets) where a Shelf file is expected.
	raftLog := filepath.Join(dir, "raft.db")
	rdb, err := bolt.Open(raftLog, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = rdb.Update(func(tx *bolt.Tx) error {
		for _, n := range []string{"logs", "conf"} {
			b, err := tx.CreateBucket([]byte(n))
			if err != nil {
				return err
			}
			if err := b.Put([]byte("k"), []byte("v")); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	rdb.Close()
	wantBad(t, raftLog, ErrForeign)
	info, err := Inspect(raftLog)
	if err != nil || strings.Join(info.Buckets, ",") != "conf,logs" {
		t.Fatalf("Inspect: %+v %v", info, err)
	}
	// A Shelf file of another format version.
	other := filepath.Join(dir, "other.db")
	db, err := Open(other, Options{})
	if err != nil {
		t.Fatal(err)
	}
	db.Update(func(tx *bolt.Tx) error { return tx.Bucket(BucketMeta).Put(MetaFormat, []byte("shelf/9")) })
	db.Close()
	wantBad(t, other, ErrForeign)
	// A directory.
	sub := filepath.Join(dir, "sub")
	os.Mkdir(sub, 0o700)
	if _, err := Open(sub, Options{}); err == nil || !strings.Contains(err.Error(), sub) {
		t.Fatalf("directory: %v", err)
	}
}

// TestVerifyAcceptsGoodFiles: Verify must not refuse what bbolt wrote,
// and must agree with bbolt's own consistency check.
func TestVerifyAcceptsGoodFiles(t *testing.T) {
	path, _ := fullFile(t, t.TempDir(), 3000)
	if err := Verify(path); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			t.Errorf("bbolt Check: %v", err)
		}
		return nil
	})
	if err := Verify(filepath.Join(t.TempDir(), "missing.db")); err != nil {
		t.Errorf("missing file: %v", err)
	}
}
