package eventbus_test

import (
	"errors"
	"strings"
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

// TestTransitionIdentity: the transition (PrevState, PrevLCMState) is part
// of the event id and the Observation but not of the Digest, so a VM back
// in RUNNING after a failed shutdown is a new event with the content it had
// before, a copy of one observation is one event whatever its Seen, and a
// snapshot without a transition (the sweep's, Nova's) keeps the id and
// Observation it always had: its Digest.
func TestTransitionIdentity(t *testing.T) {
	vm := func(prevLCM string, seen int64) eventbus.VM {
		v := eventbus.VM{Cloud: "one", CloudType: "opennebula", ID: "7", Name: "web7", State: "ACTIVE", LCMState: "RUNNING",
			PrevLCMState: prevLCM, Kind: eventbus.KindRunning, Version: eventbus.Version{Seq: 1, Changed: 5, Seen: seen}}
		if prevLCM != "" {
			v.PrevState = "ACTIVE"
		}
		return v
	}
	up, back := vm("BOOT", 100), vm("SHUTDOWN", 300)
	tests := []struct {
		name        string
		a, b        eventbus.VM
		sameID      bool
		compareAtoB int
	}{
		{"the return after a failed shutdown is another event, newer by Seen", back, up, false, 1},
		{"the hook's and the listener's copy are one event", vm("SHUTDOWN", 300), vm("SHUTDOWN", 301), true, -1},
		{"the sweep's snapshot is another event with the same content", vm("", 400), back, false, 1},
		{"a retried hook's copy is the same event, later", vm("BOOT", 900), up, true, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ea, err := eventbus.NewEvent(tt.a)
			if err != nil {
				t.Fatal(err)
			}
			eb, err := eventbus.NewEvent(tt.b)
			if err != nil {
				t.Fatal(err)
			}
			if (ea.ID == eb.ID) != tt.sameID || (tt.a.Observation() == tt.b.Observation()) != tt.sameID {
				t.Fatalf("ids %s, %s; observations %s, %s: want the same %v", ea.ID, eb.ID, tt.a.Observation(), tt.b.Observation(), tt.sameID)
			}
			if !strings.HasSuffix(ea.ID, "-"+tt.a.Observation()) {
				t.Fatalf("id %s does not end with the observation %s", ea.ID, tt.a.Observation())
			}
			if tt.a.Digest() != tt.b.Digest() {
				t.Fatal("the transition and Seen must not change the Digest")
			}
			if got := eventbus.Compare(&tt.a, &tt.b); got != tt.compareAtoB {
				t.Fatalf("Compare = %d, want %d", got, tt.compareAtoB)
			}
		})
	}
	if none := vm("", 0); none.Observation() != none.Digest() {
		t.Fatal("without a transition the Observation must be the Digest (records and ids from before transitions)")
	}
}
