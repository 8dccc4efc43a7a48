package testenv

import (
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// OneVM describes a VM for OneVMXML: the fields the workers look at.
type OneVM struct {
	ID    int
	Name  string
	IP    string // IPv4 of NIC 0
	IP6   string // IP6_GLOBAL of NIC 0
	State int    // OpenNebula STATE number (3 ACTIVE, 6 DONE, 8 POWEROFF)
	LCM   int    // LCM_STATE number (3 RUNNING)
	// PrevState and PrevLCM are PREV_STATE and PREV_LCM_STATE, the state
	// the VM left (a state event's document carries them); both 0 leaves
	// them out, as the API's pool bodies do.
	PrevState, PrevLCM int
	Seq                int   // SEQ of the last HISTORY record
	Time               int64 // epoch seconds of the transition
	Host               string
	UserAttr           map[string]string // USER_TEMPLATE
}

// OneVMXML renders a VM document the way OpenNebula's HEM hands it to a hook
// (pretty-printed, CDATA values).
func OneVMXML(v OneVM) []byte {
	if v.Host == "" {
		v.Host = "node1"
	}
	etime := int64(0)
	if v.State == 6 {
		etime = v.Time
	}
	var b strings.Builder
	fmt.Fprintf(&b, "<VM>\n  <ID>%d</ID>\n  <UID>0</UID>\n  <GID>0</GID>\n  <UNAME>oneadmin</UNAME>\n  <GNAME>oneadmin</GNAME>\n", v.ID)
	fmt.Fprintf(&b, "  <NAME><![CDATA[%s]]></NAME>\n  <LAST_POLL>0</LAST_POLL>\n  <STATE>%d</STATE>\n  <LCM_STATE>%d</LCM_STATE>\n", v.Name, v.State, v.LCM)
	if v.PrevState != 0 || v.PrevLCM != 0 {
		fmt.Fprintf(&b, "  <PREV_STATE>%d</PREV_STATE>\n  <PREV_LCM_STATE>%d</PREV_LCM_STATE>\n", v.PrevState, v.PrevLCM)
	}
	fmt.Fprintf(&b, "  <STIME>%d</STIME>\n  <ETIME>%d</ETIME>\n  <TEMPLATE>\n", v.Time-100, etime)
	if v.IP != "" || v.IP6 != "" {
		b.WriteString("    <NIC>\n")
		if v.IP != "" {
			fmt.Fprintf(&b, "      <IP><![CDATA[%s]]></IP>\n", v.IP)
		}
		if v.IP6 != "" {
			fmt.Fprintf(&b, "      <IP6_GLOBAL><![CDATA[%s]]></IP6_GLOBAL>\n", v.IP6)
		}
		fmt.Fprintf(&b, "      <MAC><![CDATA[02:00:00:00:%02x:%02x]]></MAC>\n      <NETWORK><![CDATA[public]]></NETWORK>\n      <NIC_ID><![CDATA[0]]></NIC_ID>\n    </NIC>\n", (v.ID>>8)&0xff, v.ID&0xff)
	}
	b.WriteString("  </TEMPLATE>\n  <USER_TEMPLATE>\n")
	for k, val := range v.UserAttr {
		fmt.Fprintf(&b, "    <%s><![CDATA[%s]]></%s>\n", k, val, k)
	}
	b.WriteString("  </USER_TEMPLATE>\n  <HISTORY_RECORDS>\n")
	fmt.Fprintf(&b, "    <HISTORY>\n      <OID>%d</OID>\n      <SEQ>%d</SEQ>\n      <HOSTNAME>%s</HOSTNAME>\n      <STIME>%d</STIME>\n      <ETIME>%d</ETIME>\n    </HISTORY>\n", v.ID, v.Seq, v.Host, v.Time, etime)
	b.WriteString("  </HISTORY_RECORDS>\n</VM>")
	return []byte(b.String())
}

// HookStdin is what HEM writes to a hook's stdin with ARGUMENTS_STDIN=yes and
// ARGUMENTS="$TEMPLATE <word>": no trailing newline.
func HookStdin(xml []byte, word string) []byte {
	return []byte(base64.StdEncoding.EncodeToString(xml) + " " + word)
}

// Spooled counts the events waiting in a hook spool directory (one .json
// file each; the quarantine directory is not counted).
func Spooled(t testing.TB, dir string) int {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		if filepath.Ext(e.Name()) == ".json" {
			n++
		}
	}
	return n
}

// BuildBinary builds a static binary of a package of this module into dir and
// returns its path. For TestMain functions, so it returns an error.
func BuildBinary(pkg, dir string) (string, error) {
	out := filepath.Join(dir, filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build %s: %v\n%s", pkg, err, b)
	}
	return out, nil
}
