package bottle

/*
#cgo pkg-config: bottle
#include <bottle.h>
#include <stdlib.h>
#include <string.h>

// bottle_last_error() belongs to the calling OS thread, and Go may run a
// goroutine's next cgo call on another thread. So each shim makes one
// libbottle call and, if it failed, copies the message within the same cgo
// call. The copy is the caller's to free(); NULL on success.
static char *go_bottle_error(bottle_status s) {
	const char *msg;
	if (s == BOTTLE_OK) return NULL;
	msg = bottle_last_error();
	return strdup(msg != NULL ? msg : "");
}

static bottle_status go_bottle_open(const char *machine_name, const char *prompt_path,
                                    bottle **out, char **err) {
	bottle_status s = bottle_open(machine_name, prompt_path, out);
	*err = go_bottle_error(s);
	return s;
}

static bottle_status go_bottle_exec(const bottle *b, const char *script, const char *user,
                                    bottle_exec_result *out, char **err) {
	bottle_status s = bottle_exec(b, script, user, out);
	*err = go_bottle_error(s);
	return s;
}

static bottle_status go_bottle_exec_claude(const bottle *b, char **argv, size_t argc, bool tty,
                                           int32_t *exit_code, char **err) {
	bottle_status s = bottle_exec_claude(b, (const char *const *)argv, argc, tty, exit_code);
	*err = go_bottle_error(s);
	return s;
}

static bottle_status go_bottle_cp_in(const bottle *b, const char *host_path,
                                     const char *guest_path, char **err) {
	bottle_status s = bottle_cp_in(b, host_path, guest_path);
	*err = go_bottle_error(s);
	return s;
}
*/
import "C"

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"unsafe"
)

// Bottle is an open handle on one smolvm machine. It holds no connection
// and no state of its own: each call runs its own smolvm process, so any
// number of goroutines may use one Bottle at once. The machine's lifecycle
// (create, start, stop, delete) belongs to whoever started it.
type Bottle struct {
	mu       sync.Mutex
	c        *C.bottle // nil once released
	closed   bool
	inFlight int // calls using c, including those whose caller's ctx ended
}

// Option configures Open.
type Option func(*openOptions)

type openOptions struct {
	promptPath *string
}

// WithPromptPath sets the in-guest path of the agent's system-prompt file,
// which ExecClaude passes to claude as --append-system-prompt-file. It must
// be absolute; it is not checked for existence.
func WithPromptPath(path string) Option {
	return func(o *openOptions) { o.promptPath = &path }
}

// Open returns a handle on the smolvm machine named machine.
//
// It checks the arguments and finds the smolvm executable (the
// BOTTLE_SMOLVM environment variable, a path or a name on PATH, when set
// and non-empty; else smolvm on PATH), but does not boot or contact the
// machine: a machine that is missing or stopped is reported by the first
// call on it. A machine name is 1 to 128 ASCII letters, digits, '-' and
// '_', starting with a letter or digit, not ending with '-', without "--".
// Open does not block, so it takes no context.
//
// Errors: ErrInvalidArgument (naming machine_name or prompt_path) or
// ErrSmolvmNotFound.
func Open(machine string, opts ...Option) (*Bottle, error) {
	const op = "open"
	var o openOptions
	for _, opt := range opts {
		opt(&o)
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
	var h *C.bottle
	var msg *C.char
	if s := C.go_bottle_open(cMachine, cPrompt, &h, &msg); s != C.BOTTLE_OK {
		return nil, failure(op, s, msg)
	}
	liveHandles.Add(1)
	b := &Bottle{c: h}
	runtime.SetFinalizer(b, (*Bottle).Close)
	return b, nil
}

// ExecOption configures Exec.
type ExecOption func(*execOptions)

type execOptions struct {
	user *string
}

// WithUser runs the script as the named guest user instead of node, the
// agent image's user; "root" runs it as root. A user name is 1 to 32 ASCII
// letters, digits, '_', '.' and '-', starting with a letter or '_'.
func WithUser(name string) ExecOption {
	return func(o *execOptions) { o.user = &name }
}

// ExecResult is what a script run by Exec left behind.
type ExecResult struct {
	// ExitCode is the script's exit status, 0 to 255; 128+N means it was
	// killed by signal N.
	ExitCode int
	// Stdout and Stderr hold the bytes exactly as the guest wrote them.
	Stdout, Stderr []byte
}

// Exec runs script in the machine, in the login shell of node (or of the
// WithUser user), and returns its exit status and complete output.
//
// The script is shell code, passed as one argument to
// `runuser -l USER -c SCRIPT`, so it gets the user's login environment
// ($HOME, $USER, $PATH); quote inside it whatever the shell should not
// expand. Its stdin is empty. A script that exits non-zero is not an error:
// see ExecResult.ExitCode. Scripts may be at most 131071 bytes.
//
// Errors: ErrSmolvm when smolvm itself failed (the machine is unknown or
// not running), with smolvm's message; ErrInvalidArgument (naming script
// or user); ErrSmolvmNotFound; ErrIO; ErrClosed.
//
// If ctx is done first, Exec returns ctx.Err() at once; the script and
// smolvm keep running in the guest until they finish, and their output is
// then discarded (see the package documentation).
func (b *Bottle) Exec(ctx context.Context, script string, opts ...ExecOption) (*ExecResult, error) {
	const op = "exec"
	var o execOptions
	for _, opt := range opts {
		opt(&o)
	}
	if err := checkNoNUL(op, "script", script); err != nil {
		return nil, err
	}
	if o.user != nil {
		if err := checkNoNUL(op, "user", *o.user); err != nil {
			return nil, err
		}
	}

	return call(ctx, b, op, func(h *C.bottle) (*ExecResult, error) {
		cScript := C.CString(script)
		defer C.free(unsafe.Pointer(cScript))
		cUser := optionalCString(o.user)
		defer C.free(unsafe.Pointer(cUser))
		var r C.bottle_exec_result
		var msg *C.char
		if s := C.go_bottle_exec(h, cScript, cUser, &r, &msg); s != C.BOTTLE_OK {
			return nil, failure(op, s, msg)
		}
		defer C.bottle_exec_result_free(&r)
		return &ExecResult{
			ExitCode: int(r.exit_code),
			Stdout:   goBytes(r.stdout_data, r.stdout_len),
			Stderr:   goBytes(r.stderr_data, r.stderr_len),
		}, nil
	})
}

// ExecClaude runs claude-code in the machine, as node, with exactly args as
// its arguments (after --append-system-prompt-file PATH when the Bottle was
// opened WithPromptPath), and returns claude's exit status (128+N if it was
// killed by signal N).
//
// Each argument reaches claude byte for byte, whatever it contains. The
// process's own stdin, stdout and stderr are inherited, not captured:
// claude talks to the caller's terminal, which is why this is not Exec.
// Pass tty true when stdin is a terminal, so the guest gets one too. Two
// interactive sessions sharing a terminal will fight over it.
//
// Errors: ErrSmolvm when the machine is unknown or not running (checked
// before claude starts); ErrInvalidArgument (naming argv[i]);
// ErrSmolvmNotFound; ErrIO; ErrClosed.
//
// If ctx is done first, ExecClaude returns ctx.Err() at once, but claude
// keeps running, still attached to the terminal, until it exits (see the
// package documentation).
func (b *Bottle) ExecClaude(ctx context.Context, args []string, tty bool) (int, error) {
	const op = "exec claude"
	for i, a := range args {
		if err := checkNoNUL(op, fmt.Sprintf("argv[%d]", i), a); err != nil {
			return 0, err
		}
	}
	// The call may outlive ExecClaude; the caller may reuse its slice.
	args = append([]string(nil), args...)

	return call(ctx, b, op, func(h *C.bottle) (int, error) {
		argv := make([]*C.char, len(args))
		for i, a := range args {
			argv[i] = C.CString(a)
		}
		defer func() {
			for _, p := range argv {
				C.free(unsafe.Pointer(p))
			}
		}()
		var argvPtr **C.char
		if len(argv) > 0 {
			argvPtr = &argv[0]
		}
		var code C.int32_t
		var msg *C.char
		s := C.go_bottle_exec_claude(h, argvPtr, C.size_t(len(argv)), C.bool(tty), &code, &msg)
		if s != C.BOTTLE_OK {
			return 0, failure(op, s, msg)
		}
		return int(code), nil
	})
}

// CopyIn copies the regular host file hostPath into the machine at
// guestPath, replacing any file there; the copy is owned by root with mode
// 0644, and its parent directory must exist.
//
// hostPath may hold any bytes but NUL, a ':' or a leading '-' included:
// smolvm never parses it, as the library opens the file and hands smolvm
// the open descriptor. guestPath must be absolute and without ':'.
//
// Errors: ErrInvalidArgument (naming host_path or guest_path; also for a
// directory, device or FIFO); ErrIO when the host file cannot be opened;
// ErrSmolvm when smolvm failed (unknown or stopped machine, missing guest
// directory); ErrSmolvmNotFound; ErrClosed.
//
// If ctx is done first, CopyIn returns ctx.Err() at once, and the copy
// goes on until smolvm finishes (see the package documentation).
func (b *Bottle) CopyIn(ctx context.Context, hostPath, guestPath string) error {
	const op = "copy in"
	if err := checkNoNUL(op, "host_path", hostPath); err != nil {
		return err
	}
	if err := checkNoNUL(op, "guest_path", guestPath); err != nil {
		return err
	}

	_, err := call(ctx, b, op, func(h *C.bottle) (struct{}, error) {
		cHost := C.CString(hostPath)
		defer C.free(unsafe.Pointer(cHost))
		cGuest := C.CString(guestPath)
		defer C.free(unsafe.Pointer(cGuest))
		var msg *C.char
		if s := C.go_bottle_cp_in(h, cHost, cGuest, &msg); s != C.BOTTLE_OK {
			return struct{}{}, failure(op, s, msg)
		}
		return struct{}{}, nil
	})
	return err
}

// Close releases the handle; the machine is left as it is. Later calls
// return ErrClosed; closing again returns nil. Close does not wait: calls
// still running, including those whose ctx ended, finish normally, and the
// last of them releases the C handle. A Bottle that becomes unreachable
// without Close is closed by a finalizer. Close always returns nil.
func (b *Bottle) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	runtime.SetFinalizer(b, nil)
	if b.inFlight == 0 {
		b.free()
	}
	return nil
}

// Version returns the version of the libbottle library in use, such as
// "0.1.0".
func Version() string {
	return C.GoString(C.bottle_version())
}

// failure makes the *Error for a failed call from its status and the
// message the shim copied, and frees the copy.
func failure(op string, s C.bottle_status, msg *C.char) error {
	defer C.free(unsafe.Pointer(msg))
	return &Error{Op: op, Status: Status(s), Message: C.GoString(msg)}
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
