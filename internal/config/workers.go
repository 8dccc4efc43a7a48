package config

import (
	"fmt"
	"reflect"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/vmglue/vmglue/internal/catalog"
)

// Workers holds the section of each configured worker by name (a pointer
// to the worker package's Config, see package catalog); a worker without a
// section is off.
type Workers map[string]catalog.Section

// UnmarshalYAML decodes each workers.<name> section into its worker's
// Config, with the strictness (unknown keys fail) and line numbers of the
// whole file's decoder: the function-style unmarshaler keeps them, where a
// yaml.Node would lose them.
func (w *Workers) UnmarshalYAML(unmarshal func(any) error) error {
	var names map[string]yaml.Node
	if err := unmarshal(&names); err != nil {
		return err
	}
	for n := range names {
		if _, ok := catalog.Lookup(n); !ok {
			return fmt.Errorf("workers.%s: unknown worker, want one of %s", n, strings.Join(catalog.Names(), ", "))
		}
	}
	// One struct field per known worker, tagged with its name.
	fields := make([]reflect.StructField, len(catalog.Workers))
	for i, cw := range catalog.Workers {
		fields[i] = reflect.StructField{Name: fmt.Sprintf("W%d", i), Type: cw.SectionType(),
			Tag: reflect.StructTag(`yaml:"` + cw.Name + `"`)}
	}
	v := reflect.New(reflect.StructOf(fields))
	if err := unmarshal(v.Interface()); err != nil {
		return err
	}
	*w = Workers{}
	for i, cw := range catalog.Workers {
		if f := v.Elem().Field(i); !f.IsNil() {
			(*w)[cw.Name] = f.Interface().(catalog.Section)
		}
	}
	return nil
}

// Names lists the configured workers, in the catalog's order.
func (w Workers) Names() []string {
	var n []string
	for _, cw := range catalog.Workers {
		if _, ok := w[cw.Name]; ok {
			n = append(n, cw.Name)
		}
	}
	return n
}

func (w Workers) setDefaults() {
	for _, s := range w {
		s.SetDefaults()
	}
}

// validate checks every section; a worker's Validate names the key as
// "<worker>.<key>", which becomes "workers.<worker>.<key>".
func (w Workers) validate() error {
	for _, name := range w.Names() {
		if err := w[name].Validate(); err != nil {
			return prefix("workers.", err)
		}
	}
	return nil
}

type prefixed struct {
	p   string
	err error
}

// Error is one line: a worker's joined errors are separated by "; ".
func (e *prefixed) Error() string {
	return e.p + strings.ReplaceAll(e.err.Error(), "\n", "; "+e.p)
}
func (e *prefixed) Unwrap() error { return e.err }

func prefix(p string, err error) error { return &prefixed{p: p, err: err} }
