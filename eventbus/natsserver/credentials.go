package natsserver

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/vmglue/vmglue/eventbus"
)

// Credentials are the passwords of the roles, by role.
type Credentials map[string]string

// EnsureCredentials reads the role passwords in dataDir, creating the ones
// that are missing (256 random bits each): the directory 0700, each file
// 0600, owned by the user that runs serve. An existing file is never
// rewritten, so clients keep working across restarts.
func EnsureCredentials(dataDir string) (Credentials, error) {
	dir := filepath.Join(dataDir, eventbus.CredentialsDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create credentials dir: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("chmod credentials dir: %w", err)
	}
	c := Credentials{}
	for _, role := range eventbus.Roles {
		p := eventbus.CredentialPath(dataDir, role)
		pw, err := readPassword(p)
		if errors.Is(err, fs.ErrNotExist) {
			pw, err = writePassword(p)
		}
		if err != nil {
			return nil, fmt.Errorf("credential of role %s: %w", role, err)
		}
		c[role] = pw
	}
	return c, nil
}

// ReadCredential reads one role's password from dataDir.
func ReadCredential(dataDir, role string) (string, error) {
	return readPassword(eventbus.CredentialPath(dataDir, role))
}

func readPassword(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	pw := strings.TrimRight(string(b), "\r\n")
	if len(pw) < 16 {
		return "", fmt.Errorf("%s: shorter than 16 characters", path)
	}
	return pw, nil
}

// writePassword creates path with a new password, atomically: a crash
// leaves either no file or a whole one.
func writePassword(path string) (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random password: %w", err)
	}
	pw := base64.RawURLEncoding.EncodeToString(b)
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-")
	if err != nil {
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.WriteString(pw + "\n"); err != nil {
		tmp.Close()
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	// Link, not rename: a file another serve made meanwhile wins.
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return readPassword(path)
		}
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	return pw, nil
}

// users are the server's users of c, each with its role's permissions.
func (c Credentials) users() []*server.User {
	var us []*server.User
	for _, role := range eventbus.Roles {
		if pw, ok := c[role]; ok {
			us = append(us, &server.User{Username: role, Password: pw, Permissions: Permissions(role)})
		}
	}
	return us
}
