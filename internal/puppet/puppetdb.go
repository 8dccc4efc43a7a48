package puppet

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// pdbCmd is PuppetDB's command endpoint (facts/puppet.md §5).
const pdbCmd = "/pdb/cmd/v1"

// pdbTimeFormat is PuppetDB's timestamp format.
const pdbTimeFormat = "2006-01-02T15:04:05.000Z"

// cmdReply is PuppetDB's answer to a command in synchronous mode.
type cmdReply struct {
	UUID      string `json:"uuid"`
	Processed bool   `json:"processed"`
	TimedOut  bool   `json:"timed_out"`
	Error     string `json:"error"`
}

// deactivateNode sends "deactivate node" version 3 and waits up to wait for
// PuppetDB to process it, so that a processing error is seen (PuppetDB then
// answers 503 with the error; asynchronously it would only be logged).
//
// at is the command's producer_timestamp. Facts with a newer timestamp
// reactivate the node, so the worker passes the VM's deletion time: a late
// retry cannot keep a successor VM with the same certname deactivated
// beyond its next Puppet run.
func (c *client) deactivateNode(ctx context.Context, certname string, at time.Time, wait time.Duration) error {
	op := "deactivate node " + certname
	q := url.Values{
		"command":                    {"deactivate_node"},
		"version":                    {"3"},
		"certname":                   {certname},
		"secondsToWaitForCompletion": {strconv.Itoa(int(wait / time.Second))},
	}
	body, _ := json.Marshal(map[string]string{
		"certname":           certname,
		"producer_timestamp": at.UTC().Format(pdbTimeFormat),
	})
	code, resp, err := c.do(ctx, http.MethodPost, pdbCmd, q, body)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if code != http.StatusOK {
		var r cmdReply
		if json.Unmarshal(resp, &r) == nil && r.Error != "" {
			resp = []byte(r.Error)
		}
		return c.statusError(op, code, resp)
	}
	var r cmdReply
	if err := json.Unmarshal(resp, &r); err != nil {
		return fmt.Errorf("%s: decode answer: %w", op, err)
	}
	if r.TimedOut || !r.Processed {
		return fmt.Errorf("%s: puppetdb did not process command %s within %s", op, r.UUID, wait)
	}
	return nil
}
