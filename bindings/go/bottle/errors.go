package bottle

/*
#include <bottle.h>
*/
import "C"

import (
	"errors"
	"fmt"
	"math"
	"strings"
)

// Status mirrors the C library's bottle_status: the kind of failure.
// Later versions of libbottle only append codes, so treat a Status you do
// not know as a failure like any other.
type Status int

// The codes of bottle_status.
const (
	StatusOK              Status = C.BOTTLE_OK
	StatusInvalidArgument Status = C.BOTTLE_ERR_INVALID_ARGUMENT
	StatusSmolvmNotFound  Status = C.BOTTLE_ERR_SMOLVM_NOT_FOUND
	StatusSmolvm          Status = C.BOTTLE_ERR_SMOLVM
	StatusIO              Status = C.BOTTLE_ERR_IO
	StatusPanic           Status = C.BOTTLE_ERR_PANIC
	StatusTimeout         Status = C.BOTTLE_ERR_TIMEOUT
	StatusCancelled       Status = C.BOTTLE_ERR_CANCELLED
	StatusUnsupported     Status = C.BOTTLE_ERR_UNSUPPORTED
)

// String is the library's own short description, such as "smolvm failed",
// or "unknown status" for a code it does not know.
func (s Status) String() string {
	// bottle_status_str reads any int (the header says enum) and returns a
	// static string.
	return C.GoString(C.bottle_status_str(C.bottle_status(s)))
}

// The sentinels that errors.Is matches against an *Error. Each status has
// one; ErrClosed is matched by calls on a closed Bottle.
var (
	// ErrInvalidArgument: an argument was rejected before anything ran (a
	// bad machine name, user or path, a NUL byte, a directory to copy). The
	// message starts with the argument's name.
	ErrInvalidArgument = errors.New("bottle: " + StatusInvalidArgument.String())
	// ErrSmolvmNotFound: the smolvm executable cannot be found or started.
	ErrSmolvmNotFound = errors.New("bottle: " + StatusSmolvmNotFound.String())
	// ErrSmolvm: smolvm itself failed (unknown or stopped machine, failed
	// copy); the message carries smolvm's own words.
	ErrSmolvm = errors.New("bottle: " + StatusSmolvm.String())
	// ErrIO: a host-side I/O error, such as a host file that cannot be
	// opened.
	ErrIO = errors.New("bottle: " + StatusIO.String())
	// ErrPanic: a bug inside libbottle, caught at its boundary; the process
	// goes on.
	ErrPanic = errors.New("bottle: " + StatusPanic.String())
	// ErrTimeout: the command ran past its WithTimeout and was stopped.
	ErrTimeout = errors.New("bottle: " + StatusTimeout.String())
	// ErrCancelled: the command was stopped because a WithStdout or
	// WithStderr Writer failed; the error also wraps the Writer's. (A
	// context that ends gives ctx.Err() instead.)
	ErrCancelled = errors.New("bottle: " + StatusCancelled.String())
	// ErrUnsupported: this build of libbottle cannot do this, and nothing
	// was done. Today only NewEndpoint returns it, for WithTLS with a
	// libbottle built without its tls cargo feature.
	ErrUnsupported = errors.New("bottle: " + StatusUnsupported.String())
	// ErrClosed: the Bottle, or the Endpoint given to Open, Launch or
	// ReapAt, was closed before the call. Such an error also matches
	// ErrInvalidArgument, as the C library reports an unusable handle.
	ErrClosed = errors.New("bottle: the bottle is closed")
)

// Error is every error this package returns, except ctx.Err() when a
// context ends first (and, from WithBottle, the function's own error).
// Use errors.Is with the sentinels above to tell the kinds apart, or
// errors.As to read the fields.
type Error struct {
	// Op is the operation that failed: "endpoint" (NewEndpoint), "open",
	// "launch", "exec", "exec claude", "copy in", "copy out", "close" or
	// "reap" (Reap and ReapAt).
	Op string
	// Status is the C library's code for the failure. Arguments that this
	// package rejects itself (NUL bytes, out-of-range numbers, a closed
	// Bottle) get StatusInvalidArgument, as the C library would; a failed
	// WithStdin reader gets StatusIO.
	Status Status
	// Message is the library's message, e.g. smolvm's own words, or for
	// a bad argument its name first, as in "user: must not be empty".
	// Arguments are named as in the C API (machine_name, prompt_path,
	// script, user, argv[i], host_path, guest_path, name, value, dir,
	// timeout_ms, mode, uid, gid, image, cpus, mib, url, ep, ca_file,
	// cert_file, key_file), whichever layer rejected them.
	Message string
	// Err is the Go error behind the failure, if one is: the error of a
	// WithStdout or WithStderr Writer, or of a WithStdin reader. Unwrap
	// returns it, so errors.Is and errors.As see it.
	Err error

	closed bool
}

func (e *Error) Error() string {
	return fmt.Sprintf("bottle: %s: %s: %s", e.Op, e.Status, e.Message)
}

// Is reports whether target is the sentinel of e's Status, or ErrClosed
// for a call on a closed Bottle or with a closed Endpoint.
func (e *Error) Is(target error) bool {
	return target != nil && (target == e.Status.sentinel() || e.closed && target == ErrClosed)
}

// Unwrap returns e.Err.
func (e *Error) Unwrap() error { return e.Err }

func (s Status) sentinel() error {
	switch s {
	case StatusInvalidArgument:
		return ErrInvalidArgument
	case StatusSmolvmNotFound:
		return ErrSmolvmNotFound
	case StatusSmolvm:
		return ErrSmolvm
	case StatusIO:
		return ErrIO
	case StatusPanic:
		return ErrPanic
	case StatusTimeout:
		return ErrTimeout
	case StatusCancelled:
		return ErrCancelled
	case StatusUnsupported:
		return ErrUnsupported
	}
	return nil
}

func closedError(op string) error {
	return &Error{Op: op, Status: StatusInvalidArgument, Message: "b: the bottle is closed", closed: true}
}

// invalid is the error for an argument rejected before the C library saw
// it, named as the C API names it.
func invalid(op, name, why string) error {
	return &Error{Op: op, Status: StatusInvalidArgument, Message: name + ": " + why}
}

// checkNoNUL rejects a string that a C string cannot carry. C would see it
// cut short at the NUL, so running it would run something else.
func checkNoNUL(op, name, s string) error {
	if i := strings.IndexByte(s, 0); i >= 0 {
		return invalid(op, name, fmt.Sprintf("contains a NUL byte at offset %d, which a C string cannot carry", i))
	}
	return nil
}

// checkUint32 rejects a number that the C argument name, a uint32_t,
// cannot hold.
func checkUint32(op, name string, n int) error {
	if n < 0 || uint64(n) > math.MaxUint32 {
		return invalid(op, name, fmt.Sprintf("%d is out of range (0 to %d)", n, uint32(math.MaxUint32)))
	}
	return nil
}
