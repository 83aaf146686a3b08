package engine

// The keys each mapping of a handlers file accepts, in the order the
// "valid keys" part of an unknown-key diagnostic lists them. The loader
// passes them to mapping, and schema_test.go holds handlers.schema.json to
// them, so the schema and the loader cannot drift apart. Each is a function
// returning a fresh slice: no package state a caller could change.

// topKeys are the keys of the file's top level (besides x-... extension
// keys, which the loader skips).
func topKeys() []string {
	return []string{"version", "connection", "defaults", "builtins", "tasks", "methods"}
}

// connectionKeys are the keys of connection.
func connectionKeys() []string {
	return []string{"connection_string_file", "transport", "ca_file", "cert_file", "key_file", "sas_ttl", "twin",
		"gateway_host_name", "provisioning"}
}

// provisioningKeys are the keys of connection.provisioning.
func provisioningKeys() []string {
	return []string{"id_scope", "registration_id", "endpoint", "symmetric_key_file", "group_key_file",
		"cert_file", "key_file", "cache"}
}

// defaultsKeys are the keys of defaults.
func defaultsKeys() []string { return []string{"timeout", "concurrency", "duplicate_window"} }

// builtinKeys are the keys of builtins: the built-in methods, in the order
// their names are checked for clashes.
func builtinKeys() []string { return []string{"ping", "catalog", "taskStatus", "taskCancel"} }

// taskKeys are the keys of tasks.
func taskKeys() []string { return []string{"keep", "max"} }

// methodKeys are the keys of one method (methods.NAME).
func methodKeys() []string {
	return []string{"description", "params", "when", "run", "shell", "env", "timeout", "concurrency", "reply",
		"async", "detach", "run_as", "limits"}
}

// replyKeys are the keys of a method's reply.
func replyKeys() []string { return []string{"status", "payload"} }

// paramKeys are the keys of one parameter (methods.NAME.params.PARAM).
func paramKeys() []string {
	return []string{"type", "description", "required", "default", "enum", "pattern", "min", "max"}
}

// paramTypes are the values params.PARAM.type accepts.
func paramTypes() []string {
	return []string{"string", "number", "integer", "boolean", "object", "array"}
}

// limitKeys are the keys of a method's limits.
func limitKeys() []string { return []string{"memory", "cpu", "open_files", "processes", "output"} }

// runAsKeys are the keys of a method's run_as.
func runAsKeys() []string { return []string{"user", "group"} }

// transports are the values connection.transport accepts.
func transports() []string { return []string{"mqtt", "mqtt-ws"} }
