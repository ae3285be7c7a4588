package schema

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"sort"
	"strconv"

	"github.com/shelfdb/shelf/api"
)

// Encode returns the canonical CBOR bytes of the definition's shape (see
// Definition.Shape: no Go names), as registered: definitions of the same
// shape encode alike, so their hashes are equal. It refuses an invalid
// definition (see Decode).
func (d Definition) Encode() ([]byte, error) {
	if err := d.validate(); err != nil {
		return nil, fmt.Errorf("schema: invalid definition: %w", err)
	}
	b, err := api.Marshal(d.Shape())
	if err != nil {
		return nil, fmt.Errorf("schema: %w", err)
	}
	return b, nil
}

// Hash returns the hex SHA-256 of an encoded definition, which identifies
// it in the registry.
func Hash(encoded []byte) string {
	sum := sha256.Sum256(encoded)
	return hex.EncodeToString(sum[:])
}

// Decode decodes an encoded definition and checks that it is valid: its
// root and every struct it refers to are in Types, kinds are known, sizes
// are valid, slices and maps have their element (and key) types, and each
// struct's field names are unique and not empty.
func Decode(b []byte) (Definition, error) {
	var d Definition
	if err := api.Unmarshal(b, &d); err != nil {
		return Definition{}, fmt.Errorf("schema: %w", err)
	}
	if err := d.validate(); err != nil {
		return Definition{}, fmt.Errorf("schema: invalid definition: %w", err)
	}
	return d, nil
}

func (d Definition) validate() error {
	if _, ok := d.Types[d.Root]; !ok {
		return fmt.Errorf("root type %q is not defined", d.Root)
	}
	names := make([]string, 0, len(d.Types))
	for name := range d.Types {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		seen := map[string]bool{}
		for i, f := range d.Types[name].Fields {
			switch {
			case f.Name == "":
				return fmt.Errorf("type %s: field %d has no name", name, i)
			case seen[f.Name]:
				return fmt.Errorf("type %s: two fields are named %q", name, f.Name)
			}
			seen[f.Name] = true
			if err := d.validType(f.Type); err != nil {
				return fmt.Errorf("type %s: field %q: %w", name, f.Name, err)
			}
		}
	}
	return nil
}

func (d Definition) validType(t Type) error {
	switch t.Kind {
	case KindBool, KindString, KindBytes, KindTime, KindAny:
	case KindInt, KindUint:
		if !slices.Contains([]int{8, 16, 32, 64}, t.Bits) {
			return fmt.Errorf("%s of %d bits", t.Kind, t.Bits)
		}
	case KindFloat:
		if t.Bits != 32 && t.Bits != 64 {
			return fmt.Errorf("%s of %d bits", t.Kind, t.Bits)
		}
	case KindStruct:
		if _, ok := d.Types[t.Ref]; !ok {
			return fmt.Errorf("struct type %q is not defined", t.Ref)
		}
	case KindKey, KindCustom:
		if t.Ref == "" {
			return fmt.Errorf("%s type without a name", t.Kind)
		}
	case KindSlice, KindMap:
		if t.Elem == nil || t.Kind == KindMap && t.Key == nil {
			return fmt.Errorf("%s without its element or key type", t.Kind)
		}
	default:
		return fmt.Errorf("unknown kind %q", t.Kind)
	}
	for _, sub := range []*Type{t.Key, t.Elem} {
		if sub != nil {
			if err := d.validType(*sub); err != nil {
				return err
			}
		}
	}
	return nil
}

// TypeString formats t for people, like a Go type: "int64", "*string",
// "[]string", "map[string]int64", "struct main.Dims", "key(main.Part)",
// "custom(github.com/google/uuid.UUID)", "bytes", "time", "any".
func (d Definition) TypeString(t Type) string {
	sub := func(t *Type) string {
		if t == nil {
			return "?"
		}
		return d.TypeString(*t)
	}
	var s string
	switch t.Kind {
	case KindInt, KindUint, KindFloat:
		s = string(t.Kind) + strconv.Itoa(t.Bits)
	case KindStruct:
		s = "struct " + t.Ref
	case KindKey, KindCustom:
		s = string(t.Kind) + "(" + t.Ref + ")"
	case KindSlice:
		s = "[]" + sub(t.Elem)
	case KindMap:
		s = "map[" + sub(t.Key) + "]" + sub(t.Elem)
	default:
		s = string(t.Kind)
	}
	if t.Nullable {
		return "*" + s
	}
	return s
}
