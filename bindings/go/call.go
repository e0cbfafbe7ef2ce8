package bottle

/*
#include <bottle.h>
*/
import "C"

import (
	"context"
	"sync/atomic"
)

// liveHandles counts the C handles opened and not yet released, so the
// tests can see that neither Close, the finalizer nor an abandoned call
// leaks one.
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

// release ends a call; the last call to end after Close frees the handle.
func (b *Bottle) release() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.inFlight--
	if b.closed && b.inFlight == 0 {
		b.free()
	}
}

// free releases the C handle. b.mu is held, the bottle is closed and no
// call is using the handle.
func (b *Bottle) free() {
	C.bottle_close(b.c)
	b.c = nil
	liveHandles.Add(-1)
}

// call runs f, one blocking libbottle call, with b's C handle, and returns
// its result, or ctx.Err() as soon as ctx is done.
//
// The C API cannot stop a call once it has started, so when ctx ends first
// f goes on in its goroutine until smolvm finishes; f copies what it needs
// into Go memory and frees every C allocation itself, so the abandoned
// result is left to the garbage collector. The handle stays counted in
// flight until f returns, so Close cannot free it under f (and the
// goroutine's reference to b keeps the finalizer away).
func call[T any](ctx context.Context, b *Bottle, op string, f func(*C.bottle) (T, error)) (T, error) {
	var zero T
	if err := ctx.Err(); err != nil {
		return zero, err
	}
	h, err := b.acquire(op)
	if err != nil {
		return zero, err
	}
	if ctx.Done() == nil { // never cancelled: no goroutine needed
		defer b.release()
		return f(h)
	}

	type outcome struct {
		value T
		err   error
	}
	done := make(chan outcome, 1) // buffered: an abandoned f must not block
	go func() {
		defer b.release()
		v, err := f(h)
		done <- outcome{v, err}
	}()
	select {
	case o := <-done:
		return o.value, o.err
	case <-ctx.Done():
		return zero, ctx.Err()
	}
}
