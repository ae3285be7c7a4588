package typed_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/shelfdb/shelf/internal/testserver"
	"github.com/shelfdb/shelf/typed"
)

// Two Go fields under one key: codec would store only the first.
type TwoUnderOne struct {
	Qty   int    `codec:"qty"`
	Other string `codec:"qty"`
}

type embeddedID struct {
	ID string `codec:"id"`
}

// The embedded ID is shadowed by the shallower one and never stored.
type ShadowsEmbedded struct {
	embeddedID
	ID int `codec:"id"`
}

func TestOpenRefusesTwoFieldsUnderOneKey(t *testing.T) {
	s := testserver.Start(t)
	db := testserver.Open(t, t.TempDir(), s.Addr)
	_, err := typed.Open[TwoUnderOne](ctxT(t), db, "dups")
	if !errors.Is(err, typed.ErrDuplicateKey) {
		t.Fatalf("Open = %v, want ErrDuplicateKey", err)
	}
	for _, want := range []string{"typed_test.TwoUnderOne", "Qty", "Other", `"qty"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
	_, err = typed.Open[ShadowsEmbedded](ctxT(t), db, "dups")
	if !errors.Is(err, typed.ErrDuplicateKey) || !strings.Contains(err.Error(), "embeddedID.ID and ID") {
		t.Fatalf("Open = %v, want ErrDuplicateKey naming embeddedID.ID and ID", err)
	}
	if ss, err := db.Tree("dups").Schemas(); len(ss) != 0 {
		t.Errorf("schemas registered: %v (%v)", ss, err)
	}
}
