// Package api is Shelf's public vocabulary: the types that travel over the
// HTTP API and through the state machine (types.go), the error codes and
// sentinel errors (errors.go), the CBOR codec and JSON bridge for record
// values (codec.go), and Client, a small HTTP client for the API described
// in docs/http-api.md.
package api
