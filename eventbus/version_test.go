package eventbus_test

import (
	"errors"
	"testing"

	"github.com/vmglue/vmglue/eventbus"
)

func TestUnmarshalVersion(t *testing.T) {
	vm := eventbus.VM{Cloud: "one", CloudType: "opennebula", ID: "7", Name: "web7", Kind: eventbus.KindRunning}
	tests := []struct {
		version string
		want    error // nil: accepted
	}{
		{eventbus.FormatVersion, nil},
		{eventbus.FormatVersion + ".9", nil},
		{"2", eventbus.ErrUnknownVersion},
		{"10", eventbus.ErrUnknownVersion},
		{"", eventbus.ErrInvalidEvent},
	}
	for _, tt := range tests {
		t.Run(tt.version, func(t *testing.T) {
			ev, err := eventbus.NewEvent(vm)
			if err != nil {
				t.Fatal(err)
			}
			ev.VmglueVersion = tt.version
			b, err := ev.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			_, err = eventbus.Unmarshal(b)
			if (tt.want == nil) != (err == nil) || (tt.want != nil && !errors.Is(err, tt.want)) {
				t.Fatalf("Unmarshal: %v, want %v", err, tt.want)
			}
		})
	}
}
