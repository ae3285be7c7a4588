package typed

import (
	"reflect"
	"sync"

	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/internal/schema"
)

// Defaults of nested structs. A record is decoded into a value prepared
// as if every struct in it had been made by SetDefaults before its fields
// were decoded: structs held in place (T itself, struct fields, arrays of
// structs) get their defaults first, depth first (a struct's own fields
// before the struct, so an outer SetDefaults may override an inner one);
// then, following the stored record, every struct the decoder would create
// (behind a pointer, as a slice element or a map value) is created ahead of
// it with its defaults, and the decoder fills it in place (codec decodes
// into existing pointers, slice elements and map values). A field the
// record lacks so keeps its default, at any depth.

var defaulterType = reflect.TypeFor[Defaulter]()

// defaultsPlan says where the structs that have defaults are in values of
// one Go type; nil for a type without any.
type defaultsPlan struct {
	structs map[reflect.Type]*structDefaults
}

// structDefaults is a struct type with defaults somewhere inside.
type structDefaults struct {
	self   bool             // *S implements Defaulter
	fields []schema.GoField // the fields whose types hold structs with defaults
}

var plans sync.Map // reflect.Type -> *defaultsPlan (nil: none)

// defaultsFor returns the plan of T's defaults, nil if T has none below
// its root.
func defaultsFor(t reflect.Type) *defaultsPlan {
	if p, ok := plans.Load(t); ok {
		return p.(*defaultsPlan)
	}
	p := newDefaultsPlan(t)
	plans.Store(t, p)
	return p
}

func newDefaultsPlan(root reflect.Type) *defaultsPlan {
	// Every struct type stored as fields reachable from root, with the
	// struct types each one's fields reach.
	type node struct {
		fields []schema.GoField
		reach  [][]reflect.Type // per field
	}
	nodes := map[reflect.Type]*node{}
	var reach func(t reflect.Type) []reflect.Type
	var visit func(t reflect.Type)
	reach = func(t reflect.Type) []reflect.Type {
		for {
			switch t.Kind() {
			case reflect.Pointer, reflect.Slice, reflect.Array, reflect.Map:
				t = t.Elem()
				continue
			case reflect.Struct:
				if schema.StoredAsFields(t) {
					visit(t)
					return []reflect.Type{t}
				}
			}
			return nil
		}
	}
	visit = func(t reflect.Type) {
		if _, ok := nodes[t]; ok {
			return
		}
		n := &node{}
		nodes[t] = n
		fields, err := schema.GoFields(t)
		if err != nil {
			return // Open refuses such types; a struct without fields here
		}
		n.fields = fields
		for _, f := range fields {
			n.reach = append(n.reach, reach(f.Type))
		}
	}
	reach(root)
	// A struct needs defaults if it has SetDefaults or reaches one that
	// needs them: iterate to the fixed point (types may be recursive).
	needs := map[reflect.Type]bool{}
	for t := range nodes {
		needs[t] = reflect.PointerTo(t).Implements(defaulterType)
	}
	for changed := true; changed; {
		changed = false
		for t, n := range nodes {
			if needs[t] {
				continue
			}
			for _, r := range n.reach {
				if len(r) > 0 && needs[r[0]] {
					needs[t], changed = true, true
					break
				}
			}
		}
	}
	p := &defaultsPlan{structs: map[reflect.Type]*structDefaults{}}
	for t, n := range nodes {
		if !needs[t] {
			continue
		}
		sd := &structDefaults{self: reflect.PointerTo(t).Implements(defaulterType)}
		for i, f := range n.fields {
			if r := n.reach[i]; len(r) > 0 && needs[r[0]] {
				sd.fields = append(sd.fields, f)
			}
		}
		p.structs[t] = sd
	}
	if len(p.structs) == 0 {
		return nil
	}
	return p
}

// setDefaults gives v (addressable), and the structs it holds in place,
// their defaults, depth first.
func (p *defaultsPlan) setDefaults(v reflect.Value) {
	switch v.Kind() {
	case reflect.Array:
		for i := range v.Len() {
			p.setDefaults(v.Index(i))
		}
	case reflect.Struct:
		sd := p.structs[v.Type()]
		if sd == nil {
			return
		}
		for _, f := range sd.fields {
			if k := f.Type.Kind(); k == reflect.Struct || k == reflect.Array {
				if fv, err := v.FieldByIndexErr(f.Index); err == nil {
					p.setDefaults(fv)
				}
			}
		}
		if sd.self {
			v.Addr().Interface().(Defaulter).SetDefaults()
		}
	}
}

// prepare creates, in v (addressable, holding defaults already), the
// structs with defaults that decoding data into v would create, each with
// its defaults. It stops where data is not what v's type expects: the
// decoder then reports it.
func (p *defaultsPlan) prepare(v reflect.Value, data []byte) {
	switch v.Kind() {
	case reflect.Pointer:
		if len(data) == 1 && data[0] == cborNull {
			return
		}
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
			p.setDefaults(v.Elem())
		}
		p.prepare(v.Elem(), data)
	case reflect.Struct:
		sd := p.structs[v.Type()]
		if sd == nil || len(sd.fields) == 0 {
			return
		}
		items, ok, err := cborItems(data, 5)
		if err != nil || !ok {
			return
		}
		for i := 0; i+1 < len(items); i += 2 {
			name, ok := cborString(items[i])
			if !ok {
				continue
			}
			for _, f := range sd.fields {
				if f.Key == string(name) {
					if fv, ok := fieldAlloc(v, f.Index); ok {
						p.prepare(fv, items[i+1])
					}
					break
				}
			}
		}
	case reflect.Slice, reflect.Array:
		items, ok, err := cborItems(data, 4)
		if err != nil || !ok {
			return
		}
		if v.Kind() == reflect.Slice && v.Len() < len(items) {
			grown := reflect.MakeSlice(v.Type(), len(items), len(items))
			reflect.Copy(grown, v)
			for i := v.Len(); i < len(items); i++ {
				p.setDefaults(grown.Index(i))
			}
			v.Set(grown)
		}
		for i := 0; i < len(items) && i < v.Len(); i++ {
			p.prepare(v.Index(i), items[i])
		}
	case reflect.Map:
		items, ok, err := cborItems(data, 5)
		if err != nil || !ok {
			return
		}
		if v.IsNil() {
			v.Set(reflect.MakeMapWithSize(v.Type(), len(items)/2))
		}
		for i := 0; i+1 < len(items); i += 2 {
			k := reflect.New(v.Type().Key())
			if api.Unmarshal(items[i], k.Interface()) != nil {
				continue
			}
			e := reflect.New(v.Type().Elem()).Elem()
			if old := v.MapIndex(k.Elem()); old.IsValid() {
				e.Set(old)
			} else {
				p.setDefaults(e)
			}
			p.prepare(e, items[i+1])
			v.SetMapIndex(k.Elem(), e)
		}
	}
}

// fieldAlloc returns v's field at index, allocating the embedded struct
// pointers on the way as the decoder does.
func fieldAlloc(v reflect.Value, index []int) (reflect.Value, bool) {
	for i, x := range index {
		if i > 0 && v.Kind() == reflect.Pointer {
			if v.IsNil() {
				if !v.CanSet() {
					return reflect.Value{}, false
				}
				v.Set(reflect.New(v.Type().Elem()))
			}
			v = v.Elem()
		}
		v = v.Field(x)
	}
	return v, v.CanSet()
}
