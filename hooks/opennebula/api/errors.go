package api

import (
	"errors"
	"fmt"
)

// OpenNebula's error codes, the third element of a failed call's answer
// (include/Request.h).
const (
	CodeAuthentication = 0x100
	CodeAuthorization  = 0x200
	CodeNoExists       = 0x400
	CodeAction         = 0x800
	CodeXMLRPCAPI      = 0x1000
	CodeInternal       = 0x2000
	CodeAllocate       = 0x4000
	CodeLocked         = 0x8000
	CodeReplication    = 0x10000
)

// Sentinels an *Error matches with errors.Is.
var (
	// ErrAuthentication: oned did not accept the credentials.
	ErrAuthentication = errors.New("authentication failed")
	// ErrAuthorization: the user may not make the call.
	ErrAuthorization = errors.New("not authorized")
	// ErrNotFound: the object does not exist (one.vm.info of a purged VM).
	ErrNotFound = errors.New("no such object")
	// ErrFault: an XML-RPC fault (unknown method, wrong parameter types).
	ErrFault = errors.New("xml-rpc fault")
	// ErrProtocol: the answer is not what the API documents.
	ErrProtocol = errors.New("unexpected answer")
)

// Error is a call that oned answered with [false, message, code, ...] or
// with an XML-RPC fault.
type Error struct {
	Method  string
	Code    int    // OpenNebula code (CodeAuthentication, ...), or the fault code
	Fault   bool   // an XML-RPC <fault>, not an OpenNebula error
	Message string // oned's message, e.g. "[one.vm.info] Error getting virtual machine [42]."
	// Who names the user and the credential source of an authentication
	// failure (never the secret).
	Who string
}

func (e *Error) Error() string {
	switch {
	case e.Fault:
		return fmt.Sprintf("%s: xml-rpc fault %d: %s", e.Method, e.Code, e.Message)
	case e.Code == CodeAuthentication:
		return fmt.Sprintf("%s: authentication failed for %s: %s", e.Method, e.Who, e.Message)
	}
	return fmt.Sprintf("%s: %s (error 0x%x %s)", e.Method, e.Message, e.Code, codeName(e.Code))
}

// Is matches the sentinels of the code.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrFault:
		return e.Fault
	case ErrAuthentication:
		return !e.Fault && e.Code == CodeAuthentication
	case ErrAuthorization:
		return !e.Fault && e.Code == CodeAuthorization
	case ErrNotFound:
		return !e.Fault && e.Code == CodeNoExists
	}
	return false
}

func codeName(code int) string {
	switch code {
	case CodeAuthentication:
		return "AUTHENTICATION"
	case CodeAuthorization:
		return "AUTHORIZATION"
	case CodeNoExists:
		return "NO_EXISTS"
	case CodeAction:
		return "ACTION"
	case CodeXMLRPCAPI:
		return "XML_RPC_API"
	case CodeInternal:
		return "INTERNAL"
	case CodeAllocate:
		return "ALLOCATE"
	case CodeLocked:
		return "LOCKED"
	case CodeReplication:
		return "REPLICATION"
	}
	return "UNKNOWN"
}
