package logkey

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// moduleRoot is the module's root as seen from this package.
const moduleRoot = "../.."

// logCalls maps the logging methods of *slog.Logger to the index of their
// first key/value argument (after ctx, level and msg where they have them).
var logCalls = map[string]int{"Debug": 1, "Info": 1, "Warn": 1, "Error": 1, "Log": 3, "LogAttrs": 3, "With": 0}

// attrFuncs are slog's Attr constructors, whose first argument is a key.
var attrFuncs = map[string]bool{"String": true, "Int": true, "Int64": true, "Uint64": true, "Float64": true,
	"Bool": true, "Time": true, "Duration": true, "Any": true, "Group": true}

// TestLogKeysAreConstants parses every non-test Go file of the product
// (test suites under test/ excluded) and fails on any log attribute whose
// key is written as a string literal instead of a logkey constant, so that
// one thing keeps one spelling across the binary.
func TestLogKeysAreConstants(t *testing.T) {
	fset := token.NewFileSet()
	files := 0
	err := filepath.WalkDir(moduleRoot, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "node_modules" || d.Name() == "testdata" || path == filepath.Join(moduleRoot, "test")) {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		files++
		for _, pos := range literalKeys(f) {
			t.Errorf("%s: a log attribute key is a string literal; use a logkey constant", fset.Position(pos))
		}
		for _, pos := range durationAttrs(f) {
			t.Errorf("%s: slog.Duration prints nanoseconds in JSON logs; log d.Milliseconds() under a logkey ...Ms key", fset.Position(pos))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 50 {
		t.Fatalf("read %d Go files under %s; the walk did not see the module", files, moduleRoot)
	}
}

// literalKeys returns the positions of string-literal keys in f's logging
// calls: x.Info("msg", "key", v, ...), x.With("key", v), slog.String("key", v).
// A call is taken for a logging call when its message argument is a
// string literal (Info, Warn, Error, Debug, Log, LogAttrs) or when it is
// With; an slog.Attr argument takes one place, a key and its value two.
func literalKeys(f *ast.File) []token.Pos {
	var out []token.Pos
	ast.Inspect(f, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok {
			return true
		}
		sel, ok := call.Fun.(*ast.SelectorExpr)
		if !ok {
			return true
		}
		if pkg, ok := sel.X.(*ast.Ident); ok && pkg.Name == "slog" && attrFuncs[sel.Sel.Name] {
			if len(call.Args) > 0 && isStringLit(call.Args[0]) {
				out = append(out, call.Args[0].Pos())
			}
			return true
		}
		first, ok := logCalls[sel.Sel.Name]
		if !ok || len(call.Args) < first || (first > 0 && !isStringLit(call.Args[first-1])) {
			return true
		}
		for i := first; i < len(call.Args); {
			if isSlogCall(call.Args[i]) {
				i++
				continue
			}
			if isStringLit(call.Args[i]) {
				out = append(out, call.Args[i].Pos())
			}
			i += 2
		}
		return true
	})
	return out
}

// durationAttrs returns the positions of slog.Duration calls in f. A
// time.Duration passed as a plain key/value argument needs type information
// to be seen and is not found here.
func durationAttrs(f *ast.File) []token.Pos {
	var out []token.Pos
	ast.Inspect(f, func(n ast.Node) bool {
		if sel, ok := n.(*ast.SelectorExpr); ok {
			if pkg, ok := sel.X.(*ast.Ident); ok && pkg.Name == "slog" && sel.Sel.Name == "Duration" {
				out = append(out, sel.Pos())
			}
		}
		return true
	})
	return out
}

func isStringLit(e ast.Expr) bool {
	lit, ok := e.(*ast.BasicLit)
	if !ok || lit.Kind != token.STRING {
		return false
	}
	_, err := strconv.Unquote(lit.Value)
	return err == nil
}

// isSlogCall reports whether e is slog.Something(...), an Attr.
func isSlogCall(e ast.Expr) bool {
	call, ok := e.(*ast.CallExpr)
	if !ok {
		return false
	}
	sel, ok := call.Fun.(*ast.SelectorExpr)
	if !ok {
		return false
	}
	pkg, ok := sel.X.(*ast.Ident)
	return ok && pkg.Name == "slog"
}

// TestLiteralKeysFindsLiterals: the checker itself catches each form.
func TestLiteralKeysFindsLiterals(t *testing.T) {
	src := `package p
func f() {
	log.Info("msg", "bad", 1, Good, 2, slog.String("bad2", "v"), slog.Int(Good, 1))
	log.Log(ctx, lv, "msg", "bad3", 1)
	log.With("bad4", 1)
	log.LogAttrs(ctx, lv, "msg", slog.String("bad5", "x"))
	err.Error()
	t.Error(x, "not a log call")
}`
	f, err := parser.ParseFile(token.NewFileSet(), "p.go", src, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := len(literalKeys(f)); got != 5 {
		t.Errorf("found %d literal keys, want 5", got)
	}
}

// TestDurationAttrsFindsDurations: the checker finds slog.Duration and
// nothing else.
func TestDurationAttrsFindsDurations(t *testing.T) {
	src := `package p
func f() {
	log.Info("msg", slog.Duration(logkey.Grace, d), slog.Int64(logkey.GraceMs, d.Milliseconds()))
	log.LogAttrs(ctx, lv, "msg", slog.Duration(k, time.Second))
	other.Duration(1)
}`
	f, err := parser.ParseFile(token.NewFileSet(), "p.go", src, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := len(durationAttrs(f)); got != 2 {
		t.Errorf("found %d slog.Duration calls, want 2", got)
	}
}
