package eventbus

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestNewEventBounds(t *testing.T) {
	many := map[string]string{}
	for i := range 40 {
		many[fmt.Sprintf("A%02d", i)] = strings.Repeat("v", 3000)
	}
	tests := []struct {
		name    string
		vm      VM
		wantCut []string
		check   func(t *testing.T, vm VM)
		wantErr error
	}{
		{name: "small stays whole", vm: VM{Name: "web", Attributes: map[string]string{"ROLE": "web"}, Labels: []string{"a"}}},
		{name: "long value cut on a character", vm: VM{Attributes: map[string]string{"BLOB": strings.Repeat("é", MaxAttributeValue)}},
			wantCut: []string{"attribute:BLOB"},
			check: func(t *testing.T, vm VM) {
				if v := vm.Attributes["BLOB"]; len(v) > MaxAttributeValue || len(v) < MaxAttributeValue-1 || !utf8.ValidString(v) {
					t.Errorf("BLOB: %d bytes, valid %v", len(v), utf8.ValidString(v))
				}
			}},
		{name: "total bounded in name order", vm: VM{Attributes: many}, wantCut: []string{"attributes"},
			check: func(t *testing.T, vm VM) {
				n := 0
				for k, v := range vm.Attributes {
					n += len(k) + len(v)
				}
				if n > MaxAttributes || vm.Attributes["A00"] == "" || len(vm.Attributes) == len(many) {
					t.Errorf("%d attributes, %d bytes", len(vm.Attributes), n)
				}
			}},
		{name: "long attribute name left out", vm: VM{Attributes: map[string]string{strings.Repeat("N", MaxAttributeName+1): "x", "OK": "y"}},
			wantCut: []string{"attributes"},
			check: func(t *testing.T, vm VM) {
				if len(vm.Attributes) != 1 || vm.Attributes["OK"] != "y" {
					t.Errorf("attributes %v", vm.Attributes)
				}
			}},
		{name: "name and labels", vm: VM{Name: strings.Repeat("n", MaxText+5), Labels: []string{strings.Repeat("l", 2*MaxText)}},
			wantCut: []string{"labels", "name"},
			check: func(t *testing.T, vm VM) {
				if len(vm.Name) != MaxText || len(vm.Labels[0]) != MaxText {
					t.Errorf("name %d, label %d bytes", len(vm.Name), len(vm.Labels[0]))
				}
			}},
		{name: "NICs alone too large", vm: VM{NICs: slices.Repeat([]NIC{{ID: strings.Repeat("9", 1000)}}, 1000)}, wantErr: ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.vm.Cloud, tt.vm.CloudType, tt.vm.ID, tt.vm.Kind = "one", "opennebula", "1", KindDeleted
			ev, err := NewEvent(tt.vm)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("NewEvent: %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if !slices.Equal(ev.Data.Cut, tt.wantCut) {
				t.Errorf("cut %q, want %q", ev.Data.Cut, tt.wantCut)
			}
			if b, _ := ev.Marshal(); len(b) > MaxEventSize {
				t.Errorf("event of %d bytes", len(b))
			}
			if ev.Data.Kind != KindDeleted || ev.Data.ID != "1" {
				t.Errorf("identity changed: %+v", ev.Data)
			}
			if tt.check != nil {
				tt.check(t, ev.Data)
			}
			again, err := NewEvent(ev.Data)
			if err != nil || again.ID != ev.ID {
				t.Errorf("not idempotent: %v, id %s then %s", err, ev.ID, again.ID)
			}
		})
	}
}
