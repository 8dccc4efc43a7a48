package lb

import (
	"context"
	"fmt"
	"math"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Admin state flags of "show servers state" (srv_admin_state).
const (
	adminForcedMaint = 0x01 // "disable server" or a fresh "add server"
	adminForcedDrain = 0x08 // "set server state drain"
	checkEnabled     = 0x04 // srv_check_state: health checks running
)

// server is one line of "show servers state".
type server struct {
	Backend, Name string
	Addr          string // as HAProxy shows it, "-" for an unresolved FQDN
	Port          int
	Admin         int
	Check         int
}

// addrPort returns "ip:port" as vmglue writes it (IPv6 in brackets).
func (s server) addrPort() string {
	a, err := netip.ParseAddr(s.Addr)
	if err != nil {
		return s.Addr + ":" + strconv.Itoa(s.Port)
	}
	return netip.AddrPortFrom(a, uint16(s.Port)).String()
}

// serversState reads "show servers state" (every backend) into a map keyed
// by "backend/server".
func serversState(ctx context.Context, c *Client) (map[string]server, error) {
	r, err := c.Do(ctx, "show servers state")
	if err != nil {
		return nil, err
	}
	return parseServersState(r)
}

func parseServersState(r string) (map[string]server, error) {
	lines := strings.Split(r, "\n")
	if len(lines) == 0 || strings.TrimSpace(lines[0]) != "1" {
		return nil, fmt.Errorf("show servers state: %w: %q", ErrRejected, firstLine(r))
	}
	out := map[string]server{}
	for _, l := range lines[1:] {
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		f := strings.Fields(l)
		if len(f) < 19 {
			return nil, fmt.Errorf("show servers state: short line %q", firstLine(l))
		}
		admin, err1 := strconv.Atoi(f[6])
		check, err2 := strconv.Atoi(f[13])
		port, err3 := strconv.Atoi(f[18])
		if err1 != nil || err2 != nil || err3 != nil {
			return nil, fmt.Errorf("show servers state: bad line %q", firstLine(l))
		}
		s := server{Backend: f[1], Name: f[3], Addr: f[4], Port: port, Admin: admin, Check: check}
		out[s.Backend+"/"+s.Name] = s
	}
	return out, nil
}

// sessions returns the sessions (scur) plus queued requests (qcur) of one
// server from "show stat": what still depends on it while it drains.
func sessions(ctx context.Context, c *Client, backend, name string) (int, error) {
	r, err := c.Do(ctx, "show stat "+backend+" 4 -1")
	if err != nil {
		return 0, err
	}
	if !strings.HasPrefix(r, "# pxname,") {
		return 0, replyError("show stat "+backend, r, "")
	}
	for _, l := range strings.Split(r, "\n")[1:] {
		f := strings.Split(l, ",")
		if len(f) < 5 || f[0] != backend || f[1] != name {
			continue
		}
		q, err1 := strconv.Atoi(f[2])
		s, err2 := strconv.Atoi(f[4])
		if err1 != nil || err2 != nil {
			return 0, fmt.Errorf("show stat %s: bad line for %s", backend, name)
		}
		return q + s, nil
	}
	return 0, fmt.Errorf("show stat %s/%s: %w", backend, name, ErrNoSuchServer)
}

// spec is the value of one object: the server's address and options, and
// where it is in its life.
//
//	"10.0.0.42:8080 weight 10 check"                          in the pool
//	"added 10.0.0.42:8080 weight 10 check"                    added, not yet enabled
//	"draining since 1700000000.250 10.0.0.42:8080 weight 10 check" leaving the pool
//	"wanted 10.0.0.42:8080 weight 10 check"                   wanted, instance not reached
//	"leaving 10.0.0.42:8080 weight 10 check"                  unwanted, instance not reached
//
// The drain start is in the value so that the runtime's record of what is
// applied carries it across a restart of vmglue. The last two are markers
// of an instance that could not be reached: Resync adds a wanted server
// when the instance answers and drains and deletes a leaving one, never
// the other way round. A marked server is vmglue's only if HAProxy has it
// at the marker's address.
type spec struct {
	Addr    netip.AddrPort
	Options string
	Added   bool      // added but not yet enabled
	Since   time.Time // non-zero: draining since then
	Wanted  bool      // wanted, not yet confirmed on the instance
	Leaving bool      // unwanted, not yet drained on the instance
}

const (
	prefixAdded    = "added "
	prefixDraining = "draining since "
	prefixWanted   = "wanted "
	prefixLeaving  = "leaving "
)

var optionsRE = regexp.MustCompile(`^[A-Za-z0-9. -]*$`)

func parseSpec(v string) (spec, error) {
	var s spec
	if rest, ok := strings.CutPrefix(v, prefixDraining); ok {
		sec, tail, _ := strings.Cut(rest, " ")
		f, err := strconv.ParseFloat(sec, 64)
		if err != nil || f <= 0 {
			return spec{}, fmt.Errorf("value %q: bad drain start", v)
		}
		s.Since, v = time.UnixMilli(int64(math.Round(f*1000))), tail
	} else if rest, ok := strings.CutPrefix(v, prefixAdded); ok {
		s.Added, v = true, rest
	} else if rest, ok := strings.CutPrefix(v, prefixWanted); ok {
		s.Wanted, v = true, rest
	} else if rest, ok := strings.CutPrefix(v, prefixLeaving); ok {
		s.Leaving, v = true, rest
	}
	addr, opts, _ := strings.Cut(v, " ")
	a, err := netip.ParseAddrPort(addr)
	if err != nil || a.Port() == 0 || !a.Addr().IsValid() || a.Addr().Zone() != "" {
		return spec{}, fmt.Errorf("value %q: invalid address %q", v, addr)
	}
	if !optionsRE.MatchString(opts) {
		return spec{}, fmt.Errorf("value %q: invalid server options", v)
	}
	s.Addr, s.Options = a, opts
	return s, nil
}

// inPool is the value of a server in the pool.
func (s spec) inPool() string {
	if s.Options == "" {
		return s.Addr.String()
	}
	return s.Addr.String() + " " + s.Options
}

func (s spec) String() string {
	switch {
	case !s.Since.IsZero():
		ms := s.Since.UnixMilli()
		return fmt.Sprintf("%s%d.%03d %s", prefixDraining, ms/1000, ms%1000, s.inPool())
	case s.Added:
		return prefixAdded + s.inPool()
	case s.Wanted:
		return prefixWanted + s.inPool()
	case s.Leaving:
		return prefixLeaving + s.inPool()
	}
	return s.inPool()
}

// marked reports whether s is a marker of an instance not reached.
func (s spec) marked() bool { return s.Wanted || s.Leaving }

// unreached returns the value to record for an object of an instance that
// could not be reached (or stopped answering half way), from the value now
// in place (old, "" for none) and the wanted one (new, "" for none): one
// that Resync completes in the right direction when the instance answers.
//
//   - wanted and in the pool, or added, at some address: unchanged (Resync
//     puts it back; the next converge moves it if the address changed);
//   - wanted and anything else (none, a marker, draining at the wanted
//     address): "wanted <new>", which Resync adds;
//   - unwanted, or draining elsewhere: "leaving <old>" for a server in the
//     pool, a drain or a leaving marker unchanged; Resync drains and deletes
//     it, never puts it back.
func unreached(old, new string) string {
	from, err := parseSpec(old)
	if old != "" && err != nil {
		return old // Apply reports the bad value
	}
	inPool := old != "" && from.Since.IsZero() && !from.marked()
	if new != "" {
		to, err := parseSpec(new)
		switch {
		case inPool:
			return old
		case old != "" && !from.Wanted && err == nil && from.Addr != to.Addr:
			// Draining or leaving another address: that server must go
			// first; the next converge adds the new one.
			return old
		case err == nil:
			to.Wanted = true
			return to.String()
		}
		return old
	}
	if inPool {
		from.Added, from.Leaving = false, true
		return from.String()
	}
	if from.Wanted {
		from.Wanted, from.Leaving = false, true
		return from.String()
	}
	return old
}

// checks reports whether the options configure health checks.
func (s spec) checks() bool {
	for _, o := range strings.Fields(s.Options) {
		if o == "check" {
			return true
		}
	}
	return false
}

// objectKey is "<instance>/<backend>/<server>".
type objectKey struct{ Instance, Backend, Server string }

func parseKey(k string) (objectKey, error) {
	p := strings.Split(k, "/")
	if len(p) != 3 || !instanceRE.MatchString(p[0]) || !nameRE.MatchString(p[1]) || !validServerName(p[2]) {
		return objectKey{}, fmt.Errorf("object key %q: want <instance>/<backend>/<server>", k)
	}
	return objectKey{p[0], p[1], p[2]}, nil
}

func (k objectKey) String() string  { return k.Instance + "/" + k.Backend + "/" + k.Server }
func (k objectKey) haproxy() string { return k.Backend + "/" + k.Server }

func validServerName(s string) bool { return len(s) <= MaxServerName && nameRE.MatchString(s) }
