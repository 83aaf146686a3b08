package engine

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"gopkg.in/yaml.v3"
)

// schemaMappings are the mappings of a handlers file, each named by its
// path in a file ("*" is any name: a method, a parameter) and the key
// table the loader checks it with.
func schemaMappings() []struct {
	path []string
	keys []string
} {
	return []struct {
		path []string
		keys []string
	}{
		{nil, topKeys()},
		{[]string{"connection"}, connectionKeys()},
		{[]string{"connection", "provisioning"}, provisioningKeys()},
		{[]string{"defaults"}, defaultsKeys()},
		{[]string{"builtins"}, builtinKeys()},
		{[]string{"tasks"}, taskKeys()},
		{[]string{"methods", "*"}, methodKeys()},
		{[]string{"methods", "*", "reply"}, replyKeys()},
		{[]string{"methods", "*", "params", "*"}, paramKeys()},
		{[]string{"methods", "*", "limits"}, limitKeys()},
		{[]string{"methods", "*", "run_as"}, runAsKeys()},
	}
}

// schemaDoc is Schema() decoded.
func schemaDoc(t *testing.T) map[string]any {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal(Schema(), &doc); err != nil {
		t.Fatalf("Schema() is not JSON: %v", err)
	}
	return doc
}

// schemaAt follows path (keys of a handlers file, "*" for any name) from
// the schema's root, through properties, additionalProperties and local
// $refs; it returns the JSON pointer and the subschema where it ends.
func schemaAt(t *testing.T, root map[string]any, path []string) (string, map[string]any) {
	t.Helper()
	ptr, node := "", root
	deref := func() {
		if r, ok := node["$ref"].(string); ok {
			name, ok := strings.CutPrefix(r, "#/$defs/")
			if !ok {
				t.Fatalf("%s: $ref %q is not local to $defs", ptr, r)
			}
			ptr, node = "/$defs/"+name, root["$defs"].(map[string]any)[name].(map[string]any)
		}
	}
	for _, k := range path {
		deref()
		var next any
		if k == "*" {
			ptr, next = ptr+"/additionalProperties", node["additionalProperties"]
		} else {
			props, _ := node["properties"].(map[string]any)
			ptr, next = ptr+"/properties/"+k, props[k]
		}
		sub, ok := next.(map[string]any)
		if !ok {
			t.Fatalf("schema has no subschema at %s (file path %s)", ptr, strings.Join(path, "."))
		}
		node = sub
	}
	deref()
	return ptr, node
}

// strictSchemas returns the JSON pointer of every subschema of node that
// has "additionalProperties": false: the mappings the schema is strict
// about.
func strictSchemas(ptr string, node any, out map[string]bool) {
	switch n := node.(type) {
	case map[string]any:
		if n["additionalProperties"] == false {
			out[ptr] = true
		}
		for k, v := range n {
			strictSchemas(ptr+"/"+k, v, out)
		}
	case []any:
		for i, v := range n {
			strictSchemas(fmt.Sprintf("%s/%d", ptr, i), v, out)
		}
	}
}

// TestSchemaKeysMatchEngine holds the schema to the loader's key tables:
// each mapping the loader reads strictly is strict in the schema, at the
// same place, with exactly the keys the loader accepts; the schema is
// strict about no other mapping; and its enums are the loader's.
func TestSchemaKeysMatchEngine(t *testing.T) {
	root := schemaDoc(t)
	if got := root["$schema"]; got != "https://json-schema.org/draft/2020-12/schema" {
		t.Errorf("$schema is %v, want draft 2020-12", got)
	}
	reached := map[string]bool{}
	for _, m := range schemaMappings() {
		where := cmpOr(strings.Join(m.path, "."), "the top level")
		ptr, node := schemaAt(t, root, m.path)
		reached[ptr] = true
		if node["additionalProperties"] != false {
			t.Errorf("%s (%s): additionalProperties is %v, want false: the loader refuses unknown keys", where, ptr, node["additionalProperties"])
		}
		props, _ := node["properties"].(map[string]any)
		got := slices.Sorted(maps.Keys(props))
		want := slices.Sorted(slices.Values(m.keys))
		if !slices.Equal(got, want) {
			t.Errorf("%s (%s): schema keys %v, loader keys %v", where, ptr, got, want)
		}
		for k, v := range props {
			if d, _ := v.(map[string]any)["description"].(string); d == "" && v.(map[string]any)["$ref"] == nil {
				t.Errorf("%s.%s: no description for editors", where, k)
			}
		}
	}
	strict := map[string]bool{}
	strictSchemas("", root, strict)
	for ptr := range strict {
		if !reached[ptr] {
			t.Errorf("schema is strict at %s, which is none of the loader's mappings (schemaMappings)", ptr)
		}
	}
	if pp, _ := root["patternProperties"].(map[string]any); len(pp) != 1 || pp["^x-"] == nil {
		t.Errorf("top-level patternProperties %v, want only ^x- (the loader skips x- keys)", pp)
	}
	enums := []struct {
		path []string
		want []string
	}{
		{[]string{"methods", "*", "params", "*", "type"}, paramTypes()},
		{[]string{"connection", "transport"}, transports()},
	}
	for _, e := range enums {
		_, node := schemaAt(t, root, e.path)
		var got []string
		for _, v := range node["enum"].([]any) {
			got = append(got, v.(string))
		}
		if !slices.Equal(got, e.want) {
			t.Errorf("%s: schema enum %v, loader accepts %v", strings.Join(e.path, "."), got, e.want)
		}
	}
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// compiledSchema compiles Schema() with the validator the tests use; the
// compiler checks it against the draft 2020-12 metaschema too.
func compiledSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(Schema()))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("handlers.schema.json", doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile("handlers.schema.json")
	if err != nil {
		t.Fatalf("schema does not compile: %v", err)
	}
	return s
}

// yamlInstance decodes a handlers file as an editor's YAML extension does
// (yaml.v3 into any, anchors and merge keys expanded) and turns it into
// the JSON value the schema is checked against.
func yamlInstance(data []byte) (any, error) {
	var v any
	if err := yaml.Unmarshal(data, &v); err != nil {
		return nil, err
	}
	j, err := json.Marshal(jsonValue(v))
	if err != nil {
		return nil, err
	}
	return jsonschema.UnmarshalJSON(bytes.NewReader(j))
}

// jsonValue gives YAML mappings with non-string keys string keys, as JSON
// needs.
func jsonValue(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = jsonValue(e)
		}
	case map[any]any:
		m := map[string]any{}
		for k, e := range x {
			m[fmt.Sprint(k)] = jsonValue(e)
		}
		return m
	case []any:
		for i, e := range x {
			x[i] = jsonValue(e)
		}
	}
	return v
}

// validateYAML checks one handlers file against the schema.
func validateYAML(t *testing.T, s *jsonschema.Schema, name string, data []byte) error {
	t.Helper()
	inst, err := yamlInstance(data)
	if err != nil {
		t.Fatalf("%s: cannot decode as YAML: %v", name, err)
	}
	return s.Validate(inst)
}

// TestSchemaAcceptsValidFiles: every file of testdata/valid, the shipped
// example and every yaml block of docs/handlers.md (all of which the
// loader accepts) passes the schema.
func TestSchemaAcceptsValidFiles(t *testing.T) {
	s := compiledSchema(t)
	files, _ := filepath.Glob("testdata/valid/*.yaml")
	files = append(files, "../handlers.yaml.example")
	if len(files) < 5 {
		t.Fatalf("found only %d files", len(files))
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := validateYAML(t, s, f, data); err != nil {
			t.Errorf("%s: the loader accepts it, the schema does not:\n%v", f, err)
		}
	}
	n := 0
	for _, b := range docBlocks(t, "../docs/handlers.md") {
		if b.lang != "yaml" {
			continue
		}
		n++
		if err := validateYAML(t, s, "docs", []byte(b.body)); err != nil {
			t.Errorf("docs/handlers.md:%d: the schema refuses the example:\n%v", b.line, err)
		}
	}
	if n < 10 {
		t.Errorf("only %d yaml blocks in docs/handlers.md; the extractor is broken", n)
	}
}

// The files of testdata/invalid, each in exactly one list.
var (
	// schemaInvalid are refused by the schema: an unknown key, a wrong
	// type, a missing required key, a value out of its enum or format.
	schemaInvalid = []string{
		"bad_duration.yaml",          // "ten seconds" is no duration
		"bad_twin.yaml",              // twin: "yes" is a string
		"bad_types.yaml",             // required: "yes"; an object in enum
		"empty.yaml",                 // null, not a mapping with version
		"empty_argv.yaml",            // run: []
		"limits_keys.yaml",           // memroy, files; a scalar limits; limits without a command
		"limits_range.yaml",          // zero sizes, counts and durations
		"limits_units.yaml",          // 64M, 1.5GiB, "many"
		"many_problems.yaml",         // version 2, transport amqp, ...
		"misspelled_method_key.yaml", //nolint:misspell // its keys descripton, timout are misspelled on purpose
		"missing_version.yaml",       // no version
		"no_reply_no_command.yaml",   // neither reply nor run nor shell
		"param_null.yaml",            // a parameter that is null, not a mapping
		"provisioning.yaml",          // endpont; two keys; provisioning with a connection string
		"run_and_shell.yaml",         // both run and shell
		"run_not_list.yaml",          // run is a string
		"runas_shape.yaml",           // run_as a scalar, without user, with gruop
		"unknown_param_type.yaml",    // type int, strnig
		"unknown_top_key.yaml",       // metods
	}
	// schemaValidButInvalid pass the schema: only loading them finds
	// what is wrong.
	schemaValidButInvalid = map[string]string{
		"bad_regex.yaml":    "a pattern that does not compile: the schema does not assert format regex",
		"deep_nesting.yaml": "nesting past MaxNesting is a bound of the loader, not of the file format",
		"expr_syntax.yaml":  "an expression syntax error: only compiling it tells",
		"expr_type.yaml":    "expression types are checked by the expr compiler against the params",
		"runas_lookup.yaml": "accounts that do not exist on this machine",
	}
	// yamlUndecodable do not decode into a value at all (yaml.v3 refuses
	// them as an editor's YAML parser does), so there is nothing to
	// validate.
	yamlUndecodable = map[string]string{
		"alias_bomb.yaml":       "yaml.v3 refuses excessive aliasing",
		"alias_cycle.yaml":      "an anchor whose value contains its alias",
		"duplicate_method.yaml": "yaml.v3 refuses a duplicate mapping key when decoding",
		"yaml_syntax.yaml":      "a YAML syntax error",
	}
)

// TestSchemaRefusesInvalidFiles checks each file of testdata/invalid
// against its class: the schema refuses it, or passes it (only the loader
// can tell), or it is not decodable YAML. A new invalid file must be put in
// one class.
func TestSchemaRefusesInvalidFiles(t *testing.T) {
	s := compiledSchema(t)
	files, _ := filepath.Glob("testdata/invalid/*.yaml")
	seen := map[string]bool{}
	for _, f := range files {
		name := filepath.Base(f)
		seen[name] = true
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		inst, decErr := yamlInstance(data)
		_, undecodable := yamlUndecodable[name]
		_, loaderOnly := schemaValidButInvalid[name]
		switch {
		case undecodable:
			if decErr == nil {
				t.Errorf("%s: listed as undecodable (%s) but decodes", name, yamlUndecodable[name])
			}
		case decErr != nil:
			t.Errorf("%s: cannot decode: %v", name, decErr)
		case loaderOnly:
			if err := s.Validate(inst); err != nil {
				t.Errorf("%s: listed as valid for the schema (%s) but refused:\n%v", name, schemaValidButInvalid[name], err)
			}
		case slices.Contains(schemaInvalid, name):
			if s.Validate(inst) == nil {
				t.Errorf("%s: the schema accepts it, want it refused", name)
			}
		default:
			t.Errorf("%s: not classified: add it to schemaInvalid, schemaValidButInvalid or yamlUndecodable in schema_test.go", name)
		}
	}
	var listed []string
	listed = append(listed, schemaInvalid...)
	listed = append(listed, slices.Collect(maps.Keys(schemaValidButInvalid))...)
	listed = append(listed, slices.Collect(maps.Keys(yamlUndecodable))...)
	sort.Strings(listed)
	for i, name := range listed {
		if !seen[name] {
			t.Errorf("%s is listed but not in testdata/invalid", name)
		}
		if i > 0 && listed[i-1] == name {
			t.Errorf("%s is listed twice", name)
		}
	}
}

// TestSchemaFormatsMatchEngine checks the schema's duration and size
// patterns against the loader's own decoding, string by string. (Bare
// numbers are left out: whether the loader reads them as seconds is the
// number form's business, which the schema accepts as a JSON number.)
func TestSchemaFormatsMatchEngine(t *testing.T) {
	s := compiledSchema(t)
	l := &loader{}
	node := func(v string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: v} }
	durations := []string{"10s", "500ms", "1m30s", "1h", "2h45m", "1.5s", ".5s", "0.5s", "+10s", "1us", "1µs", "1μs", "3ns",
		"0s", "-1s", "00s", "0m0s", "0.0s", "ten seconds", "1d", "s", "", "1 s", "10S", "1m-1s", "0s1ms"}
	for _, d := range durations {
		doc := fmt.Sprintf(`{"version": 1, "defaults": {"timeout": %q}}`, d)
		inst, err := jsonschema.UnmarshalJSON(strings.NewReader(doc))
		if err != nil {
			t.Fatal(err)
		}
		_, engineOK := l.duration(node(d), "defaults.timeout")
		if schemaOK := s.Validate(inst) == nil; schemaOK != engineOK {
			t.Errorf("duration %q: schema accepts %v, loader %v", d, schemaOK, engineOK)
		}
	}
	sizes := []string{"1", "64MiB", "64 MiB", "1GiB", "100MB", "10kB", "10KB", "5B", "1_000", "007",
		"0", "0KiB", "64M", "64 mib", "1.5GiB", "-5MiB", "64  MiB", "MiB", "", "1KIB", "64mb"}
	for _, sz := range sizes {
		doc := fmt.Sprintf(`{"version": 1, "methods": {"m": {"run": ["id"], "limits": {"memory": %q}}}}`, sz)
		inst, err := jsonschema.UnmarshalJSON(strings.NewReader(doc))
		if err != nil {
			t.Fatal(err)
		}
		_, _, engineOK := l.size(node(sz), "memory")
		if schemaOK := s.Validate(inst) == nil; schemaOK != engineOK {
			t.Errorf("size %q: schema accepts %v, loader %v", sz, schemaOK, engineOK)
		}
	}
}
