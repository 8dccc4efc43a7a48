package config

import (
	"path/filepath"

	"github.com/vmglue/vmglue/internal/monitor"
)

// DefaultWorkers are the workers `vmglue serve` runs when there is no
// configuration file at all: the monitor worker's file_sd output into
// <dataDir>/file_sd, one job "node" (port 9100, running VMs), so that a
// sample event visibly does something. Any configuration file replaces it.
func DefaultWorkers(dataDir string) Workers {
	c := &monitor.Config{FileSD: &monitor.FileSDConfig{
		Dir:  filepath.Join(dataDir, "file_sd"),
		Jobs: []monitor.Job{{Name: "node", Port: 9100}},
	}}
	c.SetDefaults()
	return Workers{"monitor": c}
}
