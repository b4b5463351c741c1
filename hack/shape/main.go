// Command shape checks the size limits of the module's hand-written Go code: no
// non-test file over 500 lines and no function over 100 lines. Generated files are
// skipped; data tables that are long by nature are listed in allow, each with its
// reason. It prints every offender and exits 1 when there is one.
//
//	go run ./hack/shape [dir]
package main

import (
	"bytes"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
)

// The limits of issue 22.
const (
	maxFileLines = 500
	maxFuncLines = 100
)

// allow names the files ("dir/file.go") and functions ("dir/file.go:Func" or
// "dir/file.go:Type.Method") that may exceed the limits, with the reason. Only data
// tables belong here: code that is long because it lists data, not because it does
// many things. An entry that no longer exceeds a limit is reported: remove it.
var allow = map[string]string{
	"lab/images/recipes.go:recipes": "the catalogue of lab images: one literal entry per image (packages, files, entrypoint)",
}

// offence is one file or function over its limit.
type offence struct {
	File  string // slash-separated, relative to the root
	Line  int
	What  string // "file" or the function's name
	Lines int
	Limit int
	Stale bool // an allow entry that matched no offender
}

func (o offence) String() string {
	if o.Stale {
		return fmt.Sprintf("hack/shape/main.go: allow entry %q is within the limits now (or names nothing); remove it", o.What)
	}
	if o.What == "file" {
		return fmt.Sprintf("%s:%d: file has %d lines (limit %d)", o.File, o.Line, o.Lines, o.Limit)
	}
	return fmt.Sprintf("%s:%d: func %s has %d lines (limit %d)", o.File, o.Line, o.What, o.Lines, o.Limit)
}

func main() {
	root := "."
	if len(os.Args) > 1 {
		root = os.Args[1]
	}
	offences, err := check(root, allow)
	if err != nil {
		fmt.Fprintln(os.Stderr, "shape:", err)
		os.Exit(1)
	}
	for _, o := range offences {
		fmt.Println(o)
	}
	if len(offences) > 0 {
		fmt.Fprintf(os.Stderr, "shape: %d offender(s): split the file or function, or, for a data table, add it to allow in hack/shape/main.go with the reason\n", len(offences))
		os.Exit(1)
	}
}

// check walks the non-test .go files under root (skipping testdata, vendor and
// hidden directories, and generated files) and returns every file and function over
// its limit that allowed does not list, sorted by position.
func check(root string, allowed map[string]string) ([]offence, error) {
	var out []offence
	used := map[string]bool{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path != root && (name == "testdata" || name == "vendor" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			return nil
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		found, err := checkFile(path, filepath.ToSlash(rel), allowed, used)
		out = append(out, found...)
		return err
	})
	if err != nil {
		return nil, err
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].File != out[j].File {
			return out[i].File < out[j].File
		}
		return out[i].Line < out[j].Line
	})
	// Then the allow entries that excused nothing, in name order.
	for _, k := range slices.Sorted(maps.Keys(allowed)) {
		if !used[k] {
			out = append(out, offence{What: k, Stale: true})
		}
	}
	return out, nil
}

// checkFile returns the offences of one file; rel is its name in messages and in
// allowed. It marks in used the allowed entries that excused an offence.
func checkFile(path, rel string, allowed map[string]string, used map[string]bool) ([]offence, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, path, src, parser.ParseComments)
	if err != nil {
		return nil, err
	}
	if ast.IsGenerated(f) {
		return nil, nil
	}
	var out []offence
	excused := func(key string) bool {
		if allowed[key] == "" {
			return false
		}
		used[key] = true
		return true
	}
	if n := lineCount(src); n > maxFileLines && !excused(rel) {
		out = append(out, offence{File: rel, Line: 1, What: "file", Lines: n, Limit: maxFileLines})
	}
	add := func(name string, from, to token.Pos) {
		start, end := fset.Position(from).Line, fset.Position(to).Line
		n := end - start + 1
		if n > maxFuncLines && !excused(rel+":"+name) {
			out = append(out, offence{File: rel, Line: start, What: name, Lines: n, Limit: maxFuncLines})
		}
	}
	for _, decl := range f.Decls {
		switch d := decl.(type) {
		case *ast.FuncDecl:
			add(funcName(d), d.Pos(), d.End())
		case *ast.GenDecl:
			// A function literal at package level (var f = func() {...}) is a
			// function too; literals inside functions count toward theirs.
			ast.Inspect(d, func(n ast.Node) bool {
				if lit, ok := n.(*ast.FuncLit); ok {
					add(fmt.Sprintf("func literal at line %d", fset.Position(lit.Pos()).Line), lit.Pos(), lit.End())
					return false
				}
				return true
			})
		}
	}
	return out, nil
}

// funcName is "Func" or "Type.Method".
func funcName(d *ast.FuncDecl) string {
	if d.Recv == nil || len(d.Recv.List) == 0 {
		return d.Name.Name
	}
	t := d.Recv.List[0].Type
	for {
		switch x := t.(type) {
		case *ast.StarExpr:
			t = x.X
			continue
		case *ast.IndexExpr:
			t = x.X
			continue
		case *ast.IndexListExpr:
			t = x.X
			continue
		case *ast.Ident:
			return x.Name + "." + d.Name.Name
		}
		return d.Name.Name
	}
}

// lineCount counts lines as wc -l does, plus a last line without a newline.
func lineCount(src []byte) int {
	n := bytes.Count(src, []byte("\n"))
	if len(src) > 0 && src[len(src)-1] != '\n' {
		n++
	}
	return n
}
