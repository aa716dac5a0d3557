package lint

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/gregor-dev/gregor/internal/"

// allowed lists, for each internal package, the internal packages it may
// import (non-test files). Imports point down: the protocol edge (server)
// knows nothing of the broker, storage knows nothing of replication, and the
// metadata and record codecs know nothing at all. broker imports commitlog
// only so that its one error table can name the log's errors.
var allowed = map[string][]string{
	"cli":        {"node", "config", "bench"},
	"node":       {"server", "auth", "broker", "httpapi", "controller", "replica", "group", "txn", "config", "metadata", "statelog", "vfs", "quota"},
	"broker":     {"server", "auth", "replica", "group", "txn", "controller", "metadata", "record", "config", "commitlog", "quota"},
	"group":      {"statelog", "metadata", "record", "config"},
	"txn":        {"replica", "statelog", "metadata", "record"},
	"statelog":   {"replica", "commitlog"},
	"controller": {"metadata", "vfs"},
	"replica":    {"commitlog", "record", "metadata", "config", "vfs"},
	"commitlog":  {"record", "vfs"},
	"bench":      {},
	"server":     {},
	"httpapi":    {},
	"record":     {},
	"metadata":   {},
	"quota":      {"metadata"},
	"auth":       {"metadata"},
	"config":     {"vfs"},
	"lint":       {},
	"vfs":        {},
	"chaintest":  {},
	"testkit":    {},
}

func TestLintImportRules(t *testing.T) {
	root := filepath.Join("..")
	dirs, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, d := range dirs {
		if !d.IsDir() {
			continue
		}
		pkg := d.Name()
		rules, known := allowed[pkg]
		if !known {
			t.Errorf("package internal/%s has no import rule: add it to allowed", pkg)
			continue
		}
		files, _ := filepath.Glob(filepath.Join(root, pkg, "*.go"))
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			af, err := parser.ParseFile(fset, f, nil, parser.ImportsOnly)
			if err != nil {
				t.Fatal(err)
			}
			for _, imp := range af.Imports {
				path, _ := strconv.Unquote(imp.Path.Value)
				dep, ok := strings.CutPrefix(path, module)
				if !ok {
					continue
				}
				dep, _, _ = strings.Cut(dep, "/")
				if !slices.Contains(rules, dep) {
					t.Errorf("%s imports internal/%s, which internal/%s may not import", f, dep, pkg)
				}
			}
		}
	}
}
