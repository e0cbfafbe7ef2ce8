package bottle

// The Go functions that libbottle calls back, during bottle_exec_with
// (output) and bottle_cp_in_with (progress). C gets a C trampoline (in
// exec.go and copy.go: this file, which exports, may only declare) and, as
// user_data, a runtime/cgo.Handle, an integer naming the Go value, never a
// Go pointer. The Handle lives until the C call has returned.

/*
#include <bottle.h>
#include <stdint.h>
*/
import "C"

import (
	"runtime/cgo"
	"unsafe"
)

//export goBottleOutput
func goBottleOutput(sink C.uintptr_t, data *C.uint8_t, n C.size_t) C.int {
	s := cgo.Handle(sink).Value().(*outputSink)
	if !s.write(unsafe.Slice((*byte)(unsafe.Pointer(data)), int(n))) {
		return 1 // stops the command
	}
	return 0
}

//export goBottleProgress
func goBottleProgress(sink C.uintptr_t, p *C.bottle_progress) {
	cgo.Handle(sink).Value().(*progressSink).report(Progress{
		FilesDone:  int64(p.files_done),
		FilesTotal: int64(p.files_total),
		BytesDone:  int64(p.bytes_done),
		BytesTotal: int64(p.bytes_total),
	})
}

// panicTrap keeps a panic from crossing libbottle. A Go callback runs
// inside a C call, and a panic unwinding through the library's frames
// would skip its cleanup (smolvm left running, locks held), so the callback
// catches it, and the Go caller raises it again once the C call has
// returned.
type panicTrap struct {
	value any // the panic caught; nil if none (panic(nil) recovers non-nil)
}

// catch runs f, keeping any panic for repanic.
func (t *panicTrap) catch(f func()) {
	defer func() {
		if p := recover(); p != nil {
			t.value = p
		}
	}()
	f()
}

func (t *panicTrap) caught() bool { return t.value != nil }

// repanic raises the panic caught, if any. Call it after the C call.
func (t *panicTrap) repanic() {
	if t.value != nil {
		panic(t.value)
	}
}
