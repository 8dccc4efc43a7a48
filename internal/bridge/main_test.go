package bridge

import (
	"os"
	"testing"

	"github.com/vmglue/vmglue/internal/testenv"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testenv.StopOpenStack() // only a stack this binary started itself
	os.Exit(code)
}
