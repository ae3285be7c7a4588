package storage_test

import (
	"bytes"
	"errors"
	"math"
	"testing"

	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/storage"
)

// TestDecodeRecordMatchesCodec checks that the direct decoder of stored
// records gives what the general CBOR decoder gives, for the records
// Shelf stores and for encodings only the general decoder reads.
func TestDecodeRecordMatchesCodec(t *testing.T) {
	recs := []storage.Record{
		{},
		{Data: []byte{0xa1, 0x61, 0x61, 0x01}, Created: 1, Updated: 2, Index: 3},
		{Schema: math.MaxUint32, Data: bytes.Repeat([]byte{7}, 70000), Released: true, State: -5, CreatedBy: "c1", Created: -10,
			UpdatedBy: "someone-with-a-long-client-id-over-24-bytes", Updated: math.MaxInt64, Index: math.MaxUint64},
		{State: math.MinInt64, Created: math.MinInt64},
	}
	for _, want := range recs {
		raw, err := api.Marshal(&want)
		if err != nil {
			t.Fatal(err)
		}
		var got storage.Record
		if err := storage.DecodeRecord(raw, &got); err != nil {
			t.Fatal(err)
		}
		if !equal(got, want) {
			t.Fatalf("decoded %+v, want %+v", got, want)
		}
		checkValue(t, raw, want, nil)
	}
	// Other forms: an unknown field, an indefinite-length map, a string
	// where a number belongs (the general decoder's answer stands).
	others := [][]byte{
		mustMarshal(t, map[string]any{"d": []byte("x"), "c": 5, "zz": "later field"}),
		{0xbf, 0x61, 0x63, 0x05, 0xff},
		mustMarshal(t, map[string]any{"c": "five"}),
		{0xa1, 0x61, 0x63},
		{0xa2, 0x61, 0x63, 0x05},
		{},
	}
	for _, raw := range others {
		var want storage.Record
		wantErr := api.Unmarshal(raw, &want)
		var got storage.Record
		err := storage.DecodeRecord(raw, &got)
		if (err != nil) != (wantErr != nil) || (err == nil && !equal(got, want)) {
			t.Fatalf("%x: decoded %+v, %v; the codec %+v, %v", raw, got, err, want, wantErr)
		}
		if err != nil && !errors.Is(err, storage.ErrCorrupt) {
			t.Fatalf("%x: error %v is not ErrCorrupt", raw, err)
		}
		checkValue(t, raw, want, wantErr)
	}
}

// checkValue checks DecodeRecordValue on raw against the codec's decoding
// of it (want, wantErr): the same Schema and Data, or the same refusal,
// as ErrCorrupt.
func checkValue(t *testing.T, raw []byte, want storage.Record, wantErr error) {
	t.Helper()
	var got storage.Record
	err := storage.DecodeRecordValue(raw, &got)
	if (err != nil) != (wantErr != nil) || (err == nil && (got.Schema != want.Schema || !bytes.Equal(got.Data, want.Data))) {
		t.Fatalf("%x: value decoded %+v, %v; the codec %+v, %v", raw, got, err, want, wantErr)
	}
	if err != nil && !errors.Is(err, storage.ErrCorrupt) {
		t.Fatalf("%x: value error %v is not ErrCorrupt", raw, err)
	}
}

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := api.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func equal(a, b storage.Record) bool {
	return a.Schema == b.Schema && bytes.Equal(a.Data, b.Data) && a.Released == b.Released && a.State == b.State &&
		a.CreatedBy == b.CreatedBy && a.Created == b.Created && a.UpdatedBy == b.UpdatedBy && a.Updated == b.Updated && a.Index == b.Index
}

// FuzzDecodeRecord checks that the direct decoder never panics and agrees
// with the general decoder on every input.
func FuzzDecodeRecord(f *testing.F) {
	raw, _ := api.Marshal(&storage.Record{Data: []byte{1, 2}, CreatedBy: "a", Created: 3, Index: 4})
	f.Add(raw)
	f.Fuzz(func(t *testing.T, raw []byte) {
		var got, want storage.Record
		err := storage.DecodeRecord(raw, &got)
		wantErr := api.Unmarshal(raw, &want)
		if (err != nil) != (wantErr != nil) || (err == nil && !equal(got, want)) {
			t.Fatalf("%x: decoded %+v, %v; the codec %+v, %v", raw, got, err, want, wantErr)
		}
		checkValue(t, raw, want, wantErr)
	})
}
