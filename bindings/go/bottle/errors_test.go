package bottle

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"testing"
	"time"
)

func TestStatusAndErrorModel(t *testing.T) {
	t.Parallel()
	if got := StatusSmolvm.String(); got != "smolvm failed" {
		t.Errorf("StatusSmolvm.String() = %q", got)
	}
	// String is the C library's bottle_status_str.
	if StatusUnsupported != 8 || StatusUnsupported.String() != "not supported by this build of libbottle" {
		t.Errorf("StatusUnsupported = %d, %q", int(StatusUnsupported), StatusUnsupported)
	}
	if got := Status(99).String(); got != "unknown status" {
		t.Errorf("Status(99).String() = %q", got)
	}
	if Version() == "" {
		t.Error("Version() is empty")
	}

	sentinels := map[Status]error{
		StatusInvalidArgument: ErrInvalidArgument,
		StatusSmolvmNotFound:  ErrSmolvmNotFound,
		StatusSmolvm:          ErrSmolvm,
		StatusIO:              ErrIO,
		StatusPanic:           ErrPanic,
		StatusTimeout:         ErrTimeout,
		StatusCancelled:       ErrCancelled,
		StatusUnsupported:     ErrUnsupported,
	}
	for status, sentinel := range sentinels {
		var err error = &Error{Op: "exec", Status: status, Message: "m"}
		for _, other := range sentinels {
			if errors.Is(err, other) != (other == sentinel) {
				t.Errorf("%v: errors.Is(%v) = %v", status, other, !(other == sentinel))
			}
		}
		if errors.Is(err, ErrClosed) {
			t.Errorf("%v is ErrClosed", status)
		}
	}
	if errors.Is(&Error{Status: Status(99)}, nil) {
		t.Error("an unknown status matches nil")
	}

	err := fmt.Errorf("wrapped: %w", &Error{Op: "exec", Status: StatusSmolvm, Message: "Error: vm not found: x"})
	if got, want := err.Error(), "wrapped: bottle: exec: smolvm failed: Error: vm not found: x"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	var e *Error
	if !errors.As(err, &e) || e.Op != "exec" || e.Status != StatusSmolvm {
		t.Errorf("errors.As: %#v", e)
	}

	// The Go error behind a failure is seen through the *Error.
	behind := errors.New("disk full")
	err = &Error{Op: "exec", Status: StatusCancelled, Message: "m", Err: behind}
	if !errors.Is(err, behind) || !errors.Is(err, ErrCancelled) || errors.Is(err, ErrIO) {
		t.Errorf("%v with Err set: errors.Is is wrong", err)
	}
}

func TestUnknownMachine(t *testing.T) {
	t.Parallel()
	standin(t)
	name := fmt.Sprintf("go-%d-no-such-machine", os.Getpid())
	b, err := open(t, name)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := context.Background()
	_, err = b.Exec(ctx, "true")
	wantErr(t, err, ErrSmolvm, notFound(t, name))
	var e *Error
	errors.As(err, &e)
	if e.Op != "exec" || e.Status != StatusSmolvm || !strings.HasPrefix(err.Error(), "bottle: exec: smolvm failed: ") {
		t.Errorf("error fields: %#v, %q", e, err)
	}
	// claude asks for the machine's state first: "machine 'N' not found".
	_, err = b.ExecClaude(ctx, []string{"x"}, false)
	wantErr(t, err, ErrSmolvm, "not found")
	wantErr(t, b.CopyIn(ctx, "/etc/hostname", "/tmp/h"), ErrSmolvm, notFound(t, name))
}

func TestStoppedMachine(t *testing.T) {
	t.Parallel()
	b, name := openMachine(t)
	smolvm(t, "machine", "stop", "--name", name)
	ctx := context.Background()
	_, err := b.Exec(ctx, "true")
	wantErr(t, err, ErrSmolvm, "is not running")
	_, err = b.ExecClaude(ctx, []string{"x"}, false)
	wantErr(t, err, ErrSmolvm, "is not running")
	wantErr(t, b.CopyIn(ctx, "/etc/hostname", "/tmp/h"), ErrSmolvm, "is not running")

	smolvm(t, "machine", "start", "--name", name)
	if r := run(t, b, "test -e ~/.claude-standin/argv"); r.ExitCode != 1 {
		t.Error("claude ran on a stopped machine")
	}
}

func TestBadInput(t *testing.T) {
	t.Parallel()
	standin(t)
	for _, c := range []struct {
		machine string
		opts    []Option
		arg     string
	}{
		{"-x", nil, "machine_name"},
		{"a:b", nil, "machine_name"},
		{"", nil, "machine_name"},
		{"a\x00b", nil, "machine_name"},
		{"ok", []Option{WithPromptPath("rel/prompt.md")}, "prompt_path"},
		{"ok", []Option{WithPromptPath("")}, "prompt_path"},
		{"ok", []Option{WithPromptPath("/p\x00x")}, "prompt_path"},
	} {
		b, err := open(t, c.machine, c.opts...)
		wantErr(t, err, ErrInvalidArgument, c.arg+": ")
		if b != nil {
			t.Errorf("Open(%q) returned a Bottle with an error", c.machine)
		}
	}

	// Open only checks the name, so a machine that does not exist serves:
	// every argument below is rejected before smolvm runs.
	b, err := open(t, "go-bad-input")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := context.Background()
	exec := func(script string, opts ...ExecOption) error {
		r, err := b.Exec(ctx, script, opts...)
		if r != nil {
			t.Errorf("Exec(%q) returned a result with an error", script)
		}
		return err
	}
	claude := func(args ...string) error {
		code, err := b.ExecClaude(ctx, args, false)
		if code != 0 {
			t.Errorf("ExecClaude(%q) returned %d with an error", args, code)
		}
		return err
	}
	for _, c := range []struct {
		err error
		arg string
	}{
		{exec("true", WithUser("-c")), "user"},
		{exec("true", WithUser("a b")), "user"},
		{exec("true", WithUser("")), "user"},
		{exec("true", WithUser("no\x00de")), "user"},
		{exec("echo a\x00b"), "script"},
		{exec(strings.Repeat("x", 131072)), "script"},
		{claude("ok", "ok", "a\x00b"), "argv[2]"},
		{b.CopyIn(ctx, "/etc/host\x00name", "/tmp/x"), "host_path"},
		{b.CopyIn(ctx, "/etc/hostname", "/tmp/\x00x"), "guest_path"},
		{b.CopyIn(ctx, "/etc/hostname", "tmp/x"), "guest_path"},
		{b.CopyIn(ctx, "/etc/hostname", ""), "guest_path"},
		{exec("true", WithEnv("A=B", "v")), "name"},
		{exec("true", WithEnv("", "v")), "name"},
		{exec("true", WithEnv("A\x00", "v")), "name"},
		{exec("true", WithEnv("A", "v\x00")), "value"},
		{exec("true", WithEnv("A", "\xff")), "value"},
		{exec("true", WithSecretEnv("1A", "v")), "name"},
		{exec("true", WithSecretEnv("A", "v\x00")), "value"},
		{exec("true", WithWorkdir("rel")), "dir"},
		{exec("true", WithWorkdir("/a\x00")), "dir"},
		{exec("true", WithTimeout(-time.Second)), "timeout_ms"},
		{b.CopyIn(ctx, "/etc/hostname", "/tmp/x", WithMode(fs.ModeDir|0o755)), "mode"},
		{b.CopyIn(ctx, "/etc/hostname", "/tmp/x", WithOwner(-1, 0)), "uid"},
		{b.CopyIn(ctx, "/etc/hostname", "/tmp/x", WithOwner(0, 1<<32)), "gid"},
		{b.CopyIn(ctx, "/etc/hostname", "/tmp/x", WithOwnerUser("a b")), "user"},
		{b.CopyIn(ctx, "/etc/hostname", "/tmp/x", WithOwnerUser("no\x00de")), "user"},
		{b.CopyOut(ctx, "/tmp/\x00x", "/tmp/x"), "guest_path"},
		{b.CopyOut(ctx, "/tmp/a:b", "/tmp/x"), "guest_path"},
		{b.CopyOut(ctx, "/tmp/x", "/tmp/\x00x"), "host_path"},
	} {
		wantErr(t, c.err, ErrInvalidArgument, c.arg+": ")
	}

	// Launch options are checked before smolvm runs.
	launch := func(opts ...LaunchOption) error {
		nb, err := Launch(ctx, launchOpts(t, opts...)...)
		if nb != nil {
			t.Error("Launch returned a Bottle with an error")
			nb.Close()
		}
		return err
	}
	for _, c := range []struct {
		err error
		arg string
	}{
		{launch(WithName("-x")), "machine_name"},
		{launch(WithName("a\x00b")), "machine_name"},
		{launch(WithImage("--privileged")), "image"},
		{launch(WithImage("a b")), "image"},
		{launch(WithImage("a\x00")), "image"},
		{launch(WithCPUs(-1)), "cpus"},
		{launch(WithMemoryMiB(-1)), "mib"},
		{launch(WithVolume("rel", "/g", false)), "host_path"},
		{launch(WithVolume("/a:b", "/g", false)), "host_path"},
		{launch(WithVolume("/a", "/g:ro", true)), "guest_path"},
		{launch(WithVolume("/a", "/g\x00", true)), "guest_path"},
		{launch(WithMachineEnv("1A", "v")), "name"},
		{launch(WithMachineEnv("A", "v\x00")), "value"},
		{launch(WithPromptPath("p")), "prompt_path"},
	} {
		wantErr(t, c.err, ErrInvalidArgument, c.arg+": ")
	}
}

// Not parallel: it changes the environment, which Open reads. Through
// the CLI, whether or not the tests run at an endpoint: at one, no smolvm
// is looked for.
func TestMissingSmolvm(t *testing.T) {
	standin(t)
	t.Setenv("BOTTLE_SMOLVM", "/nonexistent/smolvm")
	b, err := Open("go-missing-smolvm")
	wantErr(t, err, ErrSmolvmNotFound, "BOTTLE_SMOLVM")
	if b != nil {
		t.Error("Open returned a Bottle with an error")
	}
	// A nil Endpoint is the CLI.
	_, err = Open("go-missing-smolvm", WithEndpoint(nil))
	wantErr(t, err, ErrSmolvmNotFound, "BOTTLE_SMOLVM")

	ep, err := NewEndpoint("unix:/nonexistent/smolvm.sock")
	if err != nil {
		t.Fatal(err)
	}
	defer ep.Close()
	b, err = Open("go-missing-smolvm", WithEndpoint(ep))
	if err != nil {
		t.Fatalf("Open at an endpoint looked for smolvm: %v", err)
	}
	b.Close()
}
