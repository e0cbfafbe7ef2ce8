package bottle

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"testing/iotest"
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

// Close while a call runs waits for the call, which finishes normally on
// the handle, then releases it.
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
	start := time.Now()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < 200*time.Millisecond {
		t.Errorf("Close returned after %v, before the call ended", took)
	}
	b.mu.Lock()
	released, inFlight := b.c == nil, b.inFlight
	b.mu.Unlock()
	if !released || inFlight != 0 {
		t.Errorf("after Close: released %v, %d calls in flight", released, inFlight)
	}
	o := <-done
	if o.err != nil || string(o.r.Stdout) != "finished\n" {
		t.Fatalf("the call running during Close: %v, %+v", o.err, o.r)
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
	b, err := open(t, "go-ctx-no-such-machine")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	unread := iotest.ErrReader(errors.New("stdin was read"))
	if _, err := b.Exec(ctx, "true", WithStdin(unread)); err != context.Canceled {
		t.Errorf("Exec: %v", err)
	}
	if _, err := b.ExecClaude(ctx, nil, false); err != context.Canceled {
		t.Errorf("ExecClaude: %v", err)
	}
	if err := b.CopyIn(ctx, "/etc/hostname", "/tmp/x"); err != context.Canceled {
		t.Errorf("CopyIn: %v", err)
	}
	if err := b.CopyOut(ctx, "/etc/hostname", "/tmp/x"); err != context.Canceled {
		t.Errorf("CopyOut: %v", err)
	}
	if nb, err := Launch(ctx, launchOpts(t)...); err != context.Canceled || nb != nil {
		t.Errorf("Launch: %v, %v", nb, err)
	}
	err = WithBottle(ctx, func(*Bottle) error { t.Error("fn ran"); return nil }, launchOpts(t)...)
	if err != context.Canceled {
		t.Errorf("WithBottle: %v", err)
	}
	if names, err := Reap(ctx); err != context.Canceled || names != nil {
		t.Errorf("Reap: %q, %v", names, err)
	}
	// At a serve that is not there, which ReapAt would report as ErrIO.
	nowhere, err := NewEndpoint("unix:/nonexistent/smolvm.sock")
	if err != nil {
		t.Fatal(err)
	}
	defer nowhere.Close()
	if names, err := ReapAt(ctx, nowhere); err != context.Canceled || names != nil {
		t.Errorf("ReapAt: %q, %v", names, err)
	}
	expired, cancel2 := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel2()
	if _, err := b.Exec(expired, "true"); err != context.DeadlineExceeded {
		t.Errorf("Exec with an expired deadline: %v", err)
	}
}

// Not parallel, so that no other test opens or closes handles meanwhile: a
// Bottle dropped without Close is released by its finalizer, and a
// launched one's machine deleted.
func TestFinalizerReleasesTheHandle(t *testing.T) {
	standin(t)
	testEndpoint(t) // made once, and kept, before counting
	before := liveHandles.Load()
	for i := 0; i < 4; i++ {
		if _, err := open(t, fmt.Sprintf("go-dropped-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	launched := func() string {
		b, err := Launch(context.Background(), launchOpts(t)...)
		if err != nil {
			t.Fatal(err)
		}
		return b.Name()
	}()
	// An Endpoint dropped without Close, after a Bottle opened at it.
	func() {
		ep, err := NewEndpoint("unix:/nonexistent/smolvm.sock")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Open("go-dropped-at", WithEndpoint(ep)); err != nil {
			t.Fatal(err)
		}
	}()
	if got := liveHandles.Load(); got != before+7 {
		t.Fatalf("%d live handles after 4 opens, a launch, an endpoint and an open at it, %d before", got, before)
	}
	deadline := time.Now().Add(10 * time.Second)
	for liveHandles.Load() != before {
		if time.Now().After(deadline) {
			t.Fatalf("%d handles still live", liveHandles.Load()-before)
		}
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	if machineStatus(t, launched) != nil {
		t.Errorf("the dropped bottle's machine %s is still there", launched)
	}
}
