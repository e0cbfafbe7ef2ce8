// Package bottle drives a sandboxed coding agent in a smolvm microVM. It is
// the Go binding of libbottle, a C library, through cgo.
//
// A *Bottle is a handle on one named smolvm machine. Through it you run
// shell scripts in the guest as the agent's user (node by default) and get
// their exit status and output, start claude-code on your own terminal with
// exactly the arguments you give, and copy host files in. Every call is one
// smolvm process; the machine itself is created, started, stopped and
// deleted by whoever owns it, never by this package.
//
//	b, err := bottle.Open("agent-1")
//	if err != nil {
//		return err
//	}
//	defer b.Close()
//	r, err := b.Exec(ctx, "echo hello from $(id -un)")
//	if err != nil {
//		return err // smolvm failed, e.g. the machine is not running
//	}
//	fmt.Printf("exit %d: %s", r.ExitCode, r.Stdout) // exit 0: hello from node
//
// # Errors
//
// Every error is an *Error carrying the operation, the C library's Status
// and its message, except ctx.Err() when a context ends first. Match kinds
// with errors.Is: ErrInvalidArgument (rejected before anything ran; the
// message starts with the argument's name as the C API spells it, such as
// "user: must not be empty" or "argv[2]: contains a NUL byte ..."),
// ErrSmolvmNotFound, ErrSmolvm (smolvm's own failure, e.g. "vm not found"
// or "is not running"), ErrIO, ErrPanic, and ErrClosed for a call on a
// closed Bottle. A script that exits non-zero is not an error.
//
// Go strings may contain NUL bytes, which C strings cannot carry; they are
// rejected with ErrInvalidArgument rather than silently cut short.
//
// # Contexts and cancellation
//
// Exec, ExecClaude and CopyIn block until smolvm finishes and take a
// context first. A context already done returns ctx.Err() without running
// anything. A context that ends during a call makes the call return
// ctx.Err() at once, but this version of the C library cannot stop smolvm:
// the C call goes on in a goroutine until smolvm exits, so the guest
// command runs to its end (and an abandoned ExecClaude keeps the
// terminal). That goroutine then frees the C result; nothing leaks. Use a
// context to stop waiting, not to stop the guest; a later libbottle adds
// real cancellation.
//
// # Concurrency and Close
//
// A Bottle is safe for concurrent use by many goroutines; each call runs
// its own smolvm process. Close may be called at any time, also while calls
// are running: it returns at once, later calls get ErrClosed, and the C
// handle is released when the last running call (abandoned ones included)
// finishes. A Bottle dropped without Close is closed by a finalizer.
//
// # Environment
//
// Open reads BOTTLE_SMOLVM (a path, or a name on PATH; default smolvm on
// PATH) and keeps the executable it found for the Bottle's lifetime; do not
// call os.Setenv while Open runs. The library spawns and reaps smolvm
// itself, so the process must not ignore SIGCHLD.
//
// The package links libbottle through pkg-config (the bottle module); see
// README.md for building against an installed or an in-tree library.
package bottle
