package bottle

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"testing/iotest"
	"time"
)

func TestExecEnvWorkdirAndUser(t *testing.T) {
	t.Parallel()
	b, _ := openMachine(t)
	r := run(t, b, `printf '%s|' "$GREETING" "$EMPTY" "$(id -un)" "$PWD"`,
		WithEnv("GREETING", "hello 'there' $HOME"), WithEnv("EMPTY", ""),
		WithUser("root"), WithWorkdir("/tmp"))
	if got, want := string(r.Stdout), "hello 'there' $HOME||root|/tmp|"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	// node keeps its login environment, plus the variable.
	if got := string(run(t, b, `echo "$HOME $V"`, WithEnv("V", "x")).Stdout); got != "/home/node x\n" {
		t.Errorf("as node: %q", got)
	}
	r = run(t, b, "echo ran", WithWorkdir("/no/such"))
	if r.ExitCode != 1 || len(r.Stdout) != 0 || len(r.Stderr) == 0 {
		t.Errorf("missing workdir: exit %d, stdout %q, stderr %q", r.ExitCode, r.Stdout, r.Stderr)
	}
}

// The secret reaches the script, but at no moment the command line of any
// process on the host.
func TestExecSecretEnvStaysOffCommandLines(t *testing.T) {
	t.Parallel()
	b, _ := openMachine(t)
	secret := fmt.Sprintf("s3cr3t-%d-go-value", os.Getpid())
	var done atomic.Bool
	scans := make(chan int)
	go func() {
		n := 0
		for !done.Load() {
			if seen := processesWith(secret); len(seen) > 0 {
				t.Errorf("the secret is on a command line: %q", seen)
				break
			}
			n++
		}
		scans <- n
	}()
	r := run(t, b, `sleep 1; printf %s "$TOKEN"`, WithSecretEnv("TOKEN", secret))
	done.Store(true)
	if n := <-scans; n < 10 {
		t.Errorf("the process list was scanned only %d times", n)
	}
	if string(r.Stdout) != secret {
		t.Errorf("the script printed %q, want the secret", r.Stdout)
	}
}

func TestExecStdin(t *testing.T) {
	t.Parallel()
	b, _ := openMachine(t)
	input := make([]byte, 16<<20)
	for i := range input {
		input[i] = byte(uint32(i) * 2654435761 >> 24)
	}
	r := run(t, b, "cat", WithStdin(bytes.NewReader(input)))
	if r.ExitCode != 0 || !bytes.Equal(r.Stdout, input) {
		t.Errorf("16 MiB through cat: exit %d, %d bytes back, equal %v",
			r.ExitCode, len(r.Stdout), bytes.Equal(r.Stdout, input))
	}
	// A script need not read it all.
	if got := sh(t, b, "echo ignored"); got != "ignored\n" {
		t.Errorf("unread stdin: %q", got)
	}
	if got := string(run(t, b, "cat; echo end", WithStdin(strings.NewReader(""))).Stdout); got != "end\n" {
		t.Errorf("empty stdin: %q", got)
	}

	broken := errors.New("the reader broke")
	_, err := b.Exec(context.Background(), "cat", WithStdin(iotest.ErrReader(broken)))
	wantErr(t, err, ErrIO, "stdin: the reader broke")
	if !errors.Is(err, broken) {
		t.Errorf("%v does not wrap the reader's error", err)
	}
}

func TestExecTimeoutStopsTheCommand(t *testing.T) {
	t.Parallel()
	b, name := openMachine(t)
	start := time.Now()
	_, err := b.Exec(context.Background(), "sleep 60", WithTimeout(500*time.Millisecond))
	took := time.Since(start)
	wantErr(t, err, ErrTimeout, "timed out after 500 ms")
	if took > 2500*time.Millisecond {
		t.Errorf("returned %v after a 500 ms timeout", took)
	}
	noSmolvmFor(t, name)
	// Fast commands are unaffected, and a sub-millisecond timeout is not
	// "no limit".
	if got := string(run(t, b, "echo quick", WithTimeout(500*time.Millisecond)).Stdout); got != "quick\n" {
		t.Errorf("with a timeout: %q", got)
	}
	_, err = b.Exec(context.Background(), "sleep 60", WithTimeout(time.Nanosecond))
	wantErr(t, err, ErrTimeout, "timed out after 1 ms")
}

func TestContextStopsTheCommand(t *testing.T) {
	t.Parallel()
	b, name := openMachine(t)

	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		time.Sleep(300 * time.Millisecond)
		cancel()
	}()
	start := time.Now()
	_, err := b.Exec(ctx, "sleep 60")
	if took := time.Since(start); took > 2500*time.Millisecond {
		t.Errorf("Exec returned %v after it started, 300 ms after which its context was cancelled", took)
	}
	if err != context.Canceled {
		t.Fatalf("Exec: %v, want context.Canceled", err)
	}
	noSmolvmFor(t, name)

	ctx, cancel = context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start = time.Now()
	if _, err := b.Exec(ctx, "sleep 60"); err != context.DeadlineExceeded {
		t.Fatalf("Exec with a context deadline: %v", err)
	}
	if took := time.Since(start); took > 2500*time.Millisecond {
		t.Errorf("Exec returned %v after a 300 ms deadline", took)
	}
	noSmolvmFor(t, name)

	// A context that could end but does not changes nothing, and the
	// bottle still works after cancellations.
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	if r, err := b.Exec(ctx, "echo still here"); err != nil || string(r.Stdout) != "still here\n" {
		t.Errorf("after cancellation: %v, %+v", err, r)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.inFlight != 0 {
		t.Errorf("%d calls still in flight", b.inFlight)
	}
}

// chunks records each Write and when it came.
type chunks struct {
	data [][]byte
	at   []time.Time
}

func (c *chunks) Write(p []byte) (int, error) {
	c.data = append(c.data, bytes.Clone(p))
	c.at = append(c.at, time.Now())
	return len(p), nil
}

func (c *chunks) String() string { return string(bytes.Join(c.data, nil)) }

func TestExecStreamsToWriters(t *testing.T) {
	t.Parallel()
	b, _ := openMachine(t)
	// A line every step, each to arrive on its own: at an endpoint, output
	// comes in pieces fetched about every 0.2 s.
	step := 100 * time.Millisecond
	if atEndpoint(t) {
		step = 600 * time.Millisecond
	}
	script := fmt.Sprintf("for i in 1 2 3; do echo $i; echo e$i >&2; sleep %g; done", step.Seconds())
	var out chunks
	r := run(t, b, script, WithStdout(&out))
	returned := time.Now()
	if out.String() != "1\n2\n3\n" || len(out.data) < 3 {
		t.Errorf("stdout reached the writer as %q", out.data)
	} else if early := returned.Sub(out.at[0]); early < step*3/2 {
		t.Errorf("the first line arrived only %v before Exec returned", early)
	}
	if len(r.Stdout) != 0 || string(r.Stderr) != "e1\ne2\ne3\n" {
		t.Errorf("result: stdout %q (streamed, so empty), stderr %q (captured)", r.Stdout, r.Stderr)
	}

	var errs chunks
	r = run(t, b, script, WithStderr(&errs))
	if errs.String() != "e1\ne2\ne3\n" || len(errs.data) < 3 {
		t.Errorf("stderr reached the writer as %q", errs.data)
	}
	if string(r.Stdout) != "1\n2\n3\n" || len(r.Stderr) != 0 {
		t.Errorf("result: stdout %q (captured), stderr %q (streamed, so empty)", r.Stdout, r.Stderr)
	}

	// One writer for both streams.
	var both chunks
	run(t, b, "echo a; echo b >&2", WithStdout(&both), WithStderr(&both))
	if got := both.String(); got != "a\nb\n" && got != "b\na\n" {
		t.Errorf("both streams gave %q", got)
	}
}

// failingWriter fails at its first Write with err, or panics with it.
type failingWriter struct {
	err   error
	panic bool
	got   []byte
}

func (w *failingWriter) Write(p []byte) (int, error) {
	w.got = append(w.got, p...)
	if w.panic {
		panic(w.err)
	}
	return 0, w.err
}

func TestExecStopsWhenAWriterFails(t *testing.T) {
	t.Parallel()
	b, name := openMachine(t)
	broken := errors.New("disk full")
	w := &failingWriter{err: broken}
	start := time.Now()
	_, err := b.Exec(context.Background(), "echo first; sleep 60", WithStdout(w))
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("Exec returned %v after the writer failed", took)
	}
	wantErr(t, err, ErrCancelled, "stdout callback")
	if !errors.Is(err, broken) || !strings.Contains(err.Error(), "writing stdout: disk full") {
		t.Errorf("%v does not wrap the writer's error", err)
	}
	if string(w.got) != "first\n" {
		t.Errorf("the writer got %q", w.got)
	}
	noSmolvmFor(t, name)

	// A panic in a writer stops the command and goes on once Exec has
	// cleaned up.
	w = &failingWriter{err: errors.New("writer panic"), panic: true}
	func() {
		defer func() {
			if p := recover(); p != w.err {
				t.Errorf("recovered %v, want the writer's panic", p)
			}
		}()
		b.Exec(context.Background(), "echo first >&2; sleep 60", WithStderr(w))
		t.Error("Exec did not panic")
	}()
	noSmolvmFor(t, name)
	if got := sh(t, b, "echo after"); got != "after\n" {
		t.Errorf("after a panic: %q", got)
	}
}
