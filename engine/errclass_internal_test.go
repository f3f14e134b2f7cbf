package engine

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// exportedDecls parses the package's non-test files and returns its
// exported package-level variables whose names start with prefix, and its
// exported string constants whose names start with cprefix, with their
// values.
func exportedDecls(t *testing.T, prefix, cprefix string) (vars []string, consts map[string]string) {
	t.Helper()
	fset := token.NewFileSet()
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	var files []*ast.File
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	consts = map[string]string{}
	for _, f := range files {
		for _, d := range f.Decls {
			g, ok := d.(*ast.GenDecl)
			if !ok || g.Tok != token.VAR && g.Tok != token.CONST {
				continue
			}
			for _, sp := range g.Specs {
				vs := sp.(*ast.ValueSpec)
				for i, n := range vs.Names {
					switch {
					case g.Tok == token.VAR && n.IsExported() && strings.HasPrefix(n.Name, prefix):
						vars = append(vars, n.Name)
					case g.Tok == token.CONST && n.IsExported() && strings.HasPrefix(n.Name, cprefix) && i < len(vs.Values):
						if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
							consts[n.Name], _ = strconv.Unquote(lit.Value)
						}
					}
				}
			}
		}
	}
	if len(vars) < 20 {
		t.Fatalf("found %d exported %s* variables: the parse missed them", len(vars), prefix)
	}
	return vars, consts
}

// tableNames returns the identifiers errorClasses lists, in order, parsed
// from errclass.go: the test compares names, which values cannot give.
func tableNames(t *testing.T) []string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "errclass.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	ast.Inspect(f, func(n ast.Node) bool {
		vs, ok := n.(*ast.ValueSpec)
		if !ok || len(vs.Names) != 1 || vs.Names[0].Name != "errorClasses" {
			return true
		}
		for _, e := range vs.Values[0].(*ast.CompositeLit).Elts {
			row := e.(*ast.CompositeLit)
			switch x := row.Elts[0].(type) {
			case *ast.Ident:
				names = append(names, x.Name)
			case *ast.SelectorExpr:
				names = append(names, x.X.(*ast.Ident).Name+"."+x.Sel.Name)
			}
		}
		return false
	})
	return names
}

// TestErrorClasses checks the one vocabulary: every exported Err* of the
// package is in errorClasses exactly once, with a disconnect class of the
// set Stats counts and a refuse class of its set or none; each is
// classified as its row says, wrapped or not; and every exported Reason*
// constant is a failure reason Stats counts one by one.
func TestErrorClasses(t *testing.T) {
	errs, reasons := exportedDecls(t, "Err", "Reason")
	listed := tableNames(t)
	if len(listed) != len(errorClasses) {
		t.Fatalf("parsed %d rows of errorClasses, it has %d", len(listed), len(errorClasses))
	}
	for _, n := range errs {
		switch c := strings.Count(strings.Join(listed, " ")+" ", n+" "); {
		case !slices.Contains(listed, n):
			t.Errorf("%s is exported but has no row in errorClasses (errclass.go): give it a disconnect and a refuse class", n)
		case c > 1:
			t.Errorf("%s has %d rows in errorClasses", n, c)
		}
	}
	for _, n := range listed {
		if n != "io.EOF" && !slices.Contains(errs, n) {
			t.Errorf("errorClasses lists %s, which is not an exported error of the package", n)
		}
	}
	for i, row := range errorClasses {
		if !slices.Contains(disconnectReasons[:], row.disconnect) {
			t.Errorf("%s: disconnect class %q is not counted by Stats", listed[i], row.disconnect)
		}
		if row.refuse != refuseNone && !slices.Contains(refuseReasons[:], row.refuse) {
			t.Errorf("%s: refuse class %q is not counted by Stats", listed[i], row.refuse)
		}
		for _, err := range []error{row.err, fmt.Errorf("context: %w", row.err)} {
			if got := DisconnectReasonOf(err); got != row.disconnect {
				t.Errorf("DisconnectReasonOf(%v) = %q, its row says %q", err, got, row.disconnect)
			}
		}
	}
	used := map[DisconnectReason]bool{DisconnectError: true}
	for _, row := range errorClasses {
		used[row.disconnect] = true
	}
	for _, r := range disconnectReasons {
		if !used[r] {
			t.Errorf("disconnect class %q has no error", r)
		}
	}
	if len(reasons) < 6 {
		t.Fatalf("found %d exported Reason* constants: the parse missed them", len(reasons))
	}
	for n, v := range reasons {
		if failureReasons[failureIndex(v)] != v {
			t.Errorf("%s (%q) is not a failure reason Stats counts one by one", n, v)
		}
	}
	// An error wrapping several counts under the first of the table.
	for _, c := range []struct {
		err  error
		want DisconnectReason
	}{
		{fmt.Errorf("%w: %w", ErrTLSHandshake, ErrShutdown), DisconnectShutdown},
		{fmt.Errorf("%w: %w", ErrServerFull, ErrProtocol), DisconnectProtocol},
		{fmt.Errorf("%w: %w", ErrClosed, ErrHandedOver), DisconnectHandedOver},
		{fmt.Errorf("%w: %w", ErrClosed, io.EOF), DisconnectEOF},
		{nil, DisconnectError},
	} {
		if got := DisconnectReasonOf(c.err); got != c.want {
			t.Errorf("DisconnectReasonOf(%v) = %q, want %q", c.err, got, c.want)
		}
	}
}
