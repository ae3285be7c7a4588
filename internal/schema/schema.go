// Package schema owns the description of a tree's record type that Shelf
// stores in its replicated schema registry: which fields a record has,
// under which keys, with which types. Package typed extracts a Definition
// from a Go type by reflection; the state machine checks each new version
// against the tree's earlier ones (Check) before registering it, so an
// incompatible change is refused on every replica alike; tools read
// definitions to show records of any tree without the Go type.
//
// Records are CBOR maps keyed by field name (the codec tag, else the json
// tag, else the Go name), which is what makes adding, dropping and
// reordering fields safe.
//
// A definition is registered as its shape (Definition.Shape), without Go
// names: renaming a Go field under the same key, moving a type to another
// package or renaming it changes nothing stored, so it keeps the version.
// Definitions registered by older code carry Go names; SameShape
// recognises them.
package schema

// Kind is the kind of a field's type, as stored.
type Kind string

// The kinds of stored types.
const (
	KindBool   Kind = "bool"
	KindInt    Kind = "int"   // signed integer of Bits bits
	KindUint   Kind = "uint"  // unsigned integer of Bits bits
	KindFloat  Kind = "float" // float of Bits bits
	KindString Kind = "string"
	KindBytes  Kind = "bytes"  // []byte or [N]byte
	KindTime   Kind = "time"   // time.Time
	KindStruct Kind = "struct" // a record-like map; Ref names it in Definition.Types
	KindSlice  Kind = "slice"  // slice or array of Elem
	KindMap    Kind = "map"    // map of Key to Elem
	KindKey    Kind = "key"    // typed.Key of another tree's type; Ref is that Go type's name
	KindAny    Kind = "any"    // an interface: any CBOR value
	KindCustom Kind = "custom" // a type with its own encoding (a marshaler); Ref is its Go type
)

// Type is the type of a field (or of a slice element, map key or value).
type Type struct {
	Kind     Kind   `codec:"kind" json:"kind"`
	Bits     int    `codec:"bits,omitempty" json:"bits,omitempty"`
	Elem     *Type  `codec:"elem,omitempty" json:"elem,omitempty"` // slice and map values
	Key      *Type  `codec:"key,omitempty" json:"key,omitempty"`   // map keys
	Ref      string `codec:"ref,omitempty" json:"ref,omitempty"`   // struct: its name in Definition.Types; key, custom: a Go type name
	Nullable bool   `codec:"null,omitempty" json:"null,omitempty"` // a pointer: may be null
}

// Field is one field of a struct.
type Field struct {
	Name   string `codec:"name" json:"name"`                 // the key in the stored map
	GoName string `codec:"go,omitempty" json:"go,omitempty"` // the Go field's name, for people; not in a shape
	Type   Type   `codec:"type" json:"type"`
	// ElemKey is set on the fields tagged `shelf:"key"`: together they
	// identify the struct when it is an element of a slice, which is how
	// package typed pairs the elements a writer read with those it writes.
	// Not stored: it concerns the code, not the records.
	ElemKey bool `codec:"-" json:"-"`
}

// Struct is a struct type: its fields in declaration order (embedded
// structs flattened, as the codec encodes them).
type Struct struct {
	Fields []Field `codec:"fields" json:"fields"`
}

// Definition is the stored description of a tree's record type.
type Definition struct {
	// Root names the record's struct type in Types.
	Root string `codec:"root" json:"root"`
	// Types holds every struct type reachable from Root: by Go type name
	// (package path, a dot, name; with type arguments for generic types)
	// as Extract returns them, by "#1" (the root), "#2"... in a shape, as
	// registered.
	Types map[string]Struct `codec:"types" json:"types"`
}
