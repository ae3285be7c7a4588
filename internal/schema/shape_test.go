package schema

import (
	"bytes"
	"reflect"
	"strings"
	"testing"

	"github.com/shelfdb/shelf/api"
)

// The same stored shape in other Go clothes: fields renamed under their
// keys, types renamed.
type (
	Gauge struct {
		W float64 `codec:"width"`
		H float32 `json:"height"`
		D int16   `codec:"Depth"`
	}
	Item struct {
		Label string           `codec:"name"`
		Kids  []Item           `codec:"children"`
		Up    *Item            `codec:"parent"`
		Sizes map[string]Gauge `codec:"sizes"`
	}
	Node2 struct {
		Name     string          `codec:"name"`
		Children []Node2         `codec:"children"`
		Parent   *Node2          `codec:"parent"`
		Sizes    map[string]Dims `codec:"sizes"`
	}
)

// moved returns d as if its struct types lived in package main, and the
// record type its keys point to.
func moved(d Definition) Definition {
	ren := func(s string) string { return strings.ReplaceAll(s, pkg, "main.") }
	var typ func(t Type) Type
	typ = func(t Type) Type {
		if t.Kind != KindCustom {
			t.Ref = ren(t.Ref)
		}
		if t.Elem != nil {
			e := typ(*t.Elem)
			t.Elem = &e
		}
		if t.Key != nil {
			k := typ(*t.Key)
			t.Key = &k
		}
		return t
	}
	out := Definition{Root: ren(d.Root), Types: map[string]Struct{}}
	for name, st := range d.Types {
		fields := make([]Field, len(st.Fields))
		for i, f := range st.Fields {
			fields[i] = Field{Name: f.Name, GoName: f.GoName, Type: typ(f.Type)}
		}
		out.Types[ren(name)] = Struct{Fields: fields}
	}
	return out
}

func TestShapeIgnoresGoNames(t *testing.T) {
	node, item := mustExtract(t, Node2{}), mustExtract(t, Item{})
	part := mustExtract(t, Part{})
	for _, c := range []struct {
		name string
		a, b Definition
	}{
		{"fields and types renamed", node, item},
		{"moved to another package", part, moved(part)},
	} {
		ea, err := c.a.Encode()
		if err != nil {
			t.Fatal(err)
		}
		eb, err := c.b.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(ea, eb) || Hash(ea) != Hash(eb) {
			t.Errorf("%s: encoded differently", c.name)
		}
		if !SameShape(c.a, c.b) {
			t.Errorf("%s: not the same shape", c.name)
		}
		// Registered by older code, with Go names: decoded, it is still
		// recognised, and compatible either way.
		legacy, err := api.Marshal(c.a)
		if err != nil {
			t.Fatal(err)
		}
		old, err := Decode(legacy)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(old, c.a) {
			t.Errorf("%s: a definition with Go names decodes as %+v", c.name, old)
		}
		if !SameShape(old, c.b) {
			t.Errorf("%s: a definition with Go names is not recognised", c.name)
		}
		shape, _ := Decode(eb)
		if err := Check("t", []Definition{old}, shape); err != nil {
			t.Errorf("%s: %v", c.name, err)
		}
		if err := Check("t", []Definition{shape}, old); err != nil {
			t.Errorf("%s: %v", c.name, err)
		}
	}
	enc := string(mustEncode(t, part))
	if strings.Contains(strings.ReplaceAll(enc, pkg+"Money", ""), pkg) || strings.Contains(enc, "DimsP") {
		t.Error("the encoded definition holds Go names other than a custom type's")
	}
	// A different key is a different shape.
	other := mustExtract(t, Node{})
	if SameShape(node, other) {
		t.Error("Node and Node2 (one more field) have the same shape")
	}
	if SameShape(node, Definition{}) {
		t.Error("an invalid definition has a shape")
	}
}

func TestUnqualify(t *testing.T) {
	for in, want := range map[string]string{
		"github.com/google/uuid.UUID":                "UUID",
		"main.Part":                                  "Part",
		"gopkg.in/yaml.v3.Node":                      "Node",
		"a.Box[github.com/x/y.Dims,map[string]*b.C]": "Box[Dims,map[string]*C]",
		`struct { X int "codec:\"x.y\"" }`:           `struct { X int "codec:\"x.y\"" }`,
		"int":                                        "int",
	} {
		if got := Unqualify(in); got != want {
			t.Errorf("Unqualify(%q) = %q, want %q", in, got, want)
		}
	}
}

func mustEncode(t *testing.T, d Definition) []byte {
	t.Helper()
	b, err := d.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}
