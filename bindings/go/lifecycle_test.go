package bottle

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"
)

func TestConcurrentExecOnOneBottle(t *testing.T) {
	t.Parallel()
	b, _ := openMachine(t)
	const n = 32
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			r, err := b.Exec(context.Background(), fmt.Sprintf("echo out-%d; echo err-%d >&2; exit %d", i, i, i))
			switch {
			case err != nil:
				errs <- fmt.Errorf("goroutine %d: %v", i, err)
			case string(r.Stdout) != fmt.Sprintf("out-%d\n", i) ||
				string(r.Stderr) != fmt.Sprintf("err-%d\n", i) || r.ExitCode != i:
				errs <- fmt.Errorf("goroutine %d: exit %d, stdout %q, stderr %q", i, r.ExitCode, r.Stdout, r.Stderr)
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestCloseTwiceAndCallsAfterClose(t *testing.T) {
	t.Parallel()
	b, _ := openMachine(t)
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	ctx := context.Background()
	_, err := b.Exec(ctx, "true")
	wantErr(t, err, ErrClosed, "closed")
	wantErr(t, err, ErrInvalidArgument, "b: ")
	if got, want := err.Error(), "bottle: exec: invalid argument: b: the bottle is closed"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	_, err = b.ExecClaude(ctx, nil, false)
	wantErr(t, err, ErrClosed, "closed")
	wantErr(t, b.CopyIn(ctx, "/etc/hostname", "/tmp/x"), ErrClosed, "closed")
}

// Close while a call runs: the call finishes normally on the handle, which
// is released after it.
func TestCloseDuringACall(t *testing.T) {
	t.Parallel()
	b, _ := openMachine(t)
	type outcome struct {
		r   *ExecResult
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		r, err := b.Exec(context.Background(), "sleep 0.5; echo finished")
		done <- outcome{r, err}
	}()
	for {
		b.mu.Lock()
		started := b.inFlight > 0
		b.mu.Unlock()
		if started {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b.mu.Lock()
	released := b.c == nil
	b.mu.Unlock()
	if released {
		t.Fatal("Close released the handle under a running call")
	}
	o := <-done
	if o.err != nil || string(o.r.Stdout) != "finished\n" {
		t.Fatalf("the call running during Close: %v, %+v", o.err, o.r)
	}
	b.mu.Lock()
	released = b.c == nil
	b.mu.Unlock()
	if !released {
		t.Error("the handle was not released after the last call")
	}
}

// Close racing with calls from many goroutines: each call either runs or
// gets ErrClosed, and the handle is released once, after the last call.
func TestCloseRacesWithCalls(t *testing.T) {
	t.Parallel()
	b, _ := openMachine(t)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 4; j++ {
				r, err := b.Exec(context.Background(), "echo ok")
				switch {
				case errors.Is(err, ErrClosed):
				case err != nil:
					errs <- err
				case string(r.Stdout) != "ok\n":
					errs <- fmt.Errorf("stdout %q", r.Stdout)
				}
			}
		}()
	}
	time.Sleep(20 * time.Millisecond)
	b.Close()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.c != nil || b.inFlight != 0 {
		t.Errorf("after the calls: handle %p, %d in flight", b.c, b.inFlight)
	}
}

func TestContextDoneBeforeTheCall(t *testing.T) {
	t.Parallel()
	standin(t)
	// On a machine that does not exist, so that any C call would fail with
	// ErrSmolvm instead.
	b, err := Open("go-ctx-no-such-machine")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := b.Exec(ctx, "true"); err != context.Canceled {
		t.Errorf("Exec: %v", err)
	}
	if _, err := b.ExecClaude(ctx, nil, false); err != context.Canceled {
		t.Errorf("ExecClaude: %v", err)
	}
	if err := b.CopyIn(ctx, "/etc/hostname", "/tmp/x"); err != context.Canceled {
		t.Errorf("CopyIn: %v", err)
	}
	expired, cancel2 := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel2()
	if _, err := b.Exec(expired, "true"); err != context.DeadlineExceeded {
		t.Errorf("Exec with an expired deadline: %v", err)
	}
}

// A context that ends during a call returns at once; the C call finishes
// in the background and releases its share of the handle.
func TestContextCancelledDuringACall(t *testing.T) {
	t.Parallel()
	b, _ := openMachine(t)
	// Registered after openMachine's cleanups, so it runs first: the
	// abandoned calls end before the machine is deleted.
	t.Cleanup(func() { waitIdle(t, b) })

	ctx, cancel := context.WithCancel(context.Background())
	timer := time.AfterFunc(100*time.Millisecond, cancel)
	defer timer.Stop()
	start := time.Now()
	_, err := b.Exec(ctx, "sleep 3")
	if !errors.Is(err, context.Canceled) || err != ctx.Err() {
		t.Fatalf("Exec: %v, want ctx.Err()", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("Exec took %v to return after its context was cancelled", took)
	}

	ctx, cancel = context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := b.Exec(ctx, "sleep 3"); err != context.DeadlineExceeded {
		t.Fatalf("Exec with a timeout: %v", err)
	}

	// The bottle still works, and closing it with calls abandoned but
	// running defers the release to them.
	if got := sh(t, b, "echo still here"); got != "still here\n" {
		t.Errorf("after cancellation: %q", got)
	}
	b.Close()
	waitIdle(t, b)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.c != nil {
		t.Error("the handle was not released after the abandoned calls ended")
	}
}

// Not parallel, so that no other test opens or closes handles meanwhile: a
// Bottle dropped without Close is released by its finalizer.
func TestFinalizerReleasesTheHandle(t *testing.T) {
	standin(t)
	before := liveHandles.Load()
	for i := 0; i < 4; i++ {
		if _, err := Open(fmt.Sprintf("go-dropped-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if got := liveHandles.Load(); got != before+4 {
		t.Fatalf("%d live handles after 4 opens, %d before", got, before)
	}
	deadline := time.Now().Add(5 * time.Second)
	for liveHandles.Load() != before {
		if time.Now().After(deadline) {
			t.Fatalf("%d handles still live", liveHandles.Load()-before)
		}
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
}
