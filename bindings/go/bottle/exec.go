package bottle

/*
#include <bottle.h>
#include <stdint.h>
#include <stdlib.h>

extern int goBottleOutput(uintptr_t sink, uint8_t *data, size_t len); // callback.go

static int go_bottle_output(void *sink, const uint8_t *data, size_t len) {
	return goBottleOutput((uintptr_t)sink, (uint8_t *)data, len);
}

// capture false: a stream that goes to a Writer is not also kept in the
// result.
static enum bottle_status go_bottle_exec_options_set_stdout(bottle_exec_options *opts, uintptr_t sink) {
	return bottle_exec_options_set_stdout_fn(opts, go_bottle_output, (void *)sink, false);
}

static enum bottle_status go_bottle_exec_options_set_stderr(bottle_exec_options *opts, uintptr_t sink) {
	return bottle_exec_options_set_stderr_fn(opts, go_bottle_output, (void *)sink, false);
}
*/
import "C"

import (
	"context"
	"fmt"
	"io"
	"runtime/cgo"
	"time"
	"unsafe"
)

// ExecOption configures Exec.
type ExecOption func(*execOptions)

type execOptions struct {
	user           *string
	env            []envVar
	workdir        *string
	timeout        time.Duration
	stdin          io.Reader
	stdout, stderr io.Writer
}

type envVar struct {
	name, value string
	secret      bool
}

// checkEnvNUL rejects variables C strings cannot carry, naming name or
// value as the C setters do.
func checkEnvNUL(op string, env []envVar) error {
	for _, e := range env {
		if err := checkNoNUL(op, "name", e.name); err != nil {
			return err
		}
		if err := checkNoNUL(op, "value", e.value); err != nil {
			return err
		}
	}
	return nil
}

// WithUser runs the script as the named guest user instead of node, the
// agent image's user; "root" runs it as root. A user name is 1 to 32 ASCII
// letters, digits, '_', '.' and '-', starting with a letter or '_'.
func WithUser(name string) ExecOption {
	return func(o *execOptions) { o.user = &name }
}

// WithEnv sets the environment variable name=value for the script, on top
// of the user's login environment. name is an ASCII letter or '_', then
// letters, digits and '_'; value may be empty. The pair travels on smolvm's
// command line, where every local user can read it while the script runs:
// use WithSecretEnv for secrets.
func WithEnv(name, value string) ExecOption {
	return func(o *execOptions) { o.env = append(o.env, envVar{name, value, false}) }
}

// WithSecretEnv sets name=value for the script as WithEnv does, but keeps
// value out of every process's command line on the host: smolvm reads it
// from its own environment.
func WithSecretEnv(name, value string) ExecOption {
	return func(o *execOptions) { o.env = append(o.env, envVar{name, value, true}) }
}

// WithWorkdir starts the script in the absolute guest directory dir instead
// of the user's home. If dir does not exist the script does not run: it
// exits 1 with the shell's cd message on stderr.
func WithWorkdir(dir string) ExecOption {
	return func(o *execOptions) { o.workdir = &dir }
}

// WithTimeout limits how long the script may run; 0 means no limit, and a
// positive duration is rounded up to whole milliseconds. When it is up the
// script and smolvm are stopped and Exec returns an error matching
// ErrTimeout. (A context deadline stops it too, returning
// context.DeadlineExceeded instead.)
func WithTimeout(d time.Duration) ExecOption {
	return func(o *execOptions) { o.timeout = d }
}

// WithStdin gives the script r's bytes as its stdin, instead of an empty
// one. The C library takes stdin as one buffer, so Exec reads r to its end
// before the script starts, holding it all in memory; the context does not
// interrupt that read. An r that fails makes Exec return an ErrIO error
// wrapping r's error. A script need not read all of it. A nil r keeps the
// empty stdin.
func WithStdin(r io.Reader) ExecOption {
	return func(o *execOptions) { o.stdin = r }
}

// WithStdout streams the script's stdout to w as the guest writes it,
// instead of collecting it: ExecResult.Stdout is then empty (pass
// io.MultiWriter(w, &buf) to have both). w is called on the goroutine that
// called Exec, inside the call, with the chunks in order; stdout's and
// stderr's Writes never overlap, so one Writer may take both. If w fails
// (or writes short), the script is stopped and Exec returns an error
// matching both ErrCancelled and w's error. A panic in w stops the script
// too, and Exec raises it again once smolvm is gone. w must return: a
// runtime.Goexit in it (t.FailNow, t.Fatal) would unwind through the C
// call and leave smolvm running.
func WithStdout(w io.Writer) ExecOption {
	return func(o *execOptions) { o.stdout = w }
}

// WithStderr is WithStdout for the script's stderr.
func WithStderr(w io.Writer) ExecOption {
	return func(o *execOptions) { o.stderr = w }
}

// check rejects what C strings cannot carry, naming the arguments as the C
// setters do; the setters check the rest.
func (o *execOptions) check(op string) error {
	if o.user != nil {
		if err := checkNoNUL(op, "user", *o.user); err != nil {
			return err
		}
	}
	if err := checkEnvNUL(op, o.env); err != nil {
		return err
	}
	if o.workdir != nil {
		if err := checkNoNUL(op, "dir", *o.workdir); err != nil {
			return err
		}
	}
	if o.timeout < 0 {
		return invalid(op, "timeout_ms", fmt.Sprintf("must not be negative, got %v", o.timeout))
	}
	return nil
}

// cExecOptions is the C side of an Exec's options, for one call.
type cExecOptions struct {
	c              *C.bottle_exec_options
	stdout, stderr *outputSink // nil when captured
	handles        []cgo.Handle
}

// toC makes the C options, stdin being the bytes already read. Free them
// with free once the call has returned.
func (o *execOptions) toC(op string, stdin []byte) (*cExecOptions, error) {
	c := &cExecOptions{}
	if s := C.bottle_exec_options_new(&c.c); s != C.BOTTLE_OK {
		return nil, lastError(op, s)
	}
	var strs cStrings
	defer strs.free()
	set := setter{op: op}
	if o.user != nil {
		set.do(C.bottle_exec_options_set_user(c.c, strs.of(*o.user)))
	}
	for _, e := range o.env {
		if e.secret {
			set.do(C.bottle_exec_options_add_secret_env(c.c, strs.of(e.name), strs.of(e.value)))
		} else {
			set.do(C.bottle_exec_options_add_env(c.c, strs.of(e.name), strs.of(e.value)))
		}
	}
	if o.workdir != nil {
		set.do(C.bottle_exec_options_set_workdir(c.c, strs.of(*o.workdir)))
	}
	if o.timeout > 0 {
		ms := (o.timeout + time.Millisecond - 1) / time.Millisecond
		set.do(C.bottle_exec_options_set_timeout_ms(c.c, C.uint64_t(ms)))
	}
	if stdin != nil {
		var data *C.uint8_t
		if len(stdin) > 0 {
			data = (*C.uint8_t)(unsafe.Pointer(&stdin[0])) // copied by the setter
		}
		set.do(C.bottle_exec_options_set_stdin(c.c, data, C.size_t(len(stdin))))
	}
	if o.stdout != nil {
		c.stdout = &outputSink{stream: "stdout", w: o.stdout}
		set.do(C.go_bottle_exec_options_set_stdout(c.c, c.handle(c.stdout)))
	}
	if o.stderr != nil {
		c.stderr = &outputSink{stream: "stderr", w: o.stderr}
		set.do(C.go_bottle_exec_options_set_stderr(c.c, c.handle(c.stderr)))
	}
	if set.err != nil {
		c.free()
		return nil, set.err
	}
	return c, nil
}

// handle makes a cgo.Handle for v, deleted by free.
func (c *cExecOptions) handle(v any) C.uintptr_t {
	h := cgo.NewHandle(v)
	c.handles = append(c.handles, h)
	return C.uintptr_t(h)
}

func (c *cExecOptions) free() {
	C.bottle_exec_options_free(c.c)
	for _, h := range c.handles {
		h.Delete()
	}
}

// writeError is failed, the call's cancellation, with the error of the
// Writer that stopped the command, if that is why.
func (c *cExecOptions) writeError(failed *Error) error {
	for _, sink := range []*outputSink{c.stdout, c.stderr} {
		if sink != nil && sink.err != nil {
			failed.Message += ": " + sink.err.Error()
			failed.Err = sink.err
			break
		}
	}
	return failed
}

// repanic raises a panic that a Writer raised during the call.
func (c *cExecOptions) repanic() {
	for _, sink := range []*outputSink{c.stdout, c.stderr} {
		if sink != nil {
			sink.trap.repanic()
		}
	}
}

// outputSink is where one output stream of an Exec goes: the Go side of a
// bottle_output_fn.
type outputSink struct {
	stream string // "stdout" or "stderr"
	w      io.Writer
	err    error // w's failure, which stopped the command
	trap   panicTrap
}

// write hands p to the Writer and reports whether the command may go on.
func (s *outputSink) write(p []byte) bool {
	if s.err != nil || s.trap.caught() {
		return false
	}
	s.trap.catch(func() {
		n, err := s.w.Write(p)
		if err == nil && n < len(p) {
			err = io.ErrShortWrite
		}
		if err != nil {
			s.err = fmt.Errorf("writing %s: %w", s.stream, err)
		}
	})
	return s.err == nil && !s.trap.caught()
}

// ExecResult is what a script run by Exec left behind.
type ExecResult struct {
	// ExitCode is the script's exit status, 0 to 255; 128+N means it was
	// killed by signal N.
	ExitCode int
	// Stdout and Stderr hold the bytes exactly as the guest wrote them;
	// a stream sent to a WithStdout or WithStderr Writer is empty here.
	Stdout, Stderr []byte
}

// Exec runs script in the machine, in the login shell of node (or of the
// WithUser user), and returns its exit status and output.
//
// The script is shell code, passed unchanged as one argument to the user's
// login shell through `runuser -l` (after `--`, so a script starting with
// `-` runs too), so it gets the user's login environment
// ($HOME, $USER, $PATH) plus any WithEnv and WithSecretEnv variables;
// quote inside it whatever the shell should not expand. Its stdin is empty
// unless WithStdin gives one. A script that exits non-zero is not an error:
// see ExecResult.ExitCode. Scripts may be at most 131071 bytes.
//
// When ctx is done while the script runs, smolvm and the script are
// stopped (SIGTERM, then SIGKILL half a second later) and Exec returns
// ctx.Err() once they are gone; output already handed to a Writer stays
// delivered. A ctx already done returns ctx.Err() without running anything.
//
// Errors: ErrSmolvm when smolvm itself failed (the machine is unknown or
// not running), with smolvm's message; ErrTimeout (WithTimeout);
// ErrCancelled wrapping a failed Writer's error; ErrInvalidArgument
// (naming script, user, name, value, dir or timeout_ms); ErrIO (also for a
// failed WithStdin reader, wrapping its error); ErrSmolvmNotFound;
// ErrClosed.
func (b *Bottle) Exec(ctx context.Context, script string, opts ...ExecOption) (*ExecResult, error) {
	const op = "exec"
	var o execOptions
	for _, opt := range opts {
		opt(&o)
	}
	if err := checkNoNUL(op, "script", script); err != nil {
		return nil, err
	}
	if err := o.check(op); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var stdin []byte
	if o.stdin != nil {
		var err error
		if stdin, err = io.ReadAll(o.stdin); err != nil {
			return nil, &Error{Op: op, Status: StatusIO, Message: "stdin: " + err.Error(), Err: err}
		}
		if stdin == nil {
			stdin = []byte{} // an empty stdin, still open
		}
	}

	return call(ctx, b, op, func(h *C.bottle) (*ExecResult, error) {
		copts, err := o.toC(op, stdin)
		if err != nil {
			return nil, err
		}
		defer copts.free()
		w, err := watch(ctx, op, func(t *C.bottle_cancel) C.enum_bottle_status {
			return C.bottle_exec_options_set_cancel(copts.c, t)
		})
		if err != nil {
			return nil, err
		}
		cScript := C.CString(script)
		defer C.free(unsafe.Pointer(cScript))

		var r C.bottle_exec_result
		s := C.bottle_exec_with(h, cScript, copts.c, &r)
		var failed error
		if s == C.BOTTLE_OK {
			defer C.bottle_exec_result_free(&r)
		} else {
			failed = lastError(op, s)
		}
		tripped := w.done()
		copts.repanic()
		switch {
		case failed == nil:
			return &ExecResult{
				ExitCode: int(r.exit_code),
				Stdout:   goBytes(r.stdout_data, r.stdout_len),
				Stderr:   goBytes(r.stderr_data, r.stderr_len),
			}, nil
		case s == C.BOTTLE_ERR_CANCELLED && tripped:
			return nil, ctx.Err()
		case s == C.BOTTLE_ERR_CANCELLED:
			return nil, copts.writeError(failed.(*Error))
		}
		return nil, failed
	})
}
