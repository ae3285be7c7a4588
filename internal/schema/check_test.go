package schema

import (
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/google/uuid"
)

// Versions of a "parts" record.
type (
	P1 struct {
		Qty   int64  `codec:"qty"`
		Color string `codec:"color"`
	}
	P2 struct {
		Qty int64 `codec:"qty"`
	}
	PColorInt struct {
		Qty   int64 `codec:"qty"`
		Color int64 `codec:"color"`
	}
	PRenamed struct {
		Quantity int64 `codec:"qty"`
	}
	PAdded struct {
		Qty  int64  `codec:"qty"`
		Name string `codec:"name"`
	}
	PQty32 struct {
		Qty int32 `codec:"qty"`
	}
	PQtyString struct {
		Qty string `codec:"qty"`
	}
	PQtyPtr struct {
		Qty *int64 `codec:"qty"`
	}
	PQtyAny struct {
		Qty any `codec:"qty"`
	}
	PUint struct {
		N uint16  `codec:"n"`
		M uint64  `codec:"m"`
		F float32 `codec:"f"`
	}
	PWider struct {
		N int32   `codec:"n"`
		M uint64  `codec:"m"`
		F float64 `codec:"f"`
	}
	PUintToInt64 struct {
		M int64 `codec:"m"`
	}

	Dims1 struct {
		Width float64 `codec:"width"`
	}
	Dims2 struct {
		Width string `codec:"width"`
	}
	PDims1 struct {
		Dims Dims1 `codec:"dims"`
	}
	PDims2 struct {
		Dims *Dims2 `codec:"dims"`
	}
	PList1 struct {
		Parts []P2 `codec:"parts"`
	}
	PList2 struct {
		Parts []PQtyString `codec:"parts"`
	}
	PStock1 struct {
		Stock map[string]int64 `codec:"stock"`
	}
	PStock2 struct {
		Stock map[string]string `codec:"stock"`
	}
	PStockKey struct {
		Stock map[int64]int64 `codec:"stock"`
	}
	PCustom1 struct {
		ID uuid.UUID `codec:"id"`
	}
	PCustom2 struct {
		ID Money `codec:"id"`
	}
	Tree1 struct {
		Name     string  `codec:"name"`
		Children []Tree1 `codec:"children"`
	}
	Tree2 struct {
		Name     string  `codec:"name"`
		Children []Tree2 `codec:"children"`
		Parent   *Tree2  `codec:"parent"`
		Size     int     `codec:"size"`
	}
	Tree3 struct {
		Name     int     `codec:"name"`
		Children []Tree3 `codec:"children"`
	}
)

func TestCheck(t *testing.T) {
	for _, c := range []struct {
		name    string
		history []any
		next    any
		want    []string // message parts; none: compatible
	}{
		{"first version", nil, P1{}, nil},
		{"added field", []any{P2{}}, PAdded{}, nil},
		{"dropped field", []any{P1{}}, P2{}, nil},
		{"Go rename", []any{P2{}}, PRenamed{}, nil},
		{"int32 to int64", []any{PQty32{}}, P2{}, nil},
		{"widenings", []any{PUint{}}, PWider{}, nil},
		{"nullable", []any{P2{}, PQtyPtr{}}, P2{}, nil},
		{"struct renamed", []any{PList1{}}, struct {
			Parts []PRenamed `codec:"parts"`
		}{}, nil},
		{"same custom", []any{PCustom1{}}, PCustom1{}, nil},
		{"recursive", []any{Tree1{}}, Tree2{}, nil},
		{"int64 to int32", []any{P2{}}, PQty32{},
			[]string{`schema for tree "parts" refused: field "qty" changes type from int64 (version 1) to int32`}},
		{"int to string", []any{P1{}, P2{}}, PQtyString{},
			[]string{`schema for tree "parts" refused: field "qty" changes type from int64 (version 2) to string`}},
		{"uint64 to int64", []any{PUint{}}, PUintToInt64{}, []string{`field "m" changes type from uint64 (version 1) to int64`}},
		{"to any", []any{P2{}}, PQtyAny{}, []string{`field "qty" changes type from int64 (version 1) to any`}},
		{"from any", []any{PQtyAny{}}, P2{}, []string{`field "qty" changes type from any (version 1) to int64`}},
		{"nested field", []any{PDims1{}}, PDims2{}, []string{`field "dims.width" changes type from float64 (version 1) to string`}},
		{"slice element field", []any{PList1{}}, PList2{}, []string{`field "parts[].qty" changes type from int64 (version 1) to string`}},
		{"map value", []any{PStock1{}}, PStock2{}, []string{`field "stock{}" changes type from int64 (version 1) to string`}},
		{"map key", []any{PStock1{}}, PStockKey{}, []string{`field "stock" changes type from map[string]int64 (version 1) to map[int64]int64`}},
		{"other custom", []any{PCustom1{}}, PCustom2{}, []string{
			`field "id" changes type from custom(github.com/google/uuid.UUID) (version 1) to custom(` + pkg + `Money)`}},
		{"dropped then re-added", []any{P1{}, P2{}}, PColorInt{},
			[]string{`schema for tree "parts" refused: field "color" reuses the key of a field dropped after version 1 (was string)`}},
		{"recursive changed", []any{Tree1{}, Tree2{}}, Tree3{}, []string{`field "name" changes type from string (version 2) to int64`}},
		{"all problems, by path", []any{P1{}, PAdded{}}, struct {
			Qty   string `codec:"qty"`
			Color int64  `codec:"color"`
			Name  bool   `codec:"name"`
		}{}, []string{`schema for tree "parts" refused: ` +
			`field "color" reuses the key of a field dropped after version 1 (was string); ` +
			`field "name" changes type from string (version 2) to bool; ` +
			`field "qty" changes type from int64 (version 2) to string`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var history []Definition
			for _, v := range c.history {
				history = append(history, mustExtract(t, v))
			}
			err := Check("parts", history, mustExtract(t, c.next))
			if c.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrIncompatible) {
				t.Fatalf("got %v, want ErrIncompatible", err)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("got %v, want %q", err, w)
				}
			}
		})
	}
}

func mustExtract(t *testing.T, v any) Definition {
	t.Helper()
	d, err := Extract(reflect.TypeOf(v))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// A definition whose structs share types has exponentially many paths:
// Check refuses it rather than running out of memory.
func TestCheckTooLarge(t *testing.T) {
	d := Definition{Root: "t0", Types: map[string]Struct{}}
	for i := range 40 {
		ref := Type{Kind: KindStruct, Ref: "t" + strconv.Itoa(i+1)}
		if i == 39 {
			ref = Type{Kind: KindString}
		}
		d.Types["t"+strconv.Itoa(i)] = Struct{Fields: []Field{{Name: "a", Type: ref}, {Name: "b", Type: ref}}}
	}
	if _, err := d.Encode(); err != nil {
		t.Fatal(err)
	}
	err := Check("big", []Definition{d}, d)
	if !errors.Is(err, ErrIncompatible) || !strings.Contains(err.Error(), "too many field paths") {
		t.Fatalf("got %v", err)
	}
}
