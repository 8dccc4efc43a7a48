// Package onedtest stands in for oned's hook manager driver (one_hm) in
// tests: a ZeroMQ PUB socket on loopback that sends VM state messages
// exactly as one_hm sends them. oned itself cannot be installed on the test
// machines, and no other server produces this stream, so this is the one
// fake the listener's tests use; everything after the socket is real.
//
// What it reproduces (../shared/facts/opennebula.md §3, read from
// src/hm_mad/one_hm.rb and src/hm/HookStateVM.cc of OpenNebula 5.12 to
// 7.2): each state change is one two-frame message per key, in the order
// one_hm publishes them: "EVENT VM <id>/<STATE>/<LCM_STATE> ", then
// "EVENT STATE VM/<STATE>/<LCM_STATE>/<id> ", then "EVENT SERVICE <sid> "
// when the VM's USER_TEMPLATE has SERVICE_ID; keys end in one space. The
// second frame is the base64 (standard alphabet, padded, no line breaks) of
// <HOOK_MESSAGE> holding the compact VM document.
package onedtest

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-zeromq/zmq4"

	"github.com/vmglue/vmglue/hooks/opennebula"
)

// Oned is the PUB socket of a stand-in one_hm.
type Oned struct {
	// Endpoint is where subscribers connect: tcp://127.0.0.1:<port>.
	Endpoint string
	pub      zmq4.Socket
	cancel   context.CancelFunc
}

// Start binds a PUB socket on a free loopback port. It is closed when the
// test ends.
func Start(t testing.TB) *Oned {
	t.Helper()
	return StartAt(t, "tcp://127.0.0.1:0")
}

// StartAt binds a PUB socket on endpoint (to restart oned on the same
// port). It is closed when the test ends.
func StartAt(t testing.TB, endpoint string) *Oned {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pub := zmq4.NewPub(ctx)
	var err error
	for range 50 { // a port just closed may still be held for a moment
		if err = pub.Listen(endpoint); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		cancel()
		t.Fatalf("oned stand-in: listen %s: %v", endpoint, err)
	}
	o := &Oned{Endpoint: "tcp://" + pub.Addr().String(), pub: pub, cancel: cancel}
	t.Cleanup(o.Close)
	return o
}

// Close closes the socket: subscribers see the connection drop.
func (o *Oned) Close() {
	_ = o.pub.Close()
	o.cancel()
}

// Send sends one raw two-frame message.
func (o *Oned) Send(key string, frame []byte) error {
	if err := o.pub.Send(zmq4.NewMsgFrom([]byte(key), frame)); err != nil {
		return fmt.Errorf("oned stand-in: send %q: %w", key, err)
	}
	return nil
}

// Publish sends the state change of a VM document (one.vm.info's form,
// pretty-printed or not) as one_hm does: every key of the change, each
// with the base64 HOOK_MESSAGE that holds the compacted document.
func (o *Oned) Publish(vmDoc []byte) error {
	keys, frame, err := Message(vmDoc)
	if err != nil {
		return err
	}
	for _, k := range keys {
		if err := o.Send(k, frame); err != nil {
			return err
		}
	}
	return nil
}

// Subscribed reports whether some subscriber has subscribed to filter.
func (o *Oned) Subscribed(filter string) bool {
	tp, ok := o.pub.(zmq4.Topics)
	return ok && slices.Contains(tp.Topics(), filter)
}

// WaitSubscribed waits until a subscriber's filter has reached the socket
// (before that, a PUB socket drops what it sends: ZeroMQ's slow joiner).
func (o *Oned) WaitSubscribed(t testing.TB, filter string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !o.Subscribed(filter) {
		if time.Now().After(deadline) {
			t.Fatalf("oned stand-in: no subscriber for %q after 20s", filter)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Message returns the keys one_hm publishes for the state change of a VM
// document and the second frame they share.
func Message(vmDoc []byte) ([]string, []byte, error) {
	vm, err := opennebula.ParseVM(vmDoc, "one")
	if err != nil {
		return nil, nil, fmt.Errorf("oned stand-in: %w", err)
	}
	compact := Compact(vmDoc)
	var b bytes.Buffer
	fmt.Fprintf(&b, "<HOOK_MESSAGE><HOOK_TYPE>STATE</HOOK_TYPE><HOOK_OBJECT>VM</HOOK_OBJECT>"+
		"<STATE>%s</STATE><LCM_STATE>%s</LCM_STATE><RESOURCE_ID>%s</RESOURCE_ID>", vm.State, vm.LCMState, vm.ID)
	sid := vm.Attributes["SERVICE_ID"]
	if sid != "" {
		fmt.Fprintf(&b, "<SERVICE_ID>%s</SERVICE_ID>", escape(sid))
	}
	if vm.Host != "" {
		fmt.Fprintf(&b, "<REMOTE_HOST>%s</REMOTE_HOST>", escape(vm.Host))
	} else {
		b.WriteString("<REMOTE_HOST/>")
	}
	b.Write(compact)
	b.WriteString("</HOOK_MESSAGE>")
	keys := []string{
		fmt.Sprintf("EVENT VM %s/%s/%s ", vm.ID, vm.State, vm.LCMState),
		fmt.Sprintf("EVENT STATE VM/%s/%s/%s ", vm.State, vm.LCMState, vm.ID),
	}
	if sid != "" {
		keys = append(keys, fmt.Sprintf("EVENT SERVICE %s ", sid))
	}
	return keys, []byte(base64.StdEncoding.EncodeToString(b.Bytes())), nil
}

func escape(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

var (
	xmlDecl    = regexp.MustCompile(`^\s*<\?xml[^>]*\?>`)
	interSpace = regexp.MustCompile(`>\s+<`)
)

// Compact returns a VM document as oned writes it inside a HOOK_MESSAGE:
// no XML declaration and no white space between elements.
func Compact(doc []byte) []byte {
	doc = xmlDecl.ReplaceAll(doc, nil)
	return bytes.TrimSpace(interSpace.ReplaceAll(doc, []byte("><")))
}
