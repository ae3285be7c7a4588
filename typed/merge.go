package typed

import (
	"bytes"
	"errors"
	"fmt"
	"slices"

	"github.com/shelfdb/shelf/internal/schema"
)

// merge keeps what old code cannot see when it writes back a record it
// read. old is the stored record's CBOR (of any schema version, possibly
// empty for none); new is the CBOR of the writer's Go value, whose type def
// describes. The result is new plus every map entry of old whose key is a
// string (the decoder misreads other keys of a struct) but not a field of
// the corresponding struct of def, carried byte for byte, at any depth: the
// values of a known field whose type holds structs are merged (structs,
// pointers to structs, slices and maps of them, nested); any other value, a
// null new value, or a value of another shape than expected on either side
// is taken from new. Maps merged into have their entries sorted by encoded
// key bytes. If nothing is carried, new itself is returned.
//
// Map values are paired by equal encoded keys. Elements of a slice of a
// struct type with key fields (tagged `shelf:"key"` in the writer's Go
// type, schema.Field.ElemKey) are paired by key: each new element takes
// the first unused old element whose key fields hold the same values; one
// without (a new element, or an old one lacking a key field) gets nothing.
// Other slice elements cannot be paired exactly, since the writer may have
// reordered, inserted or deleted elements; the rule, and the limitation of
// the approach, is: each new
// element, in order, takes the first unused old element whose known
// projection (only the fields def knows, recursively, entries sorted by
// encoded key) equals its own, that is the element it read and did not
// change; then each struct element left without one takes the unused old
// element with which it shares the most known field values (at least one;
// ties go to the nearest index), the element it read and edited; then each
// element still without one takes the unused old element at its own index,
// if any, else nothing is carried into it. So an element whose every known
// field was edited may receive the unknown fields of another element or
// lose its own.
func merge(def *schema.Definition, old, new []byte) ([]byte, error) {
	if def == nil {
		return nil, errors.New("typed: merge: no definition")
	}
	if err := cborValid(new); err != nil {
		return nil, fmt.Errorf("typed: merge: new record: %w", err)
	}
	if len(old) == 0 {
		return new, nil
	}
	if err := cborValid(old); err != nil {
		return nil, fmt.Errorf("typed: merge: stored record: %w", err)
	}
	m := merger{def}
	out, carried, err := m.value(&schema.Type{Kind: schema.KindStruct, Ref: def.Root}, old, new)
	if err != nil {
		return nil, err
	}
	if !carried {
		return new, nil
	}
	return out, nil
}

type merger struct{ def *schema.Definition }

// holdsStruct reports whether values of t may hold structs to merge.
func holdsStruct(t *schema.Type) bool {
	for ; t != nil; t = t.Elem {
		switch t.Kind {
		case schema.KindStruct:
			return true
		case schema.KindSlice, schema.KindMap:
		default:
			return false
		}
	}
	return false
}

func (m merger) structOf(t *schema.Type) (schema.Struct, error) {
	st, ok := m.def.Types[t.Ref]
	if !ok {
		return st, fmt.Errorf("typed: merge: type %q is not in the definition", t.Ref)
	}
	return st, nil
}

// value merges old into new, both values of type t; carried reports
// whether anything was, else out is new.
func (m merger) value(t *schema.Type, old, new []byte) (out []byte, carried bool, err error) {
	if !holdsStruct(t) || len(new) == 1 && new[0] == cborNull {
		return new, false, nil
	}
	major := byte(5)
	if t.Kind == schema.KindSlice {
		major = 4
	}
	nkv, ok, err := cborItems(new, major)
	if err != nil || !ok {
		return new, false, err
	}
	if major == 5 {
		// A map with a key twice reads back as either value depending on
		// the order the merge writes it in: refuse it (the encoder never
		// writes one).
		seen := make(map[string]bool, len(nkv)/2)
		for i := 0; i < len(nkv); i += 2 {
			if seen[string(nkv[i])] {
				return nil, false, fmt.Errorf("%w: map key %x twice", errCBORSyntax, nkv[i])
			}
			seen[string(nkv[i])] = true
		}
	}
	okv, ok, err := cborItems(old, major)
	if err != nil || !ok || len(okv) == 0 {
		return new, false, err
	}
	switch t.Kind {
	case schema.KindStruct:
		st, err := m.structOf(t)
		if err != nil {
			return nil, false, err
		}
		n := len(nkv)
		for i := 0; i < n; i += 2 {
			f := knownField(st, nkv[i])
			if f == nil || !holdsStruct(&f.Type) {
				continue
			}
			if o := entryValue(okv, nkv[i]); o != nil {
				if nkv[i+1], ok, err = m.value(&f.Type, o, nkv[i+1]); err != nil {
					return nil, false, err
				}
				carried = carried || ok
			}
		}
		for i := 0; i < len(okv); i += 2 {
			// Only string keys can name fields; the decoder misreads others.
			if _, ok := cborString(okv[i]); ok && knownField(st, okv[i]) == nil && entryValue(nkv[:n], okv[i]) == nil {
				nkv, carried = append(nkv, okv[i], okv[i+1]), true
			}
		}
	case schema.KindMap:
		byKey := make(map[string][]byte, len(okv)/2)
		for i := len(okv) - 2; i >= 0; i -= 2 { // the first of equal keys wins
			byKey[string(okv[i])] = okv[i+1]
		}
		for i := 0; i < len(nkv); i += 2 {
			if o := byKey[string(nkv[i])]; o != nil {
				if nkv[i+1], ok, err = m.value(t.Elem, o, nkv[i+1]); err != nil {
					return nil, false, err
				}
				carried = carried || ok
			}
		}
	default: // a slice
		match, err := m.match(t.Elem, okv, nkv)
		if err != nil {
			return nil, false, err
		}
		for i, j := range match {
			if j >= 0 {
				if nkv[i], ok, err = m.value(t.Elem, okv[j], nkv[i]); err != nil {
					return nil, false, err
				}
				carried = carried || ok
			}
		}
		if carried {
			return cborArrayOf(nkv), true, nil
		}
	}
	if !carried {
		return new, false, nil
	}
	return cborMapOf(nkv), true, nil
}

// match pairs slice elements as merge documents: match[i] is the index in
// old of the element paired with new[i], or -1.
func (m merger) match(t *schema.Type, old, new [][]byte) ([]int, error) {
	if t.Kind == schema.KindStruct {
		st, err := m.structOf(t)
		if err != nil {
			return nil, err
		}
		if slices.ContainsFunc(st.Fields, func(f schema.Field) bool { return f.ElemKey }) {
			return m.matchByKey(st, old, new)
		}
	}
	unused := make(map[string][]int, len(old)) // old indexes by projection
	var p []byte
	var err error
	for j, o := range old {
		if p, err = m.project(t, o, p[:0]); err != nil {
			return nil, err
		}
		unused[string(p)] = append(unused[string(p)], j)
	}
	used, match := make([]bool, len(old)), make([]int, len(new))
	for i, n := range new {
		if p, err = m.project(t, n, p[:0]); err != nil {
			return nil, err
		}
		match[i] = -1
		if js := unused[string(p)]; len(js) > 0 {
			match[i], used[js[0]], unused[string(p)] = js[0], true, js[1:]
		}
	}
	// An element edited (and perhaps moved) keeps most of its fields: pair
	// it with the unused old element sharing the most field values.
	if t.Kind == schema.KindStruct {
		oldFields := make([]map[int]string, len(old))
		for i, n := range new {
			if match[i] >= 0 {
				continue
			}
			nf, err := m.fieldValues(t, n)
			if err != nil {
				return nil, err
			}
			best, bestN := -1, 0
			for j := range old {
				if used[j] {
					continue
				}
				if oldFields[j] == nil {
					if oldFields[j], err = m.fieldValues(t, old[j]); err != nil {
						return nil, err
					}
				}
				same := 0
				for f, v := range nf {
					if ov, ok := oldFields[j][f]; ok && ov == v {
						same++
					}
				}
				if same > bestN || (same == bestN && same > 0 && abs(j-i) < abs(best-i)) {
					best, bestN = j, same
				}
			}
			if best >= 0 {
				match[i], used[best] = best, true
			}
		}
	}
	for i := range match {
		if match[i] < 0 && i < len(old) && !used[i] {
			match[i], used[i] = i, true
		}
	}
	return match, nil
}

// matchByKey pairs struct elements by their key fields (see merge): each
// new element takes the first unused old element with the same key.
func (m merger) matchByKey(st schema.Struct, old, new [][]byte) ([]int, error) {
	unused := make(map[string][]int, len(old))
	for j, o := range old {
		k, ok, err := m.elemKey(st, o)
		if err != nil {
			return nil, err
		}
		if ok {
			unused[k] = append(unused[k], j)
		}
	}
	match := make([]int, len(new))
	for i, n := range new {
		match[i] = -1
		k, ok, err := m.elemKey(st, n)
		if err != nil {
			return nil, err
		}
		if js := unused[k]; ok && len(js) > 0 {
			match[i], unused[k] = js[0], js[1:]
		}
	}
	return match, nil
}

// elemKey returns the key of v, a struct value of st: the known
// projections of its key fields, in order. ok is false if v is not a map
// or lacks one of them.
func (m merger) elemKey(st schema.Struct, v []byte) (key string, ok bool, err error) {
	items, isMap, err := cborItems(v, 5)
	if err != nil || !isMap {
		return "", false, err
	}
	var k []byte
	for f := range st.Fields {
		if !st.Fields[f].ElemKey {
			continue
		}
		found := false
		for i := 0; i+1 < len(items); i += 2 {
			if knownFieldIndex(st, items[i]) == f {
				if k, err = m.project(&st.Fields[f].Type, items[i+1], k); err != nil {
					return "", false, err
				}
				found = true
				break
			}
		}
		if !found {
			return "", false, nil
		}
	}
	return string(k), true, nil
}

// fieldValues returns the known fields of v, a struct value of type t, by
// field index, each as its known projection.
func (m merger) fieldValues(t *schema.Type, v []byte) (map[int]string, error) {
	st, err := m.structOf(t)
	if err != nil {
		return nil, err
	}
	items, ok, err := cborItems(v, 5)
	if err != nil || !ok {
		return map[int]string{}, err
	}
	out := make(map[int]string, len(items)/2)
	for i := 0; i < len(items); i += 2 {
		if f := knownFieldIndex(st, items[i]); f >= 0 {
			p, err := m.project(&st.Fields[f].Type, items[i+1], nil)
			if err != nil {
				return nil, err
			}
			out[f] = string(p)
		}
	}
	return out, nil
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}

// project appends to dst the known projection of v, a value of type t, a
// normalized form of what the writer's Go value holds of it: a struct
// becomes an indefinite-length map of only the fields def knows, keyed by
// their index, in def's order; a map its projected entries sorted by
// encoded key; recursively. Other values are kept as they are.
func (m merger) project(t *schema.Type, v, dst []byte) ([]byte, error) {
	if !holdsStruct(t) {
		return append(dst, v...), nil
	}
	major := byte(5)
	if t.Kind == schema.KindSlice {
		major = 4
	}
	items, ok, err := cborItems(v, major)
	if err != nil || !ok {
		return append(dst, v...), err
	}
	switch t.Kind {
	case schema.KindStruct:
		st, err := m.structOf(t)
		if err != nil {
			return nil, err
		}
		type known struct {
			i int
			v []byte
		}
		var buf [16]known
		fields := buf[:0]
		for i := 0; i < len(items); i += 2 {
			if f := knownFieldIndex(st, items[i]); f >= 0 {
				fields = append(fields, known{f, items[i+1]})
			}
		}
		slices.SortStableFunc(fields, func(a, b known) int { return a.i - b.i })
		dst = append(dst, 0xbf)
		for _, f := range fields {
			if dst, err = m.project(&st.Fields[f.i].Type, f.v, cborAppendHead(dst, 0, uint64(f.i))); err != nil {
				return nil, err
			}
		}
		return append(dst, cborBreak), nil
	case schema.KindMap:
		for i := 1; i < len(items); i += 2 {
			if items[i], err = m.project(t.Elem, items[i], nil); err != nil {
				return nil, err
			}
		}
		return append(dst, cborMapOf(items)...), nil
	}
	dst = cborAppendHead(dst, 4, uint64(len(items)))
	for _, it := range items {
		if dst, err = m.project(t.Elem, it, dst); err != nil {
			return nil, err
		}
	}
	return dst, nil
}

// knownFieldIndex returns the index in st of the field named by the encoded
// key, or -1. Like the decoder, it takes a byte string for a name as well as
// a text string.
func knownFieldIndex(st schema.Struct, key []byte) int {
	if name, ok := cborString(key); ok {
		for i := range st.Fields {
			if st.Fields[i].Name == string(name) {
				return i
			}
		}
	}
	return -1
}

// knownField returns the field of st named by the encoded key, or nil.
func knownField(st schema.Struct, key []byte) *schema.Field {
	if i := knownFieldIndex(st, key); i >= 0 {
		return &st.Fields[i]
	}
	return nil
}

// entryValue returns the value of the first entry of kv (keys and values
// alternating) whose key equals key, as encoded or as a string, or nil.
func entryValue(kv [][]byte, key []byte) []byte {
	name, isString := cborString(key)
	for i := 0; i+1 < len(kv); i += 2 {
		if bytes.Equal(kv[i], key) {
			return kv[i+1]
		}
		if s, ok := cborString(kv[i]); ok && isString && bytes.Equal(s, name) {
			return kv[i+1]
		}
	}
	return nil
}
