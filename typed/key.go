package typed

import (
	"reflect"

	"github.com/shelfdb/shelf/api"
)

// Key identifies a record of a tree of T: an id and a revision. The type
// parameter makes keys of different trees different types, so a Key[Part]
// passed where a Key[Board] is expected does not compile. Records can hold
// keys of other trees (a Board holds []Key[Part]); a key is stored as a
// map {"id", "rev"}.
type Key[T any] struct {
	ID  uint64 `codec:"id" json:"id"`
	Rev uint32 `codec:"rev" json:"rev"` // 0: the latest revision, where an API accepts it
}

// KeyOf types an untyped key.
func KeyOf[T any](k api.Key) Key[T] { return Key[T]{ID: k.ID, Rev: k.Rev} }

// Untyped returns the key without its type.
func (k Key[T]) Untyped() api.Key { return api.Key{ID: k.ID, Rev: k.Rev} }

// String formats the key as "ID/REV".
func (k Key[T]) String() string { return k.Untyped().String() }

// IsZero reports whether the key is the zero key (no record).
func (k Key[T]) IsZero() bool { return k.ID == 0 }

// Latest returns the key that names the latest revision of the record.
func (k Key[T]) Latest() Key[T] { return Key[T]{ID: k.ID} }

// SchemaKeyRef tells schema extraction which record type the key points
// to (the name of T).
func (k Key[T]) SchemaKeyRef() string { return typeName(reflect.TypeFor[T]()) }

func typeName(t reflect.Type) string {
	if t.Name() != "" && t.PkgPath() != "" {
		return t.PkgPath() + "." + t.Name()
	}
	return t.String()
}
