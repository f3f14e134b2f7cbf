// This file tests that package engine has one implementation of
// handler.Conn: the connection servers and clients share (conn.go).

package engine_test

import (
	"fmt"
	"go/ast"
	"go/build"
	"go/importer"
	"go/parser"
	"go/token"
	"go/types"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestOneConnType type-checks the package's source and fails if a type
// other than conn, or a pointer to it, implements handler.Conn: a client's
// connections are servers' kind of connection, and the Client supervises
// them without being one.
func TestOneConnType(t *testing.T) {
	// The imports' export data, as the build cache has it.
	out, err := exec.Command("go", "list", "-export", "-deps", "-f", "{{.ImportPath}} {{.Export}}", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	exports := make(map[string]string)
	for line := range strings.Lines(string(out)) {
		if path, file, ok := strings.Cut(strings.TrimSpace(line), " "); ok {
			exports[path] = file
		}
	}
	lookup := func(path string) (io.ReadCloser, error) {
		if file := exports[path]; file != "" {
			return os.Open(file)
		}
		return nil, fmt.Errorf("no export data for %s", path)
	}
	bp, err := build.ImportDir(".", 0) // the files this platform builds
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	var files []*ast.File
	for _, name := range bp.GoFiles {
		f, err := parser.ParseFile(fset, name, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	conf := types.Config{Importer: importer.ForCompiler(fset, "gc", lookup)}
	pkg, err := conf.Check("github.com/simplerpc/simplerpc/engine", fset, files, nil)
	if err != nil {
		t.Fatal(err)
	}
	var iface *types.Interface
	for _, imp := range pkg.Imports() {
		if imp.Path() == "github.com/simplerpc/simplerpc/handler" {
			iface = imp.Scope().Lookup("Conn").Type().Underlying().(*types.Interface)
		}
	}
	if iface == nil {
		t.Fatal("package engine does not import handler")
	}
	var impls []string
	scope := pkg.Scope()
	for _, name := range scope.Names() {
		tn, ok := scope.Lookup(name).(*types.TypeName)
		if !ok || types.IsInterface(tn.Type()) {
			continue
		}
		if types.Implements(tn.Type(), iface) || types.Implements(types.NewPointer(tn.Type()), iface) {
			impls = append(impls, name)
		}
	}
	if len(impls) != 1 || impls[0] != "conn" {
		t.Errorf("types implementing handler.Conn: %v, want only conn", impls)
	}
}
