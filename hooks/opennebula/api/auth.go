package api

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// DefaultEndpoint is where OpenNebula's CLI looks for oned when ONE_XMLRPC
// is not set.
const DefaultEndpoint = "http://localhost:2633/RPC2"

// credentials is the session string of every call ("user:password") and
// where it came from. The password is never printed: String and the errors
// of this package name only the user and the source.
type credentials struct {
	session string
	user    string
	source  string // "ONE_AUTH=/path", "/home/x/.one/one_auth", "auth_file /path"
}

func (c credentials) String() string {
	return fmt.Sprintf("user %q (credentials from %s)", c.user, c.source)
}

// endpoint returns the XML-RPC endpoint as OpenNebula's CLI chooses it:
// the configured one, else $ONE_XMLRPC, else DefaultEndpoint.
func endpoint(configured string) string {
	if configured != "" {
		return configured
	}
	if e := os.Getenv("ONE_XMLRPC"); e != "" {
		return e
	}
	return DefaultEndpoint
}

// loadCredentials reads the first line of the auth file as OpenNebula's
// CLI does: the configured file, else the file named by $ONE_AUTH, else
// ~/.one/one_auth. The line is "user:password" (or "user:token" after
// `oneuser login`).
func loadCredentials(configured string) (credentials, error) {
	path, source := configured, "auth_file "+configured
	if path == "" {
		if env := os.Getenv("ONE_AUTH"); env != "" {
			path, source = env, "ONE_AUTH="+env
		} else {
			home, err := os.UserHomeDir()
			if err != nil {
				return credentials{}, fmt.Errorf("find ~/.one/one_auth: %w (set ONE_AUTH or auth_file)", err)
			}
			path = filepath.Join(home, ".one", "one_auth")
			source = path
		}
	}
	f, err := os.Open(path)
	if err != nil {
		return credentials{}, fmt.Errorf("read opennebula credentials from %s: %w", source, unwrapPath(err))
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 4096), 64<<10)
	line := ""
	if sc.Scan() {
		line = strings.TrimSpace(sc.Text())
	}
	if err := sc.Err(); err != nil {
		return credentials{}, fmt.Errorf("read opennebula credentials from %s: %w", source, err)
	}
	user, pass, ok := strings.Cut(line, ":")
	if !ok || user == "" || pass == "" {
		// Never quote the line: it may be a password without its user.
		return credentials{}, fmt.Errorf("read opennebula credentials from %s: first line is not user:password", source)
	}
	return credentials{session: line, user: user, source: source}, nil
}

// unwrapPath drops the *PathError's path (the message names the source).
func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
