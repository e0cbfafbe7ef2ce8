package bottle

/*
#include <bottle.h>
#include <stdlib.h>
*/
import "C"

import (
	"context"
	"fmt"
	"unsafe"
)

// ExecClaude runs claude-code in the machine, as node, with exactly args as
// its arguments (after --append-system-prompt-file PATH when the Bottle was
// opened or launched WithPromptPath), and returns claude's exit status
// (128+N if it was killed by signal N).
//
// Each argument reaches claude byte for byte, whatever it contains. The
// process's own stdout and stderr are inherited, not captured: claude
// talks to the caller's terminal, which is why this is not Exec. Pass tty
// true when stdin is a terminal, so the guest gets it and a terminal too;
// with tty false claude's stdin is empty. Two
// interactive sessions sharing a terminal will fight over it.
//
// A ctx already done returns ctx.Err() without starting claude; a ctx that
// ends while claude runs stops smolvm (with tty, smolvm alone, as it shares
// the caller's process group to read the terminal, and the caller's stdin
// is then put back as it was) and ExecClaude returns ctx.Err().
//
// At an Endpoint, tty true runs claude on serve's interactive route, with
// the same arguments byte for byte: the caller's terminal is in raw mode
// for the session (and put back after), its size follows the caller's,
// and claude's stderr arrives merged into its stdout, as on any terminal.
// A ctx that ends closes the session, which ends claude. With tty false,
// claude's output arrives in pieces about every 0.2 s (see Endpoint).
//
// Errors: ErrSmolvm when the machine is unknown or not running (checked
// before claude starts); ErrInvalidArgument (naming argv[i]);
// ErrSmolvmNotFound; ErrIO; ErrClosed.
func (b *Bottle) ExecClaude(ctx context.Context, args []string, tty bool) (int, error) {
	const op = "exec claude"
	for i, a := range args {
		if err := checkNoNUL(op, fmt.Sprintf("argv[%d]", i), a); err != nil {
			return 0, err
		}
	}

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
		c, w, free, err := callOptions(ctx, op)
		if err != nil {
			return 0, err
		}
		defer free()
		var code C.int32_t
		s := C.bottle_exec_claude_with(h, argvPtr, C.size_t(len(argv)), C.bool(tty), c, &code)
		if err := stopped(ctx, op, s, w); err != nil {
			return 0, err
		}
		return int(code), nil
	})
}
