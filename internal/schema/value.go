package schema

import (
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"
)

// ErrValue is wrapped by Conform's errors: a value does not fit the
// definition.
var ErrValue = errors.New("value does not match the schema")

// valueError is one problem of a value, at a path.
type valueError struct{ path, msg string }

func (e *valueError) Error() string {
	p := e.path
	if p == "" {
		p = "(the record)"
	}
	return p + ": " + e.msg
}

func (e *valueError) Unwrap() error { return ErrValue }

// Conform checks a record value as decoded from JSON (api.DecodeJSON:
// objects map[string]any, arrays []any, int64, uint64, float64, string,
// bool, nil) against d and returns it ready for api.EncodeValue with the
// types the definition stores: times (RFC 3339 strings in JSON) become
// time.Time, bytes (base64 strings in JSON) []byte, maps with integer keys
// get integer keys. Fields the value leaves out are allowed (they read as
// the zero value); a field the definition does not have is an error, as
// is a value of the wrong kind or out of its integer range. Errors wrap
// ErrValue and name the path ("dims.w", "lots[2].qty", "stock{7}.n"); all
// problems are reported, joined.
func (d Definition) Conform(v any) (any, error) {
	c := conformer{d: d}
	out := c.value(Type{Kind: KindStruct, Ref: d.Root}, v, "")
	if len(c.errs) > 0 {
		return nil, errors.Join(c.errs...)
	}
	return out, nil
}

// conformer walks a value against a definition, collecting problems.
type conformer struct {
	d    Definition
	errs []error
}

func (c *conformer) fail(path, format string, args ...any) any {
	if len(c.errs) < 20 {
		c.errs = append(c.errs, &valueError{path: path, msg: fmt.Sprintf(format, args...)})
	}
	return nil
}

func (c *conformer) value(t Type, v any, path string) any {
	if v == nil {
		switch {
		case t.Nullable, t.Kind == KindSlice, t.Kind == KindMap, t.Kind == KindBytes,
			t.Kind == KindAny, t.Kind == KindCustom:
			return nil
		}
		return c.fail(path, "null, want %s", c.d.TypeString(t))
	}
	switch t.Kind {
	case KindAny, KindCustom:
		return v
	case KindBool:
		if _, ok := v.(bool); !ok {
			return c.fail(path, "%s, want a bool", jsonKind(v))
		}
		return v
	case KindString:
		if _, ok := v.(string); !ok {
			return c.fail(path, "%s, want a string", jsonKind(v))
		}
		return v
	case KindInt, KindUint:
		return c.integer(t, v, path)
	case KindFloat:
		switch n := v.(type) {
		case float64:
			if t.Bits == 32 && math.Abs(n) > math.MaxFloat32 {
				return c.fail(path, "%v is out of the range of float32", n)
			}
			return v
		case int64, uint64:
			return v
		}
		return c.fail(path, "%s, want a number", jsonKind(v))
	case KindTime:
		s, ok := v.(string)
		if !ok {
			return c.fail(path, "%s, want a time as an RFC 3339 string", jsonKind(v))
		}
		tm, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return c.fail(path, "%q is not an RFC 3339 time such as 2026-11-24T12:00:00Z", s)
		}
		return tm
	case KindBytes:
		s, ok := v.(string)
		if !ok {
			return c.fail(path, "%s, want bytes as a base64 string", jsonKind(v))
		}
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return c.fail(path, "not base64: %v", err)
		}
		return b
	case KindKey:
		m, ok := v.(map[string]any)
		if !ok {
			return c.fail(path, "%s, want a key {\"id\": N, \"rev\": N}", jsonKind(v))
		}
		for k := range m {
			if k != "id" && k != "rev" {
				c.fail(joinPath(path, k), "a key has only id and rev")
			}
		}
		out := map[string]any{}
		if id, ok := m["id"]; ok {
			out["id"] = c.integer(Type{Kind: KindUint, Bits: 64}, id, joinPath(path, "id"))
		}
		if rev, ok := m["rev"]; ok {
			out["rev"] = c.integer(Type{Kind: KindUint, Bits: 32}, rev, joinPath(path, "rev"))
		}
		return out
	case KindSlice:
		a, ok := v.([]any)
		if !ok {
			return c.fail(path, "%s, want an array", jsonKind(v))
		}
		out := make([]any, len(a))
		for i, e := range a {
			out[i] = c.value(*t.Elem, e, path+"["+strconv.Itoa(i)+"]")
		}
		return out
	case KindMap:
		m, ok := v.(map[string]any)
		if !ok {
			return c.fail(path, "%s, want an object", jsonKind(v))
		}
		return c.mapValue(t, m, path)
	case KindStruct:
		m, ok := v.(map[string]any)
		if !ok {
			return c.fail(path, "%s, want an object", jsonKind(v))
		}
		s, ok := c.d.Types[t.Ref]
		if !ok {
			return c.fail(path, "the schema has no struct %q", t.Ref)
		}
		out := make(map[string]any, len(m))
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		slices.Sort(keys) // errors in a stable order
		for _, k := range keys {
			i := slices.IndexFunc(s.Fields, func(f Field) bool { return f.Name == k })
			if i < 0 {
				c.fail(joinPath(path, k), "no such field in the schema")
				continue
			}
			out[k] = c.value(s.Fields[i].Type, m[k], joinPath(path, k))
		}
		return out
	}
	return c.fail(path, "unknown kind %q in the schema", t.Kind)
}

// mapValue conforms a JSON object that stands for a map: its keys are
// strings in JSON, parsed to integers for integer-keyed maps.
func (c *conformer) mapValue(t Type, m map[string]any, path string) any {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	kt := Type{Kind: KindString}
	if t.Key != nil {
		kt = *t.Key
	}
	switch kt.Kind {
	case KindInt, KindUint:
		out := make(map[any]any, len(m))
		for _, k := range keys {
			p := path + "{" + k + "}"
			var key any
			if kt.Kind == KindInt {
				n, err := strconv.ParseInt(k, 10, bitsOr64(kt.Bits))
				if err != nil {
					c.fail(p, "key %q is not an int%d", k, bitsOr64(kt.Bits))
					continue
				}
				key = n
			} else {
				n, err := strconv.ParseUint(k, 10, bitsOr64(kt.Bits))
				if err != nil {
					c.fail(p, "key %q is not a uint%d", k, bitsOr64(kt.Bits))
					continue
				}
				key = n
			}
			out[key] = c.value(*t.Elem, m[k], p)
		}
		return out
	case KindString, KindAny:
		out := make(map[string]any, len(m))
		for _, k := range keys {
			out[k] = c.value(*t.Elem, m[k], path+"{"+k+"}")
		}
		return out
	}
	return c.fail(path, "maps keyed by %s cannot be written from JSON", c.d.TypeString(kt))
}

// integer checks a JSON number against an integer type.
func (c *conformer) integer(t Type, v any, path string) any {
	bits := bitsOr64(t.Bits)
	switch n := v.(type) {
	case int64:
		if t.Kind == KindUint {
			if n < 0 {
				return c.fail(path, "%d is negative, want a uint%d", n, bits)
			}
			if bits < 64 && uint64(n) >= 1<<bits {
				return c.fail(path, "%d is out of the range of uint%d", n, bits)
			}
			return v
		}
		if bits < 64 && (n < -(1<<(bits-1)) || n >= 1<<(bits-1)) {
			return c.fail(path, "%d is out of the range of int%d", n, bits)
		}
		return v
	case uint64:
		if t.Kind == KindInt || bits < 64 {
			return c.fail(path, "%d is out of the range of %s%d", n, t.Kind, bits)
		}
		return v
	case float64:
		return c.fail(path, "%v is not a whole number, want %s%d", n, t.Kind, bits)
	}
	return c.fail(path, "%s, want %s%d", jsonKind(v), t.Kind, bits)
}

func bitsOr64(bits int) int {
	if bits <= 0 || bits > 64 {
		return 64
	}
	return bits
}

// jsonKind names the JSON kind of a decoded value, for errors.
func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a bool"
	case string:
		return "a string"
	case int64, uint64, float64:
		return "a number"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("a %T", v)
}
