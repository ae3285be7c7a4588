package schema

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
)

// ErrIncompatible is wrapped by Check's errors: the new definition cannot
// read records written under the tree's earlier versions.
var ErrIncompatible = errors.New("incompatible schema")

// refusal is Check's error: a message that wraps ErrIncompatible.
type refusal string

func (r refusal) Error() string { return string(r) }
func (refusal) Unwrap() error   { return ErrIncompatible }

// maxPathBytes bounds the work of flattening a definition into field paths
// (a definition's structs may share types, so paths can multiply).
const maxPathBytes = 4 << 20

// Check reports whether next may be registered as version len(history)+1
// of tree, given the tree's versions in order (history[0] is version 1).
//
// Each definition is flattened into field paths: "dims.width" for a struct
// field, "parts[]" for a slice element, "stock{}" for a map value. A path
// of the latest version must keep its kind or widen it (int and uint to
// more bits, uint to an int of more bits, float32 to float64); custom types
// must keep their Go type, map keys must stay compatible, nullability may
// change. A path that an earlier version had but the latest has not is the
// key of a dropped field, which must not be reused. New and dropped paths
// are fine, as are renamed Go fields that keep their key.
//
// A refusal wraps ErrIncompatible and lists every problem, by path.
func Check(tree string, history []Definition, next Definition) error {
	refuse := func(problems []string) error {
		return refusal(fmt.Sprintf("schema for tree %q refused: %s", tree, strings.Join(problems, "; ")))
	}
	versions := append(slices.Clip(history), next)
	paths := make([]map[string]Type, len(versions))
	for i, d := range versions {
		var ok bool
		if paths[i], ok = d.paths(); !ok {
			return refuse([]string{fmt.Sprintf("definition of version %d has too many field paths to check", i+1)})
		}
	}
	latest := len(history)
	if latest == 0 {
		return nil
	}
	keys := make([]string, 0, len(paths[latest]))
	for p := range paths[latest] {
		keys = append(keys, p)
	}
	sort.Strings(keys)
	var problems []string
	for _, p := range keys {
		t := paths[latest][p]
		if old, ok := paths[latest-1][p]; ok {
			if !compatible(old, t) {
				problems = append(problems, fmt.Sprintf("field %q changes type from %s (version %d) to %s",
					p, history[latest-1].TypeString(old), latest, next.TypeString(t)))
			}
			continue
		}
		for v := latest - 1; v >= 1; v-- {
			if old, ok := paths[v-1][p]; ok {
				problems = append(problems, fmt.Sprintf("field %q reuses the key of a field dropped after version %d (was %s)",
					p, v, history[v-1].TypeString(old)))
				break
			}
		}
	}
	if problems != nil {
		return refuse(problems)
	}
	return nil
}

// compatible reports whether records holding type o at a path can be read
// as type n. Struct fields, slice elements and map values are compared by
// their own paths.
func compatible(o, n Type) bool {
	switch {
	case o.Kind == KindUint && n.Kind == KindInt:
		return n.Bits > o.Bits
	case o.Kind != n.Kind:
		return false
	case o.Kind == KindInt, o.Kind == KindUint, o.Kind == KindFloat:
		return n.Bits >= o.Bits
	case o.Kind == KindCustom:
		return n.Ref == o.Ref
	case o.Kind == KindMap && o.Key != nil && n.Key != nil:
		return compatible(*o.Key, *n.Key)
	}
	return true
}

// FieldPath is a field of a definition at any depth: Path spells the
// stored keys from the root ("dims.w", "lots[].code", "stock{}.count": a
// slice's elements, a map's values), GoPath the Go field names.
type FieldPath struct {
	Path   string
	GoPath string
	Type   Type
	// Recursive is set on a field whose type leads back to a struct that
	// encloses it: those fields are listed once, higher up, not below it.
	Recursive bool
}

// Fields lists d's fields, depth first in declaration order: a field, then
// the fields inside it (of a struct, a slice's elements, a map's values),
// not descending into a struct already on the way from the root. ok is
// false if the list was cut short, past 4 MiB of paths (a definition can
// reuse its structs to describe exponentially many).
func (d Definition) Fields() (fields []FieldPath, ok bool) {
	ok = d.walk(func(p FieldPath, field bool) {
		if field {
			fields = append(fields, p)
		} else if p.Recursive {
			fields[len(fields)-1].Recursive = true // an element of the field just listed
		}
	})
	return fields, ok
}

// paths maps every path of d to its type: the fields, and the elements of
// slices and values of maps ("lots[]", "stock{}"). It reports false if the
// paths would exceed maxPathBytes.
func (d Definition) paths() (map[string]Type, bool) {
	out := map[string]Type{}
	ok := d.walk(func(p FieldPath, _ bool) { out[p.Path] = p.Type })
	return out, ok
}

// walk visits every path of d depth first, telling fields from slice
// elements and map values, without descending into a struct already on
// the way from the root. It stops, returning false, past maxPathBytes.
func (d Definition) walk(visit func(p FieldPath, field bool)) bool {
	size := 0
	var walkType func(path, goPath string, t Type, field bool, stack []string) bool
	walkStruct := func(ref, prefix, goPrefix string, stack []string) bool {
		for _, f := range d.Types[ref].Fields {
			if !walkType(joinPath(prefix, f.Name), joinGo(goPrefix, f.GoName), f.Type, true, stack) {
				return false
			}
		}
		return true
	}
	walkType = func(path, goPath string, t Type, field bool, stack []string) bool {
		if size += len(path); size > maxPathBytes {
			return false
		}
		recursive := t.Kind == KindStruct && slices.Contains(stack, t.Ref)
		visit(FieldPath{Path: path, GoPath: goPath, Type: t, Recursive: recursive}, field)
		switch {
		case t.Kind == KindStruct && !recursive:
			return walkStruct(t.Ref, path, goPath, append(stack, t.Ref))
		case t.Kind == KindSlice && t.Elem != nil:
			return walkType(path+"[]", goPath+"[]", *t.Elem, false, stack)
		case t.Kind == KindMap && t.Elem != nil:
			return walkType(path+"{}", goPath+"{}", *t.Elem, false, stack)
		}
		return true
	}
	return walkStruct(d.Root, "", "", []string{d.Root})
}
