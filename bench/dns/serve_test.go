package dnsbench

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
)

// serveFigures prints what one `vmglue serve` cost for a burst's create and
// delete phases: its CPU seconds, per 1,000 events, and its peak resident
// set (VmHWM: the process is fresh for each burst, so its peak is the
// burst's). make bench reads the line.
func serveFigures(b *testing.B, label string, pid int, create, del result, events int) {
	cpu := create.serveCPU + del.serveCPU
	hwm, err := peakRSS(pid)
	if err != nil {
		b.Fatal(err)
	}
	fmt.Printf("%-22s CPU %s for %d events (%.2fs per 1,000 events), peak RSS %.1f MiB\n",
		label, secs(cpu), events, cpu.Seconds()*1000/float64(events), float64(hwm)/(1<<20))
}

// peakRSS returns the peak resident set size (VmHWM) of a process in bytes.
func peakRSS(pid int) (int64, error) {
	text, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("read status of %d: %w", pid, err)
	}
	sc := bufio.NewScanner(bytes.NewReader(text))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("VmHWM of %d: %w", pid, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/%d/status", pid)
}
