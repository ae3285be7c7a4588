package client

import (
	"fmt"

	"github.com/shelfdb/shelf/api"
	"github.com/shelfdb/shelf/internal/schema"
)

// Fields returns a record of the local replica (key.Rev 0: the latest
// revision; this client's pending writes included, as Get sees them) as
// plain values, with no Go type needed: the record's fields by name, as
// api.DecodeValue decodes them (nested records and maps as
// map[string]any, non-string map keys formatted, byte strings []byte,
// positive integers uint64 and negative ones int64, times time.Time), so
// encoding/json writes them as they are. It also returns the schema
// version the record was written with, its Value set to the decoded
// definition for JSON; a record written without a schema (version 0)
// comes with the zero Schema.
//
// A missing record or tree answers api.ErrNotFound or api.ErrTreeNotFound;
// a value that is not a CBOR map of fields, or does not decode, is an
// error naming the tree and key.
func (t *Tree) Fields(key api.Key) (map[string]any, api.Schema, error) {
	var (
		fields  map[string]any
		version uint32
		at      api.Key
	)
	err := t.View(key, func(r *Record) error {
		// Decoding copies: nothing kept here points into r.Data.
		at, version = r.Key, r.Schema
		v, err := api.DecodeValue(r.Data)
		if err != nil {
			return fmt.Errorf("record %s/%s: value does not decode: %w", t.name, r.Key, err)
		}
		m, ok := v.(map[string]any)
		if !ok {
			return fmt.Errorf("record %s/%s: value is %s, not a map of fields", t.name, r.Key, kindOf(v))
		}
		fields = m
		return nil
	})
	if err != nil {
		return nil, api.Schema{}, err
	}
	if version == 0 {
		return fields, api.Schema{}, nil
	}
	s, err := t.schemaVersion(version)
	if err != nil {
		return nil, api.Schema{}, fmt.Errorf("record %s/%s: %w", t.name, at, err)
	}
	return fields, s, nil
}

// schemaVersion returns registered version v of the tree's schema from the
// replica, with Value set to the decoded definition.
func (t *Tree) schemaVersion(v uint32) (api.Schema, error) {
	ss, err := t.Schemas()
	if err != nil {
		return api.Schema{}, err
	}
	for _, s := range ss {
		if s.Version != v {
			continue
		}
		if _, err := schema.Decode(s.Definition); err != nil {
			return api.Schema{}, fmt.Errorf("schema version %d of tree %q does not decode: %w", v, t.name, err)
		}
		if s.Value, err = api.DecodeValue(s.Definition); err != nil {
			return api.Schema{}, fmt.Errorf("schema version %d of tree %q does not decode: %w", v, t.name, err)
		}
		return s, nil
	}
	return api.Schema{}, api.Errorf(api.CodeUnknownSchema, "schema version %d of tree %q is not in the replica", v, t.name)
}

// kindOf names the JSON kind of a decoded value for error messages.
func kindOf(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case []any:
		return "an array"
	case map[string]any:
		return "a map"
	case string:
		return "a string"
	case []byte:
		return "a byte string"
	case bool:
		return "a bool"
	case uint64, int64, float32, float64:
		return "a number"
	default:
		return fmt.Sprintf("a %T", v)
	}
}
