package schema

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/shelfdb/shelf/api"
)

type conformLot struct {
	Code string `codec:"code"`
	Qty  uint8  `codec:"qty"`
}

type conformPart struct {
	Name  string             `codec:"name"`
	Lots  []conformLot       `codec:"lots"`
	Stock map[int16]int32    `codec:"stock"`
	Tags  map[string]float32 `codec:"tags"`
	Made  time.Time          `codec:"made"`
	Blob  []byte             `codec:"blob"`
	Alt   *conformPart       `codec:"alt"`
	Any   any                `codec:"any"`
}

func conformDef(t *testing.T) Definition {
	t.Helper()
	d, err := Extract(reflect.TypeFor[conformPart]())
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func fromJSON(t *testing.T, s string) any {
	t.Helper()
	var v any
	if err := api.DecodeJSON(strings.NewReader(s), &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// A value that conforms is stored as the typed API stores the struct: it
// decodes into the Go type with times, bytes and integer map keys intact.
func TestConformRoundTrip(t *testing.T) {
	d := conformDef(t)
	v, err := d.Conform(fromJSON(t, `{"name": "R1", "lots": [{"code": "A", "qty": 255}],
		"stock": {"-7": 3, "12": -40000}, "tags": {"x": 1.5}, "made": "2026-11-24T12:00:00.5Z",
		"blob": "AQID", "alt": {"name": "R0"}, "any": [1, {"k": null}]}`))
	if err != nil {
		t.Fatal(err)
	}
	data, err := api.EncodeValue(v)
	if err != nil {
		t.Fatal(err)
	}
	var p conformPart
	if err := api.Unmarshal(data, &p); err != nil {
		t.Fatal(err)
	}
	if p.Name != "R1" || p.Lots[0].Qty != 255 || p.Stock[-7] != 3 || p.Stock[12] != -40000 || p.Tags["x"] != 1.5 ||
		!p.Made.Equal(time.Date(2026, 11, 24, 12, 0, 0, 5e8, time.UTC)) || !bytes.Equal(p.Blob, []byte{1, 2, 3}) ||
		p.Alt == nil || p.Alt.Name != "R0" {
		t.Fatalf("decoded %+v", p)
	}
	// Left-out fields and nulls where the type allows them.
	if _, err := d.Conform(fromJSON(t, `{"alt": null, "lots": null, "stock": null, "blob": null}`)); err != nil {
		t.Fatal(err)
	}
}

// Every problem is reported by its path, and the errors wrap ErrValue.
func TestConformRefusals(t *testing.T) {
	d := conformDef(t)
	_, err := d.Conform(fromJSON(t, `{"name": 5, "lots": [{"code": "A", "qty": 256}, {"qty": -1}, {"qty": 1.5}],
		"stock": {"x": 1, "40000": 1, "1": 3000000000}, "made": "noon", "blob": "!!", "colour": "red",
		"alt": {"name": null}, "tags": []}`))
	if !errors.Is(err, ErrValue) {
		t.Fatalf("want ErrValue, got %v", err)
	}
	for _, want := range []string{
		"name: a number, want a string",
		"lots[0].qty: 256 is out of the range of uint8",
		"lots[1].qty: -1 is negative, want a uint8",
		"lots[2].qty: 1.5 is not a whole number, want uint8",
		`stock{x}: key "x" is not an int16`,
		`stock{40000}: key "40000" is not an int16`,
		"stock{1}: 3000000000 is out of the range of int32",
		`made: "noon" is not an RFC 3339 time`,
		"blob: not base64",
		"colour: no such field in the schema",
		"alt.name: null, want string",
		"tags: an array, want an object",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("errors lack %q:\n%v", want, err)
		}
	}
	if _, err := d.Conform(fromJSON(t, `[1]`)); err == nil || !strings.Contains(err.Error(), "(the record): an array, want an object") {
		t.Fatalf("an array for the record: %v", err)
	}
}
