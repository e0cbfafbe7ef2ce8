// Package bottle drives a sandboxed coding agent in a smolvm microVM. It is
// the Go binding of libbottle, a C library, through cgo.
//
// A *Bottle is a handle on one smolvm machine. Through it you run shell
// scripts in the guest as the agent's user (node by default) and get their
// exit status and output, start claude-code on your own terminal with
// exactly the arguments you give, and copy files and directories in and
// out. Every call is one smolvm process (a directory copy, a few).
//
// A Bottle comes from Open, for a machine someone else created and
// started, whose lifecycle this package leaves alone; or from Launch, which
// creates and starts a machine that the Bottle owns: its Close stops and
// deletes the machine. WithBottle launches, runs a function, and always
// tears down; Reap deletes the machines of processes that died without
// closing theirs.
//
// By default every call runs the local smolvm CLI. Opened or launched
// WithEndpoint, a Bottle talks to a smolvm serve over its HTTP API
// instead (see Endpoints below).
//
//	err := bottle.WithBottle(ctx, func(b *bottle.Bottle) error {
//		if err := b.CopyIn(ctx, "task/", "/home/node/task", bottle.WithOwnerUser("node")); err != nil {
//			return err
//		}
//		r, err := b.Exec(ctx, "make -C ~/task test", bottle.WithEnv("CI", "1"))
//		if err != nil {
//			return err // smolvm failed, timed out, or ctx ended
//		}
//		fmt.Printf("exit %d: %s", r.ExitCode, r.Stdout)
//		return nil
//	}, bottle.WithImage("agent:latest"))
//
// # Options
//
// Calls take functional options. Exec: WithUser, WithEnv, WithSecretEnv
// (kept off every host command line), WithWorkdir, WithTimeout, WithStdin
// (an io.Reader, read whole before the script starts), and WithStdout and
// WithStderr (io.Writers that get the output as it arrives, on the calling
// goroutine; a stream sent to a Writer is not also kept in the
// ExecResult). CopyIn: WithMode, WithOwner, WithOwnerUser and WithProgress.
// Launch and WithBottle: WithName, WithImage, WithCPUs, WithMemoryMiB,
// WithNetwork, WithVolume, WithMachineEnv, and WithPromptPath and
// WithEndpoint, which Open takes too. NewEndpoint: WithTLS. The option
// types are distinct, so an option given to the wrong call does not
// compile.
//
// # Errors
//
// Every error is an *Error carrying the operation, the C library's Status
// and its message, except ctx.Err() when a context ends first and, from
// WithBottle, the function's own error. Match kinds with errors.Is:
// ErrInvalidArgument (rejected before anything ran; the message starts
// with the argument's name as the C API spells it, such as
// "user: must not be empty" or "argv[2]: contains a NUL byte ..."),
// ErrSmolvmNotFound, ErrSmolvm (smolvm's own failure, e.g. "vm not found"
// or "is not running"), ErrIO, ErrPanic, ErrTimeout (an Exec past its
// WithTimeout), ErrCancelled (an Exec stopped by its failing Writer, whose
// error the *Error also wraps), ErrUnsupported (what this build of
// libbottle cannot do: WithTLS from one built without TLS), and ErrClosed
// for a call on a closed Bottle or with a closed Endpoint. A script that
// exits non-zero is not an error.
//
// Go strings may contain NUL bytes, which C strings cannot carry; they are
// rejected with ErrInvalidArgument rather than silently cut short.
//
// # Contexts and cancellation
//
// Every call that can block takes a context first, and a context already
// done returns ctx.Err() without running anything. When the context of a
// running call ends, the package trips the cancel token it gave the C
// call, and the library stops the call: through the CLI it stops smolvm
// and what it started (SIGTERM, then SIGKILL half a second later); at an
// Endpoint it ends its requests and has serve kill what it ran in the
// guest. The call returns ctx.Err() once that is done, so no goroutine or
// process is left behind: context.Canceled, or context.DeadlineExceeded
// for a deadline (Exec's WithTimeout gives ErrTimeout instead).
//
// Every such call stops that way: Exec, with its script; ExecClaude (on a
// terminal through the CLI only smolvm is signalled, and the caller's
// stdin is put back as it was); CopyIn, leaving in the guest what was
// copied before; CopyOut, leaving the host file untouched; Launch,
// deleting the machine again if it was created; Reap and ReapAt,
// returning the names deleted so far.
//
// # Concurrency and Close
//
// A Bottle is safe for concurrent use by many goroutines; each call runs
// its own smolvm process. Close may be called at any time, also while calls
// are running: later calls get ErrClosed, and Close waits for the calls
// already running to return before it releases the handle (and, for a
// launched Bottle, tears the machine down and reports how that went). A
// Bottle dropped without Close is released by a finalizer.
//
// Writers and progress functions are called back from C, inside the call
// that uses them and on its goroutine. A panic in one is caught there (a
// Writer's also stops the command) and raised again once the C call has
// returned, so it never unwinds through the library.
//
// # Endpoints
//
// NewEndpoint names a smolvm serve: its unix socket
// ("unix:/path/to/smolvm.sock"), its TCP listener with mutual TLS
// ("https://host:port", certificates given WithTLS), or plain HTTP to a
// loopback address ("http://127.0.0.1:port"). A Bottle opened or
// launched WithEndpoint(ep) does every call through serve, with the same
// results, except:
//
//   - ExecClaude with tty true runs claude on serve's interactive route:
//     its arguments byte for byte, the caller's terminal in raw mode for
//     the session, claude's stderr merged into its stdout, as on any
//     terminal.
//   - WithStdout and WithStderr Writers get the output in pieces fetched
//     about every 0.2 s, not as it is written.
//   - A command whose caller vanished without stopping it is killed in
//     the guest about a minute later (through the CLI, at once).
//   - serve keeps no labels: a machine launched there is recorded on this
//     host instead, and Reap does not see it; ReapAt(ctx, ep) does.
//
// For example:
//
//	ep, err := bottle.NewEndpoint("https://serve.internal:8443",
//		bottle.WithTLS("ca.pem", "client.pem", "client.key"))
//	if err != nil {
//		return err
//	}
//	defer ep.Close() // bottles opened or launched at ep keep what they need
//	b, err := bottle.Launch(ctx, bottle.WithEndpoint(ep), bottle.WithImage("agent:latest"))
//
// # Environment
//
// Open, Launch and Reap read BOTTLE_SMOLVM (a path, or a name on PATH;
// default smolvm on PATH); do not call os.Setenv meanwhile. The library
// spawns and reaps smolvm itself, so the process must not ignore SIGCHLD.
// At an Endpoint no smolvm runs on this host and BOTTLE_SMOLVM is not
// read; Launch at one and ReapAt read XDG_STATE_HOME (else HOME) to find
// the directory of their records.
//
// The package links libbottle through pkg-config (the bottle module); see
// README.md for building against an installed or an in-tree library.
package bottle
