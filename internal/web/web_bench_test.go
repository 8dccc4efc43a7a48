package web_test

import (
	"bytes"
	"net/http"
	"strconv"
	"testing"

	"github.com/vmglue/vmglue/eventbus"
	"github.com/vmglue/vmglue/internal/ops/opstest"
)

// BenchmarkPages renders each page over 500 VMs converged by two workers
// on a real nats-server (go test -bench Pages ./internal/web).
func BenchmarkPages(b *testing.B) {
	e := opstest.New(b, "dns", "lb")
	for i := 1; i <= 500; i++ {
		e.Publish(opstest.VM(strconv.Itoa(i), eventbus.KindRunning))
	}
	e.Idle(b)
	s, err := newPage(e, false, &bytes.Buffer{})
	if err != nil {
		b.Fatal(err)
	}
	for _, path := range []string{"/", "/?q=web42", "/vm/one/42", "/workers", "/dlq"} {
		b.Run(path, func(b *testing.B) {
			for b.Loop() {
				if res, _ := get(b, s, path); res.StatusCode != http.StatusOK {
					b.Fatal(res.Status)
				}
			}
		})
	}
}
