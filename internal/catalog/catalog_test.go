package catalog_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/internal/catalog"
	"github.com/vmglue/vmglue/internal/worker"
)

// Every line of the table: a unique name usable as a subject token, a
// section of the package's Config type that Lookup finds, and a New that
// validates the section (a zero one is refused, naming the worker's key).
func TestTable(t *testing.T) {
	seen := map[string]bool{}
	for _, w := range catalog.Workers {
		t.Run(w.Name, func(t *testing.T) {
			if !eventbus.ValidToken(w.Name) || seen[w.Name] {
				t.Fatalf("name %q: invalid or listed twice", w.Name)
			}
			seen[w.Name] = true
			got, ok := catalog.Lookup(w.Name)
			if !ok || got.Name != w.Name {
				t.Fatalf("Lookup(%q) = %v, %v", w.Name, got.Name, ok)
			}
			s := w.NewSection()
			if reflect.TypeOf(s) != w.SectionType() || reflect.ValueOf(s).IsNil() {
				t.Fatalf("NewSection %T, SectionType %s", s, w.SectionType())
			}
			s.SetDefaults()
			if _, err := w.New(s, worker.Deps{Log: zerolog.Nop()}); err == nil || !strings.HasPrefix(err.Error(), w.Name+".") {
				t.Fatalf("New of an empty section: %v, want an error naming %s.<key>", err, w.Name)
			}
		})
	}
	if _, ok := catalog.Lookup("nosuchworker"); ok {
		t.Fatal("Lookup found an unknown worker")
	}
	if n := catalog.Names(); len(n) != len(catalog.Workers) {
		t.Fatalf("Names %v", n)
	}
}
