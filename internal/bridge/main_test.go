package bridge

import (
	"testing"

	"github.com/vmglue/vmglue/internal/testenv"
)

func TestMain(m *testing.M) { testenv.MainOpenStack(m) }
