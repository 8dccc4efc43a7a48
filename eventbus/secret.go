package eventbus

import (
	"os"
	"strings"
)

// ReadSecret reads a secret (a NATS password or token, a TSIG key) from a
// file, without its final line break, or, when file is empty, from the
// environment variable env; both empty give "". A file that cannot be read
// gives the *fs.PathError of os.ReadFile, which names the file, never the
// value.
func ReadSecret(file, env string) (string, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", err
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	}
	if env != "" {
		return os.Getenv(env), nil
	}
	return "", nil
}
