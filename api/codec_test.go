package api

import (
	"bytes"
	"encoding/json"
	"reflect"
	"sync"
	"testing"

	"github.com/ugorji/go/codec"
)

// Records holding maps with integer keys decode for tools (formatted keys
// in JSON) and round-trip unchanged through DecodeGeneric.
func TestDecodeIntegerKeyedMaps(t *testing.T) {
	type rec struct {
		Name string            `codec:"name"`
		Bins map[int]string    `codec:"bins"`
		Nest map[string][]byte `codec:"nest"`
	}
	data, err := Marshal(rec{Name: "R1", Bins: map[int]string{3: "c", -1: "z"}, Nest: map[string][]byte{"k": {1}}})
	if err != nil {
		t.Fatal(err)
	}
	v, err := DecodeValue(data)
	if err != nil {
		t.Fatal(err)
	}
	js, _ := json.Marshal(v)
	if want := `{"bins":{"-1":"z","3":"c"},"name":"R1","nest":{"k":"AQ=="}}`; string(js) != want {
		t.Fatalf("JSON view %s, want %s", js, want)
	}
	g, err := DecodeGeneric(data)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := g.(map[string]any); !ok {
		t.Fatalf("record decodes as %T, want map[string]any", g)
	}
	again, err := Marshal(g)
	if err != nil {
		t.Fatal(err)
	}
	var back rec
	if err := Unmarshal(again, &back); err != nil || back.Bins[3] != "c" || back.Bins[-1] != "z" {
		t.Fatalf("round trip through plain values: %+v %v", back, err)
	}
	if _, err := DecodeGeneric(append(data, 0)); err == nil {
		t.Fatal("trailing byte accepted")
	}
	if !reflect.DeepEqual(g.(map[string]any)["name"], "R1") {
		t.Fatalf("name %v", g)
	}
}

// Encoders are reused: concurrent Marshal calls each get their own bytes,
// equal to a fresh encoder's.
func TestMarshalReusesEncodersSafely(t *testing.T) {
	type item struct {
		N    int    `codec:"n"`
		Data []byte `codec:"d"`
	}
	want := make([][]byte, 64)
	for i := range want {
		var b []byte
		if err := codec.NewEncoderBytes(&b, CBOR).Encode(item{N: i, Data: bytes.Repeat([]byte{byte(i)}, i*10)}); err != nil {
			t.Fatal(err)
		}
		want[i] = b
	}
	got := make([][]byte, len(want))
	var wg sync.WaitGroup
	for i := range want {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				b, err := Marshal(item{N: i, Data: bytes.Repeat([]byte{byte(i)}, i*10)})
				if err != nil {
					t.Error(err)
					return
				}
				got[i] = b
			}
		}()
	}
	wg.Wait()
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Errorf("item %d: %x, want %x", i, got[i], want[i])
		}
	}
}

// BenchmarkMarshalCommand measures encoding a write as it travels: a
// struct with a 256-byte value.
func BenchmarkMarshalCommand(b *testing.B) {
	type cmd struct {
		Op   int    `codec:"op"`
		Tree string `codec:"tree"`
		Time int64  `codec:"time"`
		Data []byte `codec:"data"`
	}
	c := cmd{Op: 3, Tree: "bench", Time: 1 << 60, Data: bytes.Repeat([]byte{'x'}, 256)}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Marshal(c); err != nil {
			b.Fatal(err)
		}
	}
}
