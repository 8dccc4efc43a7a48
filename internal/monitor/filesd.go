package monitor

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/internal/worker"
)

// filesdPrefix starts the object key of a VM's entry in a job's file:
// "file_sd/<job>" → the entry as JSON.
const filesdPrefix = "file_sd/"

// Entry is one element of a file_sd file: the targets of one VM in a job
// and their labels.
type Entry struct {
	Targets []string          `json:"targets"`
	Labels  map[string]string `json:"labels"`
}

// desiredTargets adds the VM's file_sd entries to want, one per job whose
// present kinds hold the VM's kind and that finds an address.
func (t *Target) desiredTargets(vm *eventbus.VM, want worker.Objects) {
	for _, j := range t.cfg.FileSD.Jobs {
		if vm.Deleted() || !slices.Contains(j.PresentKinds, vm.Kind) {
			continue
		}
		e := Entry{Labels: map[string]string{}}
		for _, n := range vm.NICs {
			for _, f := range j.Addresses {
				a, err := netip.ParseAddr(nicAddr(n, f))
				if err != nil || a.Zone() != "" {
					continue
				}
				if tg := netip.AddrPortFrom(a, uint16(j.Port)).String(); !slices.Contains(e.Targets, tg) {
					e.Targets = append(e.Targets, tg)
				}
			}
		}
		if len(e.Targets) == 0 {
			continue
		}
		slices.Sort(e.Targets)
		fixed := map[string]string{"cloud": vm.Cloud, "vm_id": vm.ID, "vm_name": vm.Name, "vm_owner": vm.Owner}
		for k, v := range fixed {
			if v = clean(v); v != "" {
				e.Labels[k] = v
			}
		}
		for l, src := range j.Labels {
			if v := lookup(vm, src); v != "" {
				e.Labels[l] = v
			}
		}
		b, _ := json.Marshal(e)
		want[filesdPrefix+j.Name] = string(b)
	}
}

func nicAddr(n eventbus.NIC, field string) string {
	switch field {
	case "ip":
		return n.IP
	case "ip6":
		return n.IP6
	case "ip6_global":
		return n.IP6Global
	case "ip6_ula":
		return n.IP6ULA
	}
	return ""
}

// sdFiles holds every VM's entry of every job and writes each job's file.
// Entries carry the revision of the shared store (see store.go) they come
// from, so that an older copy never replaces a newer one.
type sdFiles struct {
	dir string

	mu      sync.Mutex
	entries map[string]map[string]versioned // job → VM key → entry
	dirty   map[string]bool                 // jobs to write
	gen     uint64                          // bumped by every change
	written uint64                          // every change up to this generation is on disk

	wmu sync.Mutex // one writer at a time
	m   *metrics
}

type versioned struct {
	rev     uint64
	entry   string // "" when deleted
	targets int    // in entry
}

func newSDFiles(cfg *FileSDConfig, m *metrics) *sdFiles {
	// Generation 1 is the first write of every file, empty or not.
	f := &sdFiles{dir: cfg.Dir, entries: map[string]map[string]versioned{}, dirty: map[string]bool{}, gen: 1, m: m}
	for _, j := range cfg.Jobs {
		f.entries[j.Name] = map[string]versioned{}
		f.dirty[j.Name] = true
	}
	return f
}

// set records a VM's entry of a job at revision rev ("" removes it) and
// returns the generation that holds the change; older revisions are
// ignored.
func (f *sdFiles) set(job, vmKey, entry string, rev uint64) uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	m, ok := f.entries[job]
	if !ok {
		return f.gen // a job no longer configured
	}
	if old, ok := m[vmKey]; ok && old.rev > rev {
		return f.gen
	}
	n := 0
	var e Entry
	if entry != "" && json.Unmarshal([]byte(entry), &e) == nil {
		n = len(e.Targets)
	}
	m[vmKey] = versioned{rev: rev, entry: entry, targets: n}
	f.dirty[job] = true
	f.gen++
	return f.gen
}

// touchAll marks every job's file for writing and returns the generation
// that holds it.
func (f *sdFiles) touchAll() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	for job := range f.entries {
		f.dirty[job] = true
	}
	f.gen++
	return f.gen
}

// flush writes every changed job's file unless a write that started after
// generation gen already did (group commit: one write serves every change
// made before it began).
func (f *sdFiles) flush(gen uint64) error {
	f.wmu.Lock()
	defer f.wmu.Unlock()
	f.mu.Lock()
	if f.written >= gen {
		f.mu.Unlock()
		return nil
	}
	start := f.gen
	files := map[string][]byte{}
	for job := range f.dirty {
		files[job] = f.render(job)
	}
	clear(f.dirty)
	f.mu.Unlock()
	for job, b := range files {
		if err := writeAtomic(filepath.Join(f.dir, job+".json"), b); err != nil {
			f.mu.Lock()
			f.dirty[job] = true
			f.mu.Unlock()
			return err
		}
		f.m.writes.WithLabelValues(job).Inc()
	}
	f.mu.Lock()
	f.written = max(f.written, start)
	f.mu.Unlock()
	return nil
}

// render returns a job's file: its entries as a JSON array ordered by VM
// key. Called with mu held.
func (f *sdFiles) render(job string) []byte {
	keys := make([]string, 0, len(f.entries[job]))
	targets := 0
	for k, v := range f.entries[job] {
		if v.entry != "" {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	var b strings.Builder
	b.WriteString("[")
	for i, k := range keys {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString("\n  ")
		b.WriteString(f.entries[job][k].entry)
		targets += f.entries[job][k].targets
	}
	b.WriteString("\n]\n")
	f.m.targets.WithLabelValues(job).Set(float64(targets))
	return []byte(b.String())
}

// writeAtomic replaces path with b: a temporary file in the same
// directory, fsync, rename, fsync of the directory. A reader sees the old
// file or the new one, never a part.
func writeAtomic(path string, b []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create file_sd dir: %w", err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name()) // a no-op after the rename
	_, err = tmp.Write(b)
	if err == nil {
		err = tmp.Chmod(0o644)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// ReadFile reads a file_sd file as the worker writes it (for tests and
// tools): its entries, nil when the file does not exist.
func ReadFile(path string) ([]Entry, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var entries []Entry
	if err := json.Unmarshal(b, &entries); err != nil {
		return nil, fmt.Errorf("%s is not a file_sd file: %w", path, err)
	}
	return entries, nil
}
