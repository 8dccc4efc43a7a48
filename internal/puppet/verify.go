package puppet

import (
	"context"
	"fmt"
	"strings"

	"github.com/vmglue/vmglue/internal/worker"
)

var _ worker.Verifier = (*Target)(nil)

// Verify reads certificate_status of every certificate of req.Want (the
// certificates of a live VM) and changes nothing. The worker creates no
// certificate or node (the agent asks, autosign signs, PuppetDB learns the
// node from the agent's facts): signed, requested or not yet asked for,
// the objects are as the worker wants them. A certificate revoked outside
// vmglue is Kept: it is not vmglue's to re-issue, so it stays revoked and
// the runtime reports it (dead letter "drift"). The objects of req.Have
// that are not wanted (a deleted VM's) are left to Apply, which cleans
// them, and nodes are not read.
func (t *Target) Verify(ctx context.Context, req worker.Request) (worker.Readback, error) {
	rb := worker.Readback{Present: worker.Objects{}, Kept: worker.Objects{}}
	for k, v := range req.Have {
		rb.Present[k] = v
	}
	for k, v := range req.Want {
		rb.Present[k] = v
		name, ok := strings.CutPrefix(k, prefixCert)
		if !ok {
			continue
		}
		st, found, err := t.ca.certStatus(ctx, name)
		if err != nil {
			return rb, fmt.Errorf("verify puppet for vm %s: %w", req.VM.Key(), err)
		}
		if found && st.State == "revoked" {
			delete(rb.Present, k)
			rb.Kept[k] = "certificate revoked on the CA"
		}
	}
	return rb, nil
}
