package serve_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	mdns "github.com/miekg/dns"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/internal/config"
	"github.com/vmglue/vmglue/internal/testenv"
)

// browser starts Debian's headless Chromium (a missing binary fails the
// test) and returns a chromedp context on a fresh profile.
func browser(t *testing.T) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("chromium not installed (scripts/test-deps.sh installs it): ", err)
	}
	opts := []chromedp.ExecAllocatorOption{chromedp.ExecPath(path), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck, chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 900),
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true)}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		t.Fatal("start chromium: ", err)
	}
	return ctx
}

// screenshot saves the page as <name>.png in $VMGLUE_SCREENSHOTS, or in a
// temporary directory of the test.
func screenshot(t *testing.T, ctx context.Context, dir, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal("screenshot: ", err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// bodyText is the visible text of the page, "" while the browser is
// between two pages (a form submitted, a refresh).
func bodyText(t *testing.T, ctx context.Context) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body")))
	if err != nil {
		t.Log("read page: ", err)
	}
	return s
}

// The operator's page in a real browser: a hook fires through serve to a
// real BIND, the VM's page shows the event and the DNS worker's records
// (refreshing itself), a replay with a wrong operator token is refused and
// one with the right token replays.
func TestWebPageInBrowser(t *testing.T) {
	b := testenv.StartDNS(t, "bind", testenv.DNSOptions{})
	cfg := dnsConfig(t, b, "")
	cfg.Metrics.Listen = "127.0.0.1:0"
	const token = "e2e-operator-token-0123456789"
	tokenFile := writeFile(t, "alice.token", token+"\n")
	cfg.Web = config.Web{Actions: true, Operators: []config.Operator{{Name: "alice", TokenFile: tokenFile}}}
	in := start(t, cfg)
	if in.Info.WebURL == "" {
		t.Fatal("serve reports no operator's page")
	}
	shots := os.Getenv("VMGLUE_SCREENSHOTS")
	if shots == "" {
		shots = t.TempDir()
	}
	ctx := browser(t)
	_, js := in.connect(t)

	hook(t, in, t.TempDir(), running(42, "web42", "10.0.0.42", "2001:db8::42", time.Now().Unix()), "running")
	vmURL := in.Info.WebURL + "vm/one/42"
	testenv.WaitFor(t, 20*time.Second, "VM page", func() bool {
		if err := chromedp.Do(ctx, chromedp.Navigate(vmURL)); err != nil {
			t.Fatal(err)
		}
		title, err := chromedp.Run(ctx, chromedp.Title())
		return err == nil && strings.HasPrefix(title, "VM one/42")
	})
	// The page refreshes itself (meta refresh) until the worker applied.
	testenv.WaitFor(t, 30*time.Second, "the DNS worker's applied records on the VM page", func() bool {
		applied, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("td.applied")))
		txt := bodyText(t, ctx)
		return err == nil && strings.Contains(applied, "A web42.cloud.test. 10.0.0.42") &&
			strings.Contains(applied, "PTR 42.0.0.10.in-addr.arpa. web42.cloud.test.") &&
			strings.Contains(txt, "running") && strings.Contains(txt, "opennebula://one")
	})
	if got := b.Lookup(t, "web42.cloud.test.", mdns.TypeA); len(got) != 1 || got[0] != "10.0.0.42" {
		t.Fatalf("BIND has A %v", got)
	}
	screenshot(t, ctx, shots, "vm")

	stored := func() uint64 {
		st, err := js.Stream(context.Background(), eventbus.StreamEvents)
		if err != nil {
			t.Fatal(err)
		}
		return st.CachedInfo().State.Msgs
	}
	before := stored()
	// replay fills the token in the VM page's form, clicks Replay and
	// waits for the answer's page to show want.
	replay := func(tok, want string) {
		t.Helper()
		err := chromedp.Do(ctx, chromedp.Navigate(vmURL), chromedp.SetValue(chromedp.CSS(`input[name="token"]`), tok),
			chromedp.Click(chromedp.CSS("#replay")))
		if err != nil {
			t.Fatal("replay in the browser: ", err)
		}
		testenv.WaitFor(t, 10*time.Second, "page with "+want, func() bool { return strings.Contains(bodyText(t, ctx), want) })
	}
	replay("not-the-token", "an operator token is required")
	screenshot(t, ctx, shots, "refused")
	if got := stored(); got != before {
		t.Fatalf("a refused replay stored events: %d, before %d", got, before)
	}
	replay(token, "replayed 1 events of one/42 (by alice)")
	screenshot(t, ctx, shots, "replayed")
	testenv.WaitFor(t, 10*time.Second, "replayed event stored", func() bool { return stored() == before+1 })

	pages := []struct{ path, want, not string }{
		{"", "one/42", ""},
		{"workers", "VMGLUE_EVENTS", "(/, )"}, // no empty last error
		{"dlq", "no dead letter", ""},
	}
	for _, p := range pages {
		if err := chromedp.Do(ctx, chromedp.Navigate(in.Info.WebURL+p.path)); err != nil {
			t.Fatal(err)
		}
		if txt := bodyText(t, ctx); !strings.Contains(txt, p.want) || p.not != "" && strings.Contains(txt, p.not) {
			t.Errorf("page /%s lacks %q or has %q: %q", p.path, p.want, p.not, txt)
		}
		screenshot(t, ctx, shots, "page-"+map[string]string{"": "vms"}[p.path]+p.path)
	}
	t.Logf("screenshots in %s", shots)
}
