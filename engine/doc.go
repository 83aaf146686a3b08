// Package engine turns a handlers.yaml file into a validated, compiled set of
// direct methods and executes one method call against it.
//
// The package has no network code: the device session hands it a Request and
// publishes the Reply it gets back. Parse is what the one load path
// (internal/handlersfile: permissions, read, Parse) of `methodd check`,
// `call`, start-up and hot reload compiles with; everything that can be checked
// (keys, durations, regular expressions, expr programs, argv templates) is
// checked and compiled there, so the call path parses nothing but the
// payload.
//
// Every Call returns exactly one Reply whose Payload is valid JSON of at most
// MaxReplyBytes bytes, whatever the handler does (design §3).
package engine
