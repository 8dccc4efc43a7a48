package opennebula

import (
	"strconv"

	"github.com/vmglue/vmglue/eventbus"
)

// VM STATE values that the mapping needs by number.
const (
	stateActive = 3
)

// stateInfo is the name and kind of one STATE or LCM_STATE value.
type stateInfo struct {
	name string
	kind string // "" for STATE ACTIVE: LCM_STATE decides
}

// states are the VM STATE values (VirtualMachine.h enum VmState, 5.12 to 7.4).
var states = map[int]stateInfo{
	0:  {"INIT", eventbus.KindCreated},
	1:  {"PENDING", eventbus.KindCreated},
	2:  {"HOLD", eventbus.KindCreated},
	3:  {"ACTIVE", ""},
	4:  {"STOPPED", eventbus.KindStopped},
	5:  {"SUSPENDED", eventbus.KindStopped},
	6:  {"DONE", eventbus.KindDeleted},
	7:  {"FAILED", eventbus.KindFailed}, // defined but unused by oned
	8:  {"POWEROFF", eventbus.KindStopped},
	9:  {"UNDEPLOYED", eventbus.KindStopped},
	10: {"CLONING", eventbus.KindCreated},
	11: {"CLONING_FAILURE", eventbus.KindFailed},
}

// lcmStates are the LCM_STATE values (enum LcmState, 5.12 to 7.4). 13 and 14
// were removed before 5.12, 55 exists only in 5.12, 58 was never used.
var lcmStates = map[int]stateInfo{
	0:  {"LCM_INIT", eventbus.KindStarting},
	1:  {"PROLOG", eventbus.KindStarting},
	2:  {"BOOT", eventbus.KindStarting},
	3:  {"RUNNING", eventbus.KindRunning},
	4:  {"MIGRATE", eventbus.KindMigrating},
	5:  {"SAVE_STOP", eventbus.KindStopping},
	6:  {"SAVE_SUSPEND", eventbus.KindStopping},
	7:  {"SAVE_MIGRATE", eventbus.KindMigrating},
	8:  {"PROLOG_MIGRATE", eventbus.KindMigrating},
	9:  {"PROLOG_RESUME", eventbus.KindStarting},
	10: {"EPILOG_STOP", eventbus.KindStopping},
	11: {"EPILOG", eventbus.KindStopping},
	12: {"SHUTDOWN", eventbus.KindStopping},
	13: {"CANCEL", eventbus.KindStopping},
	14: {"FAILURE", eventbus.KindFailed},
	15: {"CLEANUP_RESUBMIT", eventbus.KindStarting},
	16: {"UNKNOWN", eventbus.KindUnknown},
	17: {"HOTPLUG", eventbus.KindChanging},
	18: {"SHUTDOWN_POWEROFF", eventbus.KindStopping},
	19: {"BOOT_UNKNOWN", eventbus.KindStarting},
	20: {"BOOT_POWEROFF", eventbus.KindStarting},
	21: {"BOOT_SUSPENDED", eventbus.KindStarting},
	22: {"BOOT_STOPPED", eventbus.KindStarting},
	23: {"CLEANUP_DELETE", eventbus.KindStopping},
	24: {"HOTPLUG_SNAPSHOT", eventbus.KindChanging},
	25: {"HOTPLUG_NIC", eventbus.KindChanging},
	26: {"HOTPLUG_SAVEAS", eventbus.KindChanging},
	27: {"HOTPLUG_SAVEAS_POWEROFF", eventbus.KindChanging},
	28: {"HOTPLUG_SAVEAS_SUSPENDED", eventbus.KindChanging},
	29: {"SHUTDOWN_UNDEPLOY", eventbus.KindStopping},
	30: {"EPILOG_UNDEPLOY", eventbus.KindStopping},
	31: {"PROLOG_UNDEPLOY", eventbus.KindStarting},
	32: {"BOOT_UNDEPLOY", eventbus.KindStarting},
	33: {"HOTPLUG_PROLOG_POWEROFF", eventbus.KindChanging},
	34: {"HOTPLUG_EPILOG_POWEROFF", eventbus.KindChanging},
	35: {"BOOT_MIGRATE", eventbus.KindMigrating},
	36: {"BOOT_FAILURE", eventbus.KindFailed},
	37: {"BOOT_MIGRATE_FAILURE", eventbus.KindFailed},
	38: {"PROLOG_MIGRATE_FAILURE", eventbus.KindFailed},
	39: {"PROLOG_FAILURE", eventbus.KindFailed},
	40: {"EPILOG_FAILURE", eventbus.KindFailed},
	41: {"EPILOG_STOP_FAILURE", eventbus.KindFailed},
	42: {"EPILOG_UNDEPLOY_FAILURE", eventbus.KindFailed},
	43: {"PROLOG_MIGRATE_POWEROFF", eventbus.KindMigrating},
	44: {"PROLOG_MIGRATE_POWEROFF_FAILURE", eventbus.KindFailed},
	45: {"PROLOG_MIGRATE_SUSPEND", eventbus.KindMigrating},
	46: {"PROLOG_MIGRATE_SUSPEND_FAILURE", eventbus.KindFailed},
	47: {"BOOT_UNDEPLOY_FAILURE", eventbus.KindFailed},
	48: {"BOOT_STOPPED_FAILURE", eventbus.KindFailed},
	49: {"PROLOG_RESUME_FAILURE", eventbus.KindFailed},
	50: {"PROLOG_UNDEPLOY_FAILURE", eventbus.KindFailed},
	51: {"DISK_SNAPSHOT_POWEROFF", eventbus.KindChanging},
	52: {"DISK_SNAPSHOT_REVERT_POWEROFF", eventbus.KindChanging},
	53: {"DISK_SNAPSHOT_DELETE_POWEROFF", eventbus.KindChanging},
	54: {"DISK_SNAPSHOT_SUSPENDED", eventbus.KindChanging},
	55: {"DISK_SNAPSHOT_REVERT_SUSPENDED", eventbus.KindChanging},
	56: {"DISK_SNAPSHOT_DELETE_SUSPENDED", eventbus.KindChanging},
	57: {"DISK_SNAPSHOT", eventbus.KindChanging},
	59: {"DISK_SNAPSHOT_DELETE", eventbus.KindChanging},
	60: {"PROLOG_MIGRATE_UNKNOWN", eventbus.KindMigrating},
	61: {"PROLOG_MIGRATE_UNKNOWN_FAILURE", eventbus.KindFailed},
	62: {"DISK_RESIZE", eventbus.KindChanging},
	63: {"DISK_RESIZE_POWEROFF", eventbus.KindChanging},
	64: {"DISK_RESIZE_UNDEPLOYED", eventbus.KindChanging},
	65: {"HOTPLUG_NIC_POWEROFF", eventbus.KindChanging},
	66: {"HOTPLUG_RESIZE", eventbus.KindChanging},
	67: {"HOTPLUG_SAVEAS_UNDEPLOYED", eventbus.KindChanging},
	68: {"HOTPLUG_SAVEAS_STOPPED", eventbus.KindChanging},
	69: {"BACKUP", eventbus.KindChanging},
	70: {"BACKUP_POWEROFF", eventbus.KindChanging},
	71: {"RESTORE", eventbus.KindChanging},
}

// StateName returns the OpenNebula name of a VM STATE number ("ACTIVE"), or
// "UNKNOWN_<n>" for a number OpenNebula does not define.
func StateName(n int) string {
	if s, ok := states[n]; ok {
		return s.name
	}
	return unknownName(n)
}

// LCMStateName returns the OpenNebula name of an LCM_STATE number
// ("RUNNING"), or "UNKNOWN_<n>" for a number OpenNebula does not define.
func LCMStateName(n int) string {
	if s, ok := lcmStates[n]; ok {
		return s.name
	}
	return unknownName(n)
}

// Kind returns the eventbus kind of a STATE and LCM_STATE pair, following the
// table in the package documentation. An undefined STATE, or ACTIVE with an
// undefined LCM_STATE, gives eventbus.KindUnknown.
func Kind(state, lcm int) string {
	s, ok := states[state]
	if !ok {
		return eventbus.KindUnknown
	}
	if s.kind != "" {
		return s.kind
	}
	if l, ok := lcmStates[lcm]; ok {
		return l.kind
	}
	return eventbus.KindUnknown
}

func unknownName(n int) string { return "UNKNOWN_" + strconv.Itoa(n) }
