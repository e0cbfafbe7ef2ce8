package bottle

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// launch is Launch, at the endpoint under test if there is one, that must
// succeed; the bottle is closed when the test ends, if the test has not
// closed it.
func launch(t *testing.T, opts ...LaunchOption) *Bottle {
	t.Helper()
	b, err := Launch(context.Background(), launchOpts(t, opts...)...)
	if err != nil {
		t.Fatalf("Launch: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func TestLaunchOwnsItsMachine(t *testing.T) {
	t.Parallel()
	b := launch(t)
	name := b.Name()
	if prefix := fmt.Sprintf("bottle-%d-", os.Getpid()); !strings.HasPrefix(name, prefix) {
		t.Errorf("Name() = %q, want the prefix %q", name, prefix)
	}
	st := machineStatus(t, name)
	if st == nil {
		t.Fatalf("machine %s does not exist", name)
	}
	labels, _ := st["labels"].(map[string]any)
	if atEndpoint(t) {
		// serve keeps no labels: the machine is recorded on this host.
		if st["state"] != "running" || len(labels) != 0 {
			t.Errorf("status: %v", st)
		}
		if records := serveRecords(t, name); len(records) != 1 {
			t.Errorf("records of %s for ReapAt: %q", name, records)
		}
	} else if st["state"] != "running" || labels["libbottle"] != "1" || labels["libbottle.pid"] != strconv.Itoa(os.Getpid()) {
		t.Errorf("status: %v", st)
	}
	if got := sh(t, b, "id -un"); got != "node\n" {
		t.Errorf("Exec in the launched machine: %q", got)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if machineStatus(t, name) != nil {
		t.Error("Close did not delete the machine")
	}
	if records := serveRecords(t, name); len(records) != 0 {
		t.Errorf("Close left records of %s: %q", name, records)
	}
	if err := b.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if b.Name() != name {
		t.Errorf("Name() after Close = %q", b.Name())
	}
}

func TestOpenedBottleName(t *testing.T) {
	t.Parallel()
	b, name := openMachine(t)
	if b.Name() != name {
		t.Errorf("Name() = %q, want %q", b.Name(), name)
	}
}

func TestLaunchOptionsShapeTheMachine(t *testing.T) {
	t.Parallel()
	shared, scratch := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(shared, "shared.txt"), []byte("from the host"), 0o644); err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("go-%d-launch-opts", os.Getpid())
	b := launch(t, WithName(name), WithImage("agent:latest"), WithCPUs(2), WithMemoryMiB(1024),
		WithNetwork(true), WithVolume(shared, "/mnt/shared", true), WithVolume(scratch, "/mnt/scratch", false),
		WithMachineEnv("MODE", "test"), WithPromptPath("/p.md"))
	if b.Name() != name {
		t.Errorf("Name() = %q, want %q", b.Name(), name)
	}
	st := machineStatus(t, name)
	if st["image"] != "agent:latest" || st["cpus"] != 2.0 || st["memory_mib"] != 1024.0 || st["network"] != true {
		t.Errorf("status: %v", st)
	}
	if got := string(run(t, b, `printf %s "$MODE"`).Stdout); got != "test" {
		t.Errorf("the machine's environment did not reach the script: MODE=%q", got)
	}
	asRoot := WithUser("root")
	if got := string(run(t, b, "cat /mnt/shared/shared.txt", asRoot).Stdout); got != "from the host" {
		t.Errorf("read-only volume: read %q", got)
	}
	if r := run(t, b, "touch /mnt/shared/new", asRoot); r.ExitCode == 0 {
		t.Error("the read-only volume is writable")
	}
	if r := run(t, b, "echo written > /mnt/scratch/new", asRoot); r.ExitCode != 0 {
		t.Errorf("read-write volume: exit %d, %s", r.ExitCode, r.Stderr)
	}
	if got, err := os.ReadFile(filepath.Join(scratch, "new")); string(got) != "written\n" {
		t.Errorf("the host sees %q, %v", got, err)
	}
	if _, err := b.ExecClaude(context.Background(), []string{"x"}, false); err != nil {
		t.Fatal(err)
	}
	if got := claudeArgv(t, b); !slices.Equal(got, []string{"--append-system-prompt-file", "/p.md", "x"}) {
		t.Errorf("claude got %q", got)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if machineStatus(t, name) != nil {
		t.Error("Close did not delete the machine")
	}
}

// unbootableMiB is more memory than any host has: a machine asking for it
// does not start, on either stand-in.
const unbootableMiB = 4_000_000_000

func TestLaunchThatFailsToStartLeavesNoMachine(t *testing.T) {
	t.Parallel()
	standin(t)
	name := fmt.Sprintf("go-%d-fail-start", os.Getpid())
	b, err := Launch(context.Background(), launchOpts(t, WithName(name), WithMemoryMiB(unbootableMiB))...)
	wantErr(t, err, ErrSmolvm, "cannot give the guest")
	if b != nil {
		t.Error("Launch returned a Bottle with an error")
	}
	if machineStatus(t, name) != nil {
		t.Error("the machine that failed to start is still there")
	}
}

func TestCloseReportsAFailedTeardown(t *testing.T) {
	t.Parallel()
	b := launch(t)
	smolvm(t, "machine", "delete", "--name", b.Name(), "-f")
	err := b.Close()
	wantErr(t, err, ErrSmolvm, notFound(t, b.Name()))
	var e *Error
	if errors.As(err, &e); e.Op != "close" {
		t.Errorf("Op = %q", e.Op)
	}
	if err := b.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	_, err = b.Exec(context.Background(), "true")
	wantErr(t, err, ErrClosed, "closed")
}

func TestWithBottleAlwaysTearsDown(t *testing.T) {
	t.Parallel()
	standin(t)
	ctx := context.Background()
	var name string
	remember := func(b *Bottle) { name = b.Name() }
	gone := func(when string) {
		t.Helper()
		if name == "" {
			t.Fatalf("%s: fn did not run", when)
		}
		if machineStatus(t, name) != nil {
			t.Errorf("%s: machine %s is still there", when, name)
		}
		name = ""
	}

	err := WithBottle(ctx, func(b *Bottle) error {
		remember(b)
		if got := sh(t, b, "id -un"); got != "node\n" {
			t.Errorf("in WithBottle: %q", got)
		}
		return nil
	}, launchOpts(t)...)
	if err != nil {
		t.Errorf("WithBottle: %v", err)
	}
	gone("success")

	failed := errors.New("fn failed")
	err = WithBottle(ctx, func(b *Bottle) error { remember(b); return failed }, launchOpts(t, WithCPUs(1))...)
	if err != failed {
		t.Errorf("WithBottle returned %v, want fn's error", err)
	}
	gone("error")

	func() {
		defer func() {
			if p := recover(); p != "fn panicked" {
				t.Errorf("recovered %v", p)
			}
		}()
		WithBottle(ctx, func(b *Bottle) error { remember(b); panic("fn panicked") }, launchOpts(t)...)
	}()
	gone("panic")

	// fn's error and the teardown's, joined.
	err = WithBottle(ctx, func(b *Bottle) error {
		remember(b)
		smolvm(t, "machine", "delete", "--name", b.Name(), "-f")
		return failed
	}, launchOpts(t)...)
	if !errors.Is(err, failed) || !errors.Is(err, ErrSmolvm) {
		t.Errorf("WithBottle returned %v, want fn's error and ErrSmolvm", err)
	}
	gone("failed teardown")

	err = WithBottle(ctx, func(*Bottle) error { t.Error("fn ran after a failed launch"); return nil },
		launchOpts(t, WithMemoryMiB(unbootableMiB))...)
	wantErr(t, err, ErrSmolvm, "cannot give the guest")
}

func TestReapDeletesOnlyMachinesOfDeadOwners(t *testing.T) {
	t.Parallel()
	standin(t)
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	boot, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		t.Fatal(err)
	}
	pidns, err := os.Readlink("/proc/self/ns/pid")
	if err != nil {
		t.Fatal(err)
	}
	orphan := fmt.Sprintf("go-%d-orphan", os.Getpid())
	smolvm(t, "machine", "create", "--name", orphan,
		"--label", "libbottle=1",
		"--label", fmt.Sprintf("libbottle.pid=%d", dead.Process.Pid),
		"--label", "libbottle.start=12345",
		"--label", "libbottle.boot="+strings.TrimSpace(string(boot)),
		"--label", "libbottle.pidns="+pidns)
	t.Cleanup(func() {
		if machineStatus(t, orphan) != nil {
			smolvm(t, "machine", "delete", "--name", orphan, "-f")
		}
	})
	foreign := newMachine(t)
	ours := launch(t)

	removed, err := Reap(context.Background())
	if err != nil {
		t.Fatalf("Reap: %v", err)
	}
	if !slices.Contains(removed, orphan) || machineStatus(t, orphan) != nil {
		t.Errorf("Reap removed %q; the orphan %s is not among them, or still there", removed, orphan)
	}
	for _, live := range []string{foreign, ours.Name()} {
		if slices.Contains(removed, live) || machineStatus(t, live) == nil {
			t.Errorf("Reap removed %s, which is not an orphan", live)
		}
	}
}
