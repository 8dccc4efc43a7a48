package config

// Workers holds one section per worker; a missing section means the worker
// is off.
type Workers struct{}

func (w *Workers) setDefaults() {}

func (w *Workers) validate() error { return nil }
