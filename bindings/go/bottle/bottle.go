package bottle

/*
#cgo pkg-config: bottle
#include <bottle.h>
#include <stdlib.h>
*/
import "C"

import (
	"runtime"
	"sync"
	"unsafe"
)

// Bottle is an open handle on one smolvm machine. It holds no connection
// and no state of its own: each call runs its own smolvm process (at an
// Endpoint, makes its own requests to serve), so any number of goroutines
// may use one Bottle at once.
//
// A Bottle from Open leaves the machine's lifecycle (create, start, stop,
// delete) to whoever started it; a Bottle from Launch owns its machine,
// and Close stops and deletes it.
type Bottle struct {
	name string // the machine's, kept for Name after Close

	mu       sync.Mutex
	idle     sync.Cond // signalled when inFlight drops to zero
	c        *C.bottle // nil once released
	closed   bool
	inFlight int // calls using c
}

// newBottle wraps a C handle just opened or launched.
func newBottle(h *C.bottle) *Bottle {
	liveHandles.Add(1)
	b := &Bottle{name: C.GoString(C.bottle_machine_name(h)), c: h}
	b.idle.L = &b.mu
	runtime.SetFinalizer(b, (*Bottle).finalize)
	return b
}

// Option configures Open: WithPromptPath and WithEndpoint.
type Option interface {
	applyOpen(*openOptions)
}

// LaunchOption configures Launch and WithBottle.
type LaunchOption interface {
	applyLaunch(*launchOptions)
}

// BottleOption is an option that both Open and Launch take.
type BottleOption interface {
	Option
	LaunchOption
}

type openOptions struct {
	promptPath *string
	endpoint   *Endpoint
}

// WithPromptPath sets the in-guest path of the agent's system-prompt file,
// which ExecClaude passes to claude as --append-system-prompt-file. It must
// be absolute; it is not checked for existence. Open and Launch both take
// it.
func WithPromptPath(path string) BottleOption {
	return promptPathOption(path)
}

type promptPathOption string

func (p promptPathOption) applyOpen(o *openOptions) {
	path := string(p)
	o.promptPath = &path
}

func (p promptPathOption) applyLaunch(o *launchOptions) {
	path := string(p)
	o.promptPath = &path
}

// Open returns a handle on the smolvm machine named machine, which someone
// else created and started; Close leaves the machine as it is.
//
// It checks the arguments and finds the smolvm executable (the
// BOTTLE_SMOLVM environment variable, a path or a name on PATH, when set
// and non-empty; else smolvm on PATH), but does not boot or contact the
// machine: a machine that is missing or stopped is reported by the first
// call on it. A machine name follows smolvm's rule, which bottle_open in
// bottle.h states. Open does not block, so it takes no context.
//
// WithEndpoint opens the machine that a smolvm serve runs instead; then
// no smolvm executable is looked for, and serve is not contacted either.
//
// Errors: ErrInvalidArgument (naming machine_name or prompt_path, or ep
// for an https:// Endpoint without WithTLS) or ErrSmolvmNotFound; an
// error matching ErrClosed for a closed Endpoint.
func Open(machine string, opts ...Option) (*Bottle, error) {
	const op = "open"
	var o openOptions
	for _, opt := range opts {
		opt.applyOpen(&o)
	}
	if err := checkNoNUL(op, "machine_name", machine); err != nil {
		return nil, err
	}
	if o.promptPath != nil {
		if err := checkNoNUL(op, "prompt_path", *o.promptPath); err != nil {
			return nil, err
		}
	}

	cMachine := C.CString(machine)
	defer C.free(unsafe.Pointer(cMachine))
	cPrompt := optionalCString(o.promptPath)
	defer C.free(unsafe.Pointer(cPrompt))
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if o.endpoint != nil {
		h, err := openAt(op, o.endpoint, cMachine, cPrompt)
		if err != nil {
			return nil, err
		}
		return newBottle(h), nil
	}
	var h *C.bottle
	if s := C.bottle_open(cMachine, cPrompt, &h); s != C.BOTTLE_OK {
		return nil, lastError(op, s)
	}
	return newBottle(h), nil
}

// Name returns the name of the bottle's machine: the one given to Open, or
// for a launched bottle the one set WithName or generated
// ("bottle-PID-N-HEX"). It still answers after Close.
func (b *Bottle) Name() string {
	return b.name
}

// Close releases the handle. For a Bottle from Launch it stops and deletes
// the machine, and returns an ErrSmolvm error if either failed (deletion is
// tried even when the stop failed); the machine then stays behind, labelled
// as this process's, for Reap to delete once this process has exited. For
// a Bottle from Open the machine is left as it is and Close returns nil.
//
// Later calls return ErrClosed; closing again returns nil. Calls already
// running go on: Close waits for them to return before it releases the
// handle (cancel their contexts to hurry Exec along), so do not call it
// from an output Writer or a progress function of a call on the same
// Bottle. A Bottle that becomes unreachable without Close is released by a
// finalizer, which tears a launched machine down too but cannot report a
// failure.
func (b *Bottle) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	runtime.SetFinalizer(b, nil)
	for b.inFlight > 0 {
		b.idle.Wait()
	}
	h := b.c
	b.c = nil
	b.mu.Unlock()

	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	s := C.bottle_close_checked(h)
	liveHandles.Add(-1)
	if s != C.BOTTLE_OK {
		return lastError("close", s)
	}
	return nil
}

// finalize releases the handle of a Bottle dropped without Close. Nothing
// can be running on it: every call keeps its Bottle reachable.
func (b *Bottle) finalize() {
	C.bottle_close(b.c)
	liveHandles.Add(-1)
}

// Version returns the version of the libbottle library in use, such as
// "0.1.0".
func Version() string {
	return C.GoString(C.bottle_version())
}

// optionalCString is NULL for an unset optional argument; free it with
// C.free (which accepts NULL).
func optionalCString(s *string) *C.char {
	if s == nil {
		return nil
	}
	return C.CString(*s)
}

// goBytes copies a library-owned buffer into Go memory. It takes a size_t
// length, so output beyond C.GoBytes' int32 limit copies too.
func goBytes(p *C.uint8_t, n C.size_t) []byte {
	out := make([]byte, int(n))
	copy(out, unsafe.Slice((*byte)(unsafe.Pointer(p)), int(n)))
	return out
}
