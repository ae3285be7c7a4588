package storage

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// Options.Shallow still refuses what a cut-short copy or a damaged meta or
// freelist page looks like, before bbolt maps the file.
func TestShallowOpenRefusesDamage(t *testing.T) {
	path, data := fullFile(t, t.TempDir(), 2000)
	ps := 4096
	cases := map[string][]byte{
		"truncated":          data[:len(data)/2/ps*ps],
		"not page aligned":   data[:len(data)-10],
		"both metas damaged": append(make([]byte, 2*ps), data[2*ps:]...),
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "x.db")
			if err := os.WriteFile(p, b, 0o600); err != nil {
				t.Fatal(err)
			}
			db, err := Open(p, Options{Shallow: true})
			if err == nil {
				db.Close()
				t.Fatal("opened a damaged file")
			}
			if !errors.Is(err, ErrCorrupt) {
				t.Errorf("error %v, want ErrCorrupt", err)
			}
		})
	}
	db, err := Open(path, Options{Shallow: true})
	if err != nil {
		t.Fatalf("intact file: %v", err)
	}
	db.Close()
}
