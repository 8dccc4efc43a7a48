package opennebula

import (
	"slices"
	"strings"
	"testing"

	"github.com/vmglue/vmglue/eventbus"
)

func TestKind(t *testing.T) {
	tests := []struct {
		name       string
		state, lcm int
		wantState  string
		wantLCM    string
		wantKind   string
	}{
		{"init", 0, 0, "INIT", "LCM_INIT", eventbus.KindCreated},
		{"pending", 1, 0, "PENDING", "LCM_INIT", eventbus.KindCreated},
		{"hold", 2, 0, "HOLD", "LCM_INIT", eventbus.KindCreated},
		{"cloning", 10, 0, "CLONING", "LCM_INIT", eventbus.KindCreated},
		{"cloning failure", 11, 0, "CLONING_FAILURE", "LCM_INIT", eventbus.KindFailed},
		{"active lcm init", 3, 0, "ACTIVE", "LCM_INIT", eventbus.KindStarting},
		{"prolog", 3, 1, "ACTIVE", "PROLOG", eventbus.KindStarting},
		{"boot", 3, 2, "ACTIVE", "BOOT", eventbus.KindStarting},
		{"boot undeploy", 3, 32, "ACTIVE", "BOOT_UNDEPLOY", eventbus.KindStarting},
		{"prolog resume", 3, 9, "ACTIVE", "PROLOG_RESUME", eventbus.KindStarting},
		{"prolog undeploy", 3, 31, "ACTIVE", "PROLOG_UNDEPLOY", eventbus.KindStarting},
		{"cleanup resubmit", 3, 15, "ACTIVE", "CLEANUP_RESUBMIT", eventbus.KindStarting},
		{"running", 3, 3, "ACTIVE", "RUNNING", eventbus.KindRunning},
		{"unknown", 3, 16, "ACTIVE", "UNKNOWN", eventbus.KindUnknown},
		{"boot unknown", 3, 19, "ACTIVE", "BOOT_UNKNOWN", eventbus.KindStarting},
		{"migrate", 3, 4, "ACTIVE", "MIGRATE", eventbus.KindMigrating},
		{"save migrate", 3, 7, "ACTIVE", "SAVE_MIGRATE", eventbus.KindMigrating},
		{"prolog migrate unknown", 3, 60, "ACTIVE", "PROLOG_MIGRATE_UNKNOWN", eventbus.KindMigrating},
		{"boot migrate", 3, 35, "ACTIVE", "BOOT_MIGRATE", eventbus.KindMigrating},
		{"shutdown", 3, 12, "ACTIVE", "SHUTDOWN", eventbus.KindStopping},
		{"shutdown poweroff", 3, 18, "ACTIVE", "SHUTDOWN_POWEROFF", eventbus.KindStopping},
		{"save stop", 3, 5, "ACTIVE", "SAVE_STOP", eventbus.KindStopping},
		{"epilog", 3, 11, "ACTIVE", "EPILOG", eventbus.KindStopping},
		{"epilog undeploy", 3, 30, "ACTIVE", "EPILOG_UNDEPLOY", eventbus.KindStopping},
		{"cleanup delete", 3, 23, "ACTIVE", "CLEANUP_DELETE", eventbus.KindStopping},
		{"hotplug nic", 3, 25, "ACTIVE", "HOTPLUG_NIC", eventbus.KindChanging},
		{"disk snapshot", 3, 57, "ACTIVE", "DISK_SNAPSHOT", eventbus.KindChanging},
		{"disk resize undeployed", 3, 64, "ACTIVE", "DISK_RESIZE_UNDEPLOYED", eventbus.KindChanging},
		{"backup", 3, 69, "ACTIVE", "BACKUP", eventbus.KindChanging},
		{"restore", 3, 71, "ACTIVE", "RESTORE", eventbus.KindChanging},
		{"boot failure", 3, 36, "ACTIVE", "BOOT_FAILURE", eventbus.KindFailed},
		{"prolog migrate unknown failure", 3, 61, "ACTIVE", "PROLOG_MIGRATE_UNKNOWN_FAILURE", eventbus.KindFailed},
		{"poweroff", 8, 0, "POWEROFF", "LCM_INIT", eventbus.KindStopped},
		{"stopped", 4, 0, "STOPPED", "LCM_INIT", eventbus.KindStopped},
		{"suspended", 5, 0, "SUSPENDED", "LCM_INIT", eventbus.KindStopped},
		{"undeployed", 9, 0, "UNDEPLOYED", "LCM_INIT", eventbus.KindStopped},
		{"done", 6, 0, "DONE", "LCM_INIT", eventbus.KindDeleted},
		{"done ignores lcm", 6, 3, "DONE", "RUNNING", eventbus.KindDeleted},
		{"unused failed", 7, 0, "FAILED", "LCM_INIT", eventbus.KindFailed},
		{"undefined lcm 58", 3, 58, "ACTIVE", "UNKNOWN_58", eventbus.KindUnknown},
		{"future lcm", 3, 72, "ACTIVE", "UNKNOWN_72", eventbus.KindUnknown},
		{"future state", 12, 0, "UNKNOWN_12", "LCM_INIT", eventbus.KindUnknown},
		{"negative", -1, -1, "UNKNOWN_-1", "UNKNOWN_-1", eventbus.KindUnknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := StateName(tt.state); got != tt.wantState {
				t.Errorf("StateName(%d) = %s, want %s", tt.state, got, tt.wantState)
			}
			if got := LCMStateName(tt.lcm); got != tt.wantLCM {
				t.Errorf("LCMStateName(%d) = %s, want %s", tt.lcm, got, tt.wantLCM)
			}
			if got := Kind(tt.state, tt.lcm); got != tt.wantKind {
				t.Errorf("Kind(%d, %d) = %s, want %s", tt.state, tt.lcm, got, tt.wantKind)
			}
		})
	}
}

// TestStateTables checks the tables as a whole: every value from 0 to 71
// but 58 is named, names are unique, every kind is a known one, and the
// name patterns of the package documentation hold.
func TestStateTables(t *testing.T) {
	seen := map[string]bool{}
	for n := 0; n <= 71; n++ {
		name := LCMStateName(n)
		if (n == 58) != strings.HasPrefix(name, "UNKNOWN_") {
			t.Errorf("LCM_STATE %d is named %s", n, name)
		}
		if seen[name] {
			t.Errorf("LCM_STATE name %s is used twice", name)
		}
		seen[name] = true
		kind := Kind(stateActive, n)
		if !slices.Contains(eventbus.Kinds, kind) {
			t.Errorf("ACTIVE/%s has kind %q, not an eventbus kind", name, kind)
		}
		var want string
		switch {
		case strings.HasSuffix(name, "FAILURE"):
			want = eventbus.KindFailed
		case strings.HasPrefix(name, "HOTPLUG"), strings.HasPrefix(name, "DISK_"),
			strings.HasPrefix(name, "BACKUP"), name == "RESTORE":
			want = eventbus.KindChanging
		case strings.Contains(name, "MIGRATE"):
			want = eventbus.KindMigrating
		case strings.HasPrefix(name, "EPILOG"), strings.HasPrefix(name, "SHUTDOWN"),
			strings.HasPrefix(name, "SAVE_"):
			want = eventbus.KindStopping
		case strings.HasPrefix(name, "BOOT"), strings.HasPrefix(name, "PROLOG"):
			want = eventbus.KindStarting
		}
		if want != "" && kind != want {
			t.Errorf("ACTIVE/%s has kind %s, want %s", name, kind, want)
		}
	}
	for n := 0; n <= 11; n++ {
		if strings.HasPrefix(StateName(n), "UNKNOWN_") {
			t.Errorf("STATE %d has no name", n)
		}
		if k := Kind(n, 0); !slices.Contains(eventbus.Kinds, k) {
			t.Errorf("STATE %d has kind %q", n, k)
		}
	}
}
