package bottle

/*
#include <bottle.h>
#include <stdlib.h>
*/
import "C"

import (
	"context"
	"runtime"
	"sync/atomic"
	"unsafe"
)

// Every function of this package that makes a libbottle call which can
// fail first locks its goroutine to the OS thread (runtime.LockOSThread):
// bottle_last_error() belongs to the calling OS thread, and Go may run a
// goroutine's next cgo call on another one; locked, the message read after
// a failed call is that call's. (The C callbacks of a call, output and
// progress, run on that thread too, inside the call.)

// lastError makes the *Error for a libbottle call that returned s, from
// the message libbottle kept for this thread. The goroutine must still be
// locked to the thread that made the call.
func lastError(op string, s C.enum_bottle_status) error {
	var msg string
	if p := C.bottle_last_error(); p != nil {
		msg = C.GoString(p)
	}
	return &Error{Op: op, Status: Status(s), Message: msg}
}

// liveHandles counts the C handles opened and not yet released, so the
// tests can see that neither Close nor the finalizer leaks one.
var liveHandles atomic.Int64

// acquire returns the C handle for one call, counting the call in flight,
// or ErrClosed. Every successful acquire is matched by one release.
func (b *Bottle) acquire(op string) (*C.bottle, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, closedError(op)
	}
	b.inFlight++
	return b.c, nil
}

// release ends a call, waking a Close that waits for the last one.
func (b *Bottle) release() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.inFlight--
	if b.inFlight == 0 {
		b.idle.Broadcast()
	}
}

// call runs f, one blocking libbottle call, with b's C handle, on a locked
// OS thread, and returns what f returns; a context already done returns
// ctx.Err() without running f. Stopping f when ctx ends is f's business:
// it attaches a token from watch to the options of its C call.
// The handle stays counted in flight while f runs, so Close waits for f.
func call[T any](ctx context.Context, b *Bottle, op string, f func(*C.bottle) (T, error)) (T, error) {
	if err := ctx.Err(); err != nil {
		var zero T
		return zero, err
	}
	h, err := b.acquire(op)
	if err != nil {
		var zero T
		return zero, err
	}
	defer b.release()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	return f(h)
}

// watcher trips a bottle_cancel token when a context ends.
type watcher struct {
	token   *C.bottle_cancel
	stop    func() bool
	tripped chan struct{} // closed once the token is tripped
}

// watch attaches a cancel token, with attach (an options object's
// set_cancel), that is tripped as soon as ctx is done, for the C call using
// those options to stop on; nil (no token) for a context that can never be
// done. End the watch with done once the call has returned.
func watch(ctx context.Context, op string, attach func(*C.bottle_cancel) C.enum_bottle_status) (*watcher, error) {
	if ctx.Done() == nil {
		return nil, nil
	}
	w := &watcher{tripped: make(chan struct{})}
	if s := C.bottle_cancel_new(&w.token); s != C.BOTTLE_OK {
		return nil, lastError(op, s)
	}
	// The options keep their own reference to the token.
	if s := attach(w.token); s != C.BOTTLE_OK {
		err := lastError(op, s)
		C.bottle_cancel_free(w.token)
		return nil, err
	}
	w.stop = context.AfterFunc(ctx, func() {
		C.bottle_cancel_trip(w.token)
		close(w.tripped)
	})
	return w, nil
}

// done ends the watch, frees the token, and reports whether ctx tripped
// it. It waits for a trip already under way, which must not run on a freed
// token.
func (w *watcher) done() (tripped bool) {
	if w == nil {
		return false
	}
	if !w.stop() {
		<-w.tripped
		tripped = true
	}
	C.bottle_cancel_free(w.token)
	return tripped
}

// stopped is the error of a call that returned s and failed: ctx's own
// error when ctx stopped it through the watch, else the library's.
func stopped(ctx context.Context, op string, s C.enum_bottle_status, w *watcher) error {
	var failed error
	if s != C.BOTTLE_OK {
		failed = lastError(op, s)
	}
	if w.done() && s == C.BOTTLE_ERR_CANCELLED {
		return ctx.Err()
	}
	return failed
}

// callOptions makes bottle_call_options stopped by ctx, with the watch to
// end once the call has returned, and a function that frees both.
func callOptions(ctx context.Context, op string) (*C.bottle_call_options, *watcher, func(), error) {
	var c *C.bottle_call_options
	if s := C.bottle_call_options_new(&c); s != C.BOTTLE_OK {
		return nil, nil, nil, lastError(op, s)
	}
	w, err := watch(ctx, op, func(t *C.bottle_cancel) C.enum_bottle_status {
		return C.bottle_call_options_set_cancel(c, t)
	})
	if err != nil {
		C.bottle_call_options_free(c)
		return nil, nil, nil, err
	}
	return c, w, func() { C.bottle_call_options_free(c) }, nil
}

// setter runs the setters of a C options object in turn and keeps the
// first failure; setters after it still run, on options about to be freed.
type setter struct {
	op  string
	err error
}

func (s *setter) do(status C.enum_bottle_status) {
	if status != C.BOTTLE_OK && s.err == nil {
		s.err = lastError(s.op, status)
	}
}

// cStrings holds C copies of Go strings until free; the C setters copy
// what they keep.
type cStrings []*C.char

func (cs *cStrings) of(s string) *C.char {
	p := C.CString(s)
	*cs = append(*cs, p)
	return p
}

func (cs *cStrings) free() {
	for _, p := range *cs {
		C.free(unsafe.Pointer(p))
	}
}
