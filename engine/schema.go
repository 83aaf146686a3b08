package engine

import _ "embed" // handlers.schema.json

// schemaJSON is handlers.schema.json; a string, so nobody can change it.
//
//go:embed handlers.schema.json
var schemaJSON string

// Schema returns a JSON Schema (draft 2020-12) of the handlers file, the
// one shipped as /usr/share/methodd/handlers.schema.json for editors. It
// describes every key the loader accepts in every mapping and nothing more
// (schema_test.go holds it to the loader's key tables), with its type,
// enum values and format (durations, sizes, method names), the keys that
// are required, and the simple cross-key rules (reply or a command; run or
// shell, not both). What only loading can tell is not in it: expressions,
// regular expressions, accounts, paths on this machine, alias limits: a
// file the schema accepts may still fail Parse. Conversely a file Parse
// accepts passes the schema, except where the schema asks for the intended
// type and the loader tolerates another scalar (a YAML number as a file
// path, host, id scope or description). Each call returns a fresh copy.
func Schema() []byte { return []byte(schemaJSON) }
