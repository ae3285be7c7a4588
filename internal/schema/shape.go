package schema

import (
	"bytes"
	"strconv"
	"strings"
)

// Shape returns d as stored, which is what identifies a definition: two
// definitions of the same shape describe the same records, whatever the Go
// code that made them calls its types and fields. The shape leaves out
// every Go name: fields have no GoName, struct types are named by the order
// in which a walk from the root (fields in order, depth first) first meets
// them ("#1" is the root, then "#2", ...), and the record type a key
// points to loses its package path ("main.Part" becomes "Part"). Fields
// keep their order. A custom type (one with its own encoding) keeps its
// full Go name: its code defines what is stored, and Check, run by every
// replica (clients of older versions too), compares custom types by that
// name. The shape of a shape is itself.
//
// Fields reached only through struct types that are not reachable from
// the root are dropped, as are those types.
func (d Definition) Shape() Definition {
	out := Definition{Types: map[string]Struct{}}
	names := map[string]string{} // Go name (or earlier shape name) -> shape name
	var visit func(ref string) string
	var shapeType func(t Type) Type
	shapeType = func(t Type) Type {
		s := Type{Kind: t.Kind, Bits: t.Bits, Nullable: t.Nullable}
		switch t.Kind {
		case KindStruct:
			s.Ref = visit(t.Ref)
		case KindKey:
			s.Ref = Unqualify(t.Ref)
		case KindCustom:
			s.Ref = t.Ref
		}
		if t.Key != nil {
			k := shapeType(*t.Key)
			s.Key = &k
		}
		if t.Elem != nil {
			e := shapeType(*t.Elem)
			s.Elem = &e
		}
		return s
	}
	visit = func(ref string) string {
		if name, ok := names[ref]; ok {
			return name
		}
		name := "#" + strconv.Itoa(len(names)+1)
		names[ref] = name
		st, ok := d.Types[ref]
		if !ok {
			return name // an invalid definition: left undefined, as it was
		}
		fields := make([]Field, len(st.Fields))
		for i, f := range st.Fields {
			fields[i] = Field{Name: f.Name, Type: shapeType(f.Type)}
		}
		out.Types[name] = Struct{Fields: fields}
		return name
	}
	out.Root = visit(d.Root)
	return out
}

// SameShape reports whether definitions a and b have the same shape (see
// Definition.Shape), as when a definition registered by older code, with
// Go names, is compared with one made now.
func SameShape(a, b Definition) bool {
	ea, err := a.Shape().Encode()
	if err != nil {
		return false
	}
	eb, err := b.Shape().Encode()
	return err == nil && bytes.Equal(ea, eb)
}

// Unqualify removes the package paths from a Go type name as Extract
// writes them: "github.com/google/uuid.UUID" becomes "UUID",
// "main.Box[main.Dims]" becomes "Box[Dims]".
func Unqualify(name string) string {
	var b strings.Builder
	start := 0
	flush := func(end int) {
		tok := name[start:end]
		if i := strings.LastIndexByte(tok, '.'); i >= 0 && !strings.ContainsAny(tok, " \"") {
			tok = tok[i+1:]
		}
		b.WriteString(tok)
	}
	for i := 0; i < len(name); i++ {
		switch name[i] {
		case '[', ']', ',', '*', '(', ')', '{', '}', ' ', ';':
			flush(i)
			b.WriteByte(name[i])
			start = i + 1
		}
	}
	flush(len(name))
	return b.String()
}
