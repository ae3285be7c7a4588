package schema

import (
	"encoding"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ugorji/go/codec"
)

// KeyRef is implemented by types stored as the key of a record of another
// tree (package typed's Key[T]); SchemaKeyRef returns the name of that
// record's Go type. Extract calls it on the zero value.
type KeyRef interface{ SchemaKeyRef() string }

var (
	timeType           = reflect.TypeFor[time.Time]()
	byteType           = reflect.TypeFor[byte]()
	keyRefType         = reflect.TypeFor[KeyRef]()
	selferType         = reflect.TypeFor[codec.Selfer]()
	binaryMarshaler    = reflect.TypeFor[encoding.BinaryMarshaler]()
	binaryUnmarshaler  = reflect.TypeFor[encoding.BinaryUnmarshaler]()
	missingFielderType = reflect.TypeFor[codec.MissingFielder]()
)

// Extract returns the definition of records of the struct type t, with the
// fields under the keys that api.CBOR (ugorji codec v1.3.2) encodes them
// with. It refuses types that are not structs, types encoded other than as
// a map of fields, and fields whose types cannot be stored.
func Extract(t reflect.Type) (Definition, error) {
	if t == nil || t.Kind() != reflect.Struct {
		return Definition{}, fmt.Errorf("schema: %v is not a struct type", t)
	}
	x := extractor{types: map[string]Struct{}, names: map[string]reflect.Type{}}
	root, err := x.typeOf(t, "", "")
	if err != nil {
		return Definition{}, fmt.Errorf("schema of %v: %w", t, err)
	}
	if root.Kind != KindStruct {
		return Definition{}, fmt.Errorf("schema: %v is stored as %s, not as a map of fields", t, Definition{}.TypeString(root))
	}
	d := Definition{Root: root.Ref, Types: x.types}
	if err := d.validate(); err != nil {
		return Definition{}, fmt.Errorf("schema of %v: %w", t, err)
	}
	return d, nil
}

type extractor struct {
	types map[string]Struct
	names map[string]reflect.Type // struct types by name: seen or being extracted
}

// typeOf returns the stored type of Go type t, found at field path (with
// Go names goPath) for error messages.
func (x *extractor) typeOf(t reflect.Type, path, goPath string) (Type, error) {
	nullable := false
	for t.Kind() == reflect.Pointer {
		t, nullable = t.Elem(), true
	}
	typ, err := x.baseType(t, path, goPath)
	typ.Nullable = nullable
	return typ, err
}

// baseType checks Shelf's KeyRef first, then as codec's encFnLoad does:
// time is builtin, then a type's own methods (codec.Selfer, or for a binary
// handle encoding.BinaryMarshaler with BinaryUnmarshaler, on T or *T), then
// its kind. Interfaces encode their dynamic value.
func (x *extractor) baseType(t reflect.Type, path, goPath string) (Type, error) {
	switch {
	case t.Kind() == reflect.Interface:
		return Type{Kind: KindAny}, nil
	case implements(t, keyRefType):
		ref, err := keyRef(t)
		if err != nil {
			return Type{}, fail(path, goPath, "%w", err)
		}
		return Type{Kind: KindKey, Ref: ref}, nil
	case t == timeType:
		return Type{Kind: KindTime}, nil
	case implements(t, selferType) || implements(t, binaryMarshaler) && implements(t, binaryUnmarshaler):
		return Type{Kind: KindCustom, Ref: typeName(t)}, nil
	}
	switch t.Kind() {
	case reflect.Bool:
		return Type{Kind: KindBool}, nil
	case reflect.Int: // 64 bits on every platform
		return Type{Kind: KindInt, Bits: 64}, nil
	case reflect.Uint, reflect.Uintptr:
		return Type{Kind: KindUint, Bits: 64}, nil
	case reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return Type{Kind: KindInt, Bits: t.Bits()}, nil
	case reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return Type{Kind: KindUint, Bits: t.Bits()}, nil
	case reflect.Float32, reflect.Float64:
		return Type{Kind: KindFloat, Bits: t.Bits()}, nil
	case reflect.String:
		return Type{Kind: KindString}, nil
	case reflect.Slice, reflect.Array:
		if t.Elem() == byteType { // only byte itself: codec encodes []MyByte as an array
			return Type{Kind: KindBytes}, nil
		}
		elem, err := x.typeOf(t.Elem(), path+"[]", goPath+"[]")
		return Type{Kind: KindSlice, Elem: &elem}, err
	case reflect.Map:
		key, err := x.typeOf(t.Key(), path+"{}", goPath+"{}")
		if err != nil {
			return Type{}, err
		}
		if !slices.Contains([]Kind{KindString, KindBool, KindInt, KindUint, KindCustom, KindKey}, key.Kind) || key.Nullable {
			return Type{}, fail(path, goPath, "map key type %v cannot be stored (keys must be strings, bools, integers, keys or custom types)", t.Key())
		}
		elem, err := x.typeOf(t.Elem(), path+"{}", goPath+"{}")
		return Type{Kind: KindMap, Key: &key, Elem: &elem}, err
	case reflect.Struct:
		name, err := x.structType(t, path, goPath)
		return Type{Kind: KindStruct, Ref: name}, err
	}
	return Type{}, fail(path, goPath, "type %v cannot be stored", t) // chan, func, complex, unsafe.Pointer
}

// structType adds struct type t to x.types (once) and returns its name.
func (x *extractor) structType(t reflect.Type, path, goPath string) (string, error) {
	name := typeName(t)
	if prev, ok := x.names[name]; ok {
		if prev != t {
			return "", fail(path, goPath, "two different struct types are named %s", name)
		}
		return name, nil // done, or being done higher up: a recursive type
	}
	x.names[name] = t
	if f, ok := t.FieldByName("_struct"); ok { // codec's per-type options
		keys := "string"
		for _, opt := range strings.Split(structTag(f.Tag), ",")[1:] {
			switch opt {
			case "toarray":
				return "", fail(path, goPath, "type %s is encoded as an array (_struct tag toarray)", name)
			case "int", "uint", "float", "string":
				keys = opt
			}
		}
		if keys != "string" {
			return "", fail(path, goPath, "type %s is encoded with %s keys (_struct tag)", name, keys)
		}
	}
	if implements(t, missingFielderType) {
		return "", fail(path, goPath, "type %s adds keys of its own (codec.MissingFielder)", name)
	}
	s := Struct{Fields: []Field{}}
	fields, err := codecFields(t)
	if err != nil {
		return "", fail(path, goPath, "%w", err)
	}
	for _, f := range fields {
		typ, err := x.typeOf(f.Type, joinPath(path, f.key), joinGo(goPath, f.Name))
		if err != nil {
			return "", err
		}
		elemKey := false
		switch opt := f.Tag.Get("shelf"); opt {
		case "":
		case "key":
			elemKey = true
		default:
			return "", fail(joinPath(path, f.key), joinGo(goPath, f.Name), "unknown shelf tag %q (want \"key\")", opt)
		}
		s.Fields = append(s.Fields, Field{Name: f.key, GoName: f.Name, Type: typ, ElemKey: elemKey})
	}
	x.types[name] = s
	return name, nil
}

type codecField struct {
	reflect.StructField
	key    string // the key in the encoded map
	depth  int    // of embedding
	index  []int  // the index sequence from the outer struct, for FieldByIndex
	goPath string // the Go selector from the outer struct: "Base.ID"
}

// ErrDuplicateKey is wrapped by Extract's errors about two fields under
// one key, of which codec would store only one.
var ErrDuplicateKey = errors.New("two fields under one key")

// codecFields lists the fields of struct t that codec encodes, in
// declaration order with embedded structs flattened, mirroring codec's
// TypeInfos.rget and typeInfo.resolve (v1.3.2). Where codec would drop a
// field, it returns an error instead: two fields with the same key (codec
// keeps the shallowest, and of those the first; Go's encoding/json would
// drop them all), or a struct embedded a third time on one path (codec
// inlines a struct type at most twice and ignores the rest).
func codecFields(t reflect.Type) ([]codecField, error) {
	var all []codecField
	var skipped []codecField      // embedded structs codec does not inline
	embedded := []reflect.Type{t} // codec inlines a struct type at most twice
	var collect func(t reflect.Type, depth int, index []int, goPath string)
	collect = func(t reflect.Type, depth int, index []int, goPath string) {
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() && !f.Anonymous {
				continue
			}
			tag := structTag(f.Tag)
			if tag == "-" {
				continue
			}
			key, _, _ := strings.Cut(tag, ",")
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			idx := append(slices.Clip(index), i)
			if f.Anonymous && f.Type.Kind() != reflect.Interface {
				isPtr, isStruct := f.Type.Kind() == reflect.Pointer, ft.Kind() == reflect.Struct
				if !f.IsExported() && (!isStruct || isPtr) {
					continue
				}
				if key == "" && isStruct {
					n := 0
					for _, e := range embedded {
						if e == ft {
							n++
						}
					}
					if n < 2 {
						embedded = append(embedded, ft)
						collect(ft, depth+1, idx, joinGo(goPath, f.Name))
					} else if hasFields(ft) {
						skipped = append(skipped, codecField{StructField: f, goPath: joinGo(goPath, f.Name)})
					}
					continue
				}
			}
			if !f.IsExported() {
				continue
			}
			if key == "" {
				key = f.Name
			}
			all = append(all, codecField{f, key, depth, idx, joinGo(goPath, f.Name)})
		}
	}
	collect(t, 0, nil, "")
	if len(skipped) > 0 {
		return nil, fmt.Errorf("type %s embeds %s a third time (at %s): codec inlines a struct type at most twice and would never store its fields",
			typeName(t), skipped[0].Type, skipped[0].goPath)
	}
	first := map[string]int{}
	var out []codecField
	for i, f := range all {
		j, dup := first[f.key]
		if !dup {
			first[f.key] = i
			out = append(out, f)
			continue
		}
		keep := all[j] // codec keeps the shallowest, and of those the first
		if f.depth < keep.depth {
			keep = f
		}
		return nil, fmt.Errorf("type %s: fields %s and %s both have the key %q, and codec would store only %s: %w",
			typeName(t), all[j].goPath, f.goPath, f.key, keep.goPath, ErrDuplicateKey)
	}
	return out, nil
}

// hasFields reports whether codec could encode any field of struct t.
func hasFields(t reflect.Type) bool {
	for i := range t.NumField() {
		if f := t.Field(i); (f.IsExported() || f.Anonymous) && structTag(f.Tag) != "-" {
			return true
		}
	}
	return false
}

// structTag is codec's: the codec tag if not empty, else the json tag.
func structTag(tag reflect.StructTag) string {
	if s := tag.Get("codec"); s != "" {
		return s
	}
	return tag.Get("json")
}

// implements reports whether t or *t implements interface i, which is
// what codec checks for its marshaling interfaces.
func implements(t, i reflect.Type) bool {
	return t.Implements(i) || reflect.PointerTo(t).Implements(i)
}

func keyRef(t reflect.Type) (ref string, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%v.SchemaKeyRef panicked: %v", t, r)
		}
	}()
	if ref = reflect.New(t).Interface().(KeyRef).SchemaKeyRef(); ref == "" {
		return "", fmt.Errorf("%v.SchemaKeyRef returned no type name", t)
	}
	return ref, nil
}

// typeName is the name of t in Definition.Types and Type.Ref.
func typeName(t reflect.Type) string {
	if t.Name() != "" && t.PkgPath() != "" {
		return t.PkgPath() + "." + t.Name()
	}
	return t.String()
}

// fail returns an error about the field at path, or about the root type
// if path is empty.
func fail(path, goPath, format string, args ...any) error {
	err := fmt.Errorf(format, args...)
	if path == "" {
		return err
	}
	return fmt.Errorf("field %q (%s): %w", path, goPath, err)
}

// joinPath appends a key to a field path; keys that could be taken for
// path syntax are quoted, which keeps paths unambiguous.
func joinPath(path, key string) string {
	if key == "" || strings.ContainsAny(key, `.[]{}"`) {
		key = strconv.Quote(key)
	}
	if path == "" {
		return key
	}
	return path + "." + key
}

func joinGo(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// GoField is a field of a Go struct type as codec encodes it.
type GoField struct {
	Key   string       // the key in the encoded map
	Index []int        // for reflect.Value.FieldByIndex, through embedded structs
	Type  reflect.Type // the field's Go type
}

// GoFields lists the fields of struct type t that codec encodes, as
// Extract sees them (embedded structs flattened), with the same refusals.
func GoFields(t reflect.Type) ([]GoField, error) {
	if t == nil || t.Kind() != reflect.Struct {
		return nil, fmt.Errorf("schema: %v is not a struct type", t)
	}
	fields, err := codecFields(t)
	if err != nil {
		return nil, err
	}
	out := make([]GoField, len(fields))
	for i, f := range fields {
		out[i] = GoField{Key: f.key, Index: f.index, Type: f.Type}
	}
	return out, nil
}

// StoredAsFields reports whether values of Go type t are stored as a map
// of their fields (a struct that is not a time, a key or a type with its
// own encoding), which is what Extract describes as KindStruct.
func StoredAsFields(t reflect.Type) bool {
	return t.Kind() == reflect.Struct && !implements(t, keyRefType) && t != timeType &&
		!implements(t, selferType) && !(implements(t, binaryMarshaler) && implements(t, binaryUnmarshaler))
}
