package typed

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/client"
)

type fuzzLot struct {
	Code string    `codec:"code"`
	Made time.Time `codec:"made"`
}

// SetDefaults makes the decoder prepare lots, in slices and maps.
func (l *fuzzLot) SetDefaults() { l.Code = "?" }

type fuzzPart struct {
	Name  string                  `codec:"name"`
	Qty   int32                   `codec:"qty"`
	Dims  *struct{ W, H float32 } `codec:"dims"`
	Lots  []fuzzLot               `codec:"lots"`
	Stock map[string]fuzzLot      `codec:"stock"`
	Alt   []Key[fuzzPart]         `codec:"alt"`
	Any   any                     `codec:"any"`
}

// FuzzDecodeRecord feeds arbitrary bytes to the record decoder: an error
// wrapping ErrDecode, never a panic.
func FuzzDecodeRecord(f *testing.F) {
	good, err := api.Marshal(fuzzPart{Name: "R1", Qty: 3, Lots: []fuzzLot{{Code: "A", Made: time.Unix(1e9, 0)}},
		Stock: map[string]fuzzLot{"x": {Code: "B"}}, Alt: []Key[fuzzPart]{{ID: 1, Rev: 2}}, Any: []any{1, "x"}})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte{})
	f.Add([]byte{0xa1, 0x64, 'n', 'a', 'm', 'e', 0x01})
	f.Add([]byte{0xbf, 0x63, 'q', 't', 'y', 0x1b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	tr := &Tree[fuzzPart]{typ: "fuzzPart", plan: defaultsFor(reflect.TypeFor[fuzzPart]())}
	f.Fuzz(func(t *testing.T, data []byte) {
		var p fuzzPart
		err := tr.decode(&client.Record{Record: api.Record{Tree: "parts", Data: data}}, &p)
		if err != nil && !errors.Is(err, ErrDecode) {
			t.Fatalf("decode error not wrapping ErrDecode: %v", err)
		}
	})
}
