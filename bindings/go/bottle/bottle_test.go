package bottle

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

func TestExecRunsAsNodeInALoginShell(t *testing.T) {
	t.Parallel()
	b, _ := openMachine(t)
	if got, want := sh(t, b, `id -un; echo "$HOME"; echo "$USER"; pwd`), "node\n/home/node\nnode\n/home/node\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	r := run(t, b, "id -un; id -u", WithUser("root"))
	if got := string(r.Stdout); got != "root\n0\n" {
		t.Errorf("WithUser(root): got %q", got)
	}
	r = run(t, b, "id -un", WithUser("node"))
	if got := string(r.Stdout); got != "node\n" {
		t.Errorf("WithUser(node): got %q", got)
	}
}

func TestExecExitStatuses(t *testing.T) {
	t.Parallel()
	b, _ := openMachine(t)
	for _, c := range []struct {
		script string
		code   int
	}{
		{"true", 0},
		{"exit 1", 1},
		{"exit 255", 255},
		{"kill -9 $$", 137},
		{"kill -TERM $$", 143},
		{"", 0},
	} {
		if r := run(t, b, c.script); r.ExitCode != c.code {
			t.Errorf("%q: exit %d, want %d", c.script, r.ExitCode, c.code)
		}
	}
}

// smolvm exits 1 both when it fails and when the script does; a script
// that looks like a smolvm failure is still the script's.
func TestExecErrorLookalikeIsTheScripts(t *testing.T) {
	t.Parallel()
	b, _ := openMachine(t)
	r := run(t, b, "echo 'Error: x' >&2; exit 1")
	if r.ExitCode != 1 || string(r.Stderr) != "Error: x\n" || len(r.Stdout) != 0 {
		t.Errorf("got exit %d, stdout %q, stderr %q", r.ExitCode, r.Stdout, r.Stderr)
	}
}

func TestExecScriptTextReachesTheShellUnchanged(t *testing.T) {
	t.Parallel()
	b, _ := openMachine(t)
	for _, s := range tricky {
		r := run(t, b, "cat <<'END'\n"+s+"\nEND")
		if got := string(r.Stdout); got != s+"\n" || r.ExitCode != 0 {
			t.Errorf("heredoc %q came back as %q (exit %d)", s, got, r.ExitCode)
		}
	}
	// And as shell words: each string single-quoted, printed back.
	var script strings.Builder
	script.WriteString("printf '%s\\0'")
	for _, s := range tricky {
		script.WriteString(" '" + strings.ReplaceAll(s, "'", `'\''`) + "'")
	}
	if got := strings.Split(sh(t, b, script.String()), "\x00"); !slices.Equal(got[:len(got)-1], tricky) {
		t.Errorf("printf of quoted words gave %q", got)
	}
}

func TestExecBinaryOutput(t *testing.T) {
	t.Parallel()
	b, _ := openMachine(t)
	r := run(t, b, `printf 'a\000b\377'; printf 'e\000' >&2`)
	if !bytes.Equal(r.Stdout, []byte("a\x00b\xff")) || !bytes.Equal(r.Stderr, []byte("e\x00")) {
		t.Errorf("stdout %q, stderr %q", r.Stdout, r.Stderr)
	}
	r = run(t, b, "true")
	if r.Stdout == nil || r.Stderr == nil || len(r.Stdout) != 0 || len(r.Stderr) != 0 {
		t.Errorf("empty output: stdout %#v, stderr %#v", r.Stdout, r.Stderr)
	}
}

func TestExecLargeOutputOnBothStreams(t *testing.T) {
	t.Parallel()
	b, _ := openMachine(t)
	const size = 64 << 20
	// As root: /dev/stderr reopens the stderr pipe, which smolvm's side
	// created as root with mode 0600, so node may not open it.
	r := run(t, b, "head -c 67108864 /dev/zero | tee /dev/stderr", WithUser("root"))
	if len(r.Stdout) != size || len(r.Stderr) != size || r.ExitCode != 0 {
		t.Fatalf("got %d bytes on stdout, %d on stderr, exit %d", len(r.Stdout), len(r.Stderr), r.ExitCode)
	}
	if !allZero(r.Stdout) || !allZero(r.Stderr) {
		t.Errorf("the output is not all zeros")
	}
}

func TestClaudeReceivesExactlyItsArgv(t *testing.T) {
	t.Parallel()
	b, _ := openMachine(t)
	ctx := context.Background()
	if code, err := b.ExecClaude(ctx, tricky, false); err != nil || code != 0 {
		t.Fatalf("ExecClaude: %d, %v", code, err)
	}
	if got := claudeArgv(t, b); !slices.Equal(got, tricky) {
		t.Errorf("claude got %q\nwant %q", got, tricky)
	}
	// One at a time too, so a quoting slip cannot hide between neighbours.
	for _, arg := range tricky {
		if _, err := b.ExecClaude(ctx, []string{arg}, false); err != nil {
			t.Fatalf("ExecClaude(%q): %v", arg, err)
		}
		if got := claudeArgv(t, b); !slices.Equal(got, []string{arg}) {
			t.Errorf("claude got %q, want [%q]", got, arg)
		}
	}
	if _, err := b.ExecClaude(ctx, nil, false); err != nil {
		t.Fatalf("ExecClaude(nil): %v", err)
	}
	if got := claudeArgv(t, b); len(got) != 0 {
		t.Errorf("no arguments: claude got %q", got)
	}
}

func TestClaudeRunsAsNode(t *testing.T) {
	t.Parallel()
	b, _ := openMachine(t)
	ctx := context.Background()
	if _, err := b.ExecClaude(ctx, []string{"-p", "hello"}, false); err != nil {
		t.Fatal(err)
	}
	if got := sh(t, b, "cat ~/.claude-standin/run"); got != "node\n/home/node\nnotty\n" {
		t.Errorf("claude ran as %q", got)
	}
}

// tty true gives claude a guest terminal: through the CLI smolvm's -t, at
// an endpoint serve's interactive route. Either way claude runs and gets
// exactly its argv.
func TestClaudeOnATerminalReceivesExactlyItsArgv(t *testing.T) {
	t.Parallel()
	b, _ := openMachine(t)
	ctx := context.Background()
	if code, err := b.ExecClaude(ctx, []string{"a b", "'"}, true); err != nil || code != 0 {
		t.Fatalf("ExecClaude: %d, %v", code, err)
	}
	if got, want := claudeArgv(t, b), []string{"a b", "'"}; !slices.Equal(got, want) {
		t.Errorf("claude got %q, want %q", got, want)
	}
	// serve's route runs claude on a guest terminal. (The stand-in CLI's -t
	// allocates none: claude's stdin is this test's.)
	if atEndpoint(t) {
		if got := sh(t, b, "cat ~/.claude-standin/run"); got != "node\n/home/node\ntty\n" {
			t.Errorf("claude ran as %q", got)
		}
	}
	if code, err := b.ExecClaude(ctx, tricky, true); err != nil || code != 0 {
		t.Fatalf("ExecClaude: %d, %v", code, err)
	}
	if got := claudeArgv(t, b); !slices.Equal(got, tricky) {
		t.Errorf("claude got %q\nwant %q", got, tricky)
	}
	run(t, b, "echo 3 > /tmp/claude-exit", WithUser("root"))
	if code, err := b.ExecClaude(ctx, nil, true); err != nil || code != 3 {
		t.Fatalf("ExecClaude: %d, %v, want exit 3", code, err)
	}
	if got := claudeArgv(t, b); len(got) != 0 {
		t.Errorf("no arguments: claude got %q", got)
	}
}

func TestClaudeGetsThePromptPathFirst(t *testing.T) {
	t.Parallel()
	b, _ := openMachine(t, WithPromptPath("/home/node/my prompt's.md"))
	if _, err := b.ExecClaude(context.Background(), []string{"--resume", "x"}, false); err != nil {
		t.Fatal(err)
	}
	want := []string{"--append-system-prompt-file", "/home/node/my prompt's.md", "--resume", "x"}
	if got := claudeArgv(t, b); !slices.Equal(got, want) {
		t.Errorf("claude got %q, want %q", got, want)
	}
}

func TestClaudeExitStatusIsReturned(t *testing.T) {
	t.Parallel()
	b, _ := openMachine(t)
	for _, code := range []int{0, 1, 7, 255} {
		run(t, b, fmt.Sprintf("echo %d > /tmp/claude-exit", code), WithUser("root"))
		got, err := b.ExecClaude(context.Background(), []string{"x"}, false)
		if err != nil || got != code {
			t.Errorf("claude exiting %d: got %d, %v", code, got, err)
		}
	}
}

func TestCopyIn(t *testing.T) {
	t.Parallel()
	b, _ := openMachine(t)
	ctx := context.Background()
	// A ':' would make smolvm's cp read a machine name, and a leading '-'
	// an option, were the path ever given to smolvm.
	dir := filepath.Join(t.TempDir(), "-dir:with colon")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	host := filepath.Join(dir, "vm:file 'x'")
	content := []byte("copied\x00bytes\xff\n")
	if err := os.WriteFile(host, content, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := b.CopyIn(ctx, host, "/home/node/in.bin"); err != nil {
		t.Fatalf("CopyIn: %v", err)
	}
	r := run(t, b, "cat /home/node/in.bin")
	if !bytes.Equal(r.Stdout, content) {
		t.Errorf("the guest read %q, want %q", r.Stdout, content)
	}
	if got := sh(t, b, "stat -c '%U %a' /home/node/in.bin"); got != "root 644\n" {
		t.Errorf("owner and mode: %q", got)
	}

	// smolvm creates missing guest directories, but not under a file. At
	// an endpoint the library makes them itself, and says so.
	failedWrite := "write file"
	if atEndpoint(t) {
		failedWrite = "putting the file in place failed"
	}
	wantErr(t, b.CopyIn(ctx, host, "/etc/passwd/x"), ErrSmolvm, failedWrite)
	// What is neither a regular file nor a directory, and a directory
	// holding one, are refused before anything is copied.
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	wantErr(t, b.CopyIn(ctx, fifo, "/tmp/x"), ErrInvalidArgument, "host_path")
	wantErr(t, b.CopyIn(ctx, filepath.Dir(fifo), "/tmp/d"), ErrInvalidArgument, "")
	// At an endpoint, the listing's own command is spooled in
	// /tmp/.bottle-call-* while it runs.
	var left []string
	for _, f := range strings.Fields(sh(t, b, "ls -A /tmp")) {
		if !atEndpoint(t) || !strings.HasPrefix(f, ".bottle-call-") {
			left = append(left, f)
		}
	}
	if len(left) != 0 {
		t.Errorf("refused copies left %q in the guest", left)
	}
	wantErr(t, b.CopyIn(ctx, host, "tmp/x"), ErrInvalidArgument, "guest_path")
	wantErr(t, b.CopyIn(ctx, host, "/tmp/a:b"), ErrInvalidArgument, "guest_path")
	wantErr(t, b.CopyIn(ctx, filepath.Join(dir, "missing"), "/tmp/x"), ErrIO, "host_path")
}
