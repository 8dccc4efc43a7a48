package config

// SetDataDirs makes the default data directory def and the packaged one
// system until the returned function restores them.
func SetDataDirs(def, system string) (restore func()) {
	d, s := defaultDataDir, systemDataDir
	defaultDataDir, systemDataDir = func() string { return def }, system
	return func() { defaultDataDir, systemDataDir = d, s }
}
