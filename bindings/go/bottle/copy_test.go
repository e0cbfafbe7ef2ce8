package bottle

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestCopyOut(t *testing.T) {
	t.Parallel()
	b, _ := openMachine(t)
	ctx := context.Background()
	dir := t.TempDir()
	// A ':' and a leading '-' that smolvm would misread, were it given
	// the path.
	host := filepath.Join(dir, "-out:file 'x'")
	run(t, b, `printf 'a\000b\377' > /tmp/out.bin`, WithUser("root"))
	if err := b.CopyOut(ctx, "/tmp/out.bin", host); err != nil {
		t.Fatalf("CopyOut: %v", err)
	}
	if got, _ := os.ReadFile(host); !bytes.Equal(got, []byte("a\x00b\xff")) {
		t.Errorf("copied out %q", got)
	}

	// A round trip of 1 MiB.
	content := make([]byte, 1<<20)
	for i := range content {
		content[i] = byte(i * 7)
	}
	in, back := filepath.Join(dir, "in"), filepath.Join(dir, "back")
	if err := os.WriteFile(in, content, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := b.CopyIn(ctx, in, "/tmp/round"); err != nil {
		t.Fatal(err)
	}
	if err := b.CopyOut(ctx, "/tmp/round", back); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(back); !bytes.Equal(got, content) {
		t.Errorf("the round trip changed the %d bytes", len(content))
	}

	// A failed copy leaves the host file as it was, and no temporary file.
	if err := os.WriteFile(host, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	wantErr(t, b.CopyOut(ctx, "/tmp/missing", host), ErrSmolvm, "")
	if got, _ := os.ReadFile(host); string(got) != "keep" {
		t.Errorf("the failed copy left %q", got)
	}
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{"-out:file 'x'", "back", "in"}) {
		t.Errorf("the host directory holds %q", names)
	}

	wantErr(t, b.CopyOut(ctx, "tmp/out.bin", host), ErrInvalidArgument, "guest_path: ")
	wantErr(t, b.CopyOut(ctx, "/tmp/out.bin", "/no/such/dir/x"), ErrIO, "")
}

// A tree given to node: every directory and file is node's, so the agent
// can change it, and progress counts every file.
func TestCopyInDirectoryForNode(t *testing.T) {
	t.Parallel()
	b, _ := openMachine(t)
	tree := t.TempDir()
	files := map[string]string{
		"a.txt":        "a",
		"sub/b.bin":    string(bytes.Repeat([]byte{0, 0xff}, 500)),
		"sub/deeper/c": "c",
	}
	var total int64
	for path, content := range files {
		host := filepath.Join(tree, path)
		if err := os.MkdirAll(filepath.Dir(host), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(host, []byte(content), 0o640); err != nil {
			t.Fatal(err)
		}
		total += int64(len(content))
	}
	if err := os.Mkdir(filepath.Join(tree, "empty"), 0o755); err != nil {
		t.Fatal(err)
	}

	var reports []Progress
	err := b.CopyIn(context.Background(), tree, "/home/node/project",
		WithOwnerUser("node"), WithProgress(func(p Progress) { reports = append(reports, p) }))
	if err != nil {
		t.Fatalf("CopyIn of a directory: %v", err)
	}
	for path, content := range files {
		if got := run(t, b, "cat /home/node/project/"+path).Stdout; string(got) != content {
			t.Errorf("%s: the guest read %q", path, got)
		}
	}
	if got := sh(t, b, "test -d /home/node/project/empty && find /home/node/project ! -user node | wc -l; stat -c %a /home/node/project/a.txt"); got != "0\n640\n" {
		t.Errorf("owners and mode: %q", got)
	}
	r := run(t, b, "touch /home/node/project/sub/deeper/new && echo changed > /home/node/project/a.txt")
	if r.ExitCode != 0 {
		t.Errorf("node cannot write into the tree: %s", r.Stderr)
	}

	n := int64(len(files))
	if len(reports) != len(files)+1 ||
		reports[0] != (Progress{FilesDone: 0, FilesTotal: n, BytesDone: 0, BytesTotal: total}) ||
		reports[len(reports)-1] != (Progress{FilesDone: n, FilesTotal: n, BytesDone: total, BytesTotal: total}) {
		t.Errorf("progress: %+v", reports)
	}
}

func TestCopyInModeAndOwnerIDs(t *testing.T) {
	t.Parallel()
	b, _ := openMachine(t)
	ctx := context.Background()
	host := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(host, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		opts []CopyOption
		want string
	}{
		{nil, "644 0:0"},
		{[]CopyOption{WithMode(0o600)}, "600 0:0"},
		{[]CopyOption{WithMode(fs.ModeSetgid | 0o750)}, "2750 0:0"},
		{[]CopyOption{WithOwner(1000, 1000)}, "644 1000:1000"},
		{[]CopyOption{WithOwnerUser("node"), WithOwner(1, 2)}, "644 1:2"},
		{[]CopyOption{WithOwner(1, 2), WithOwnerUser("node")}, "644 1000:1000"},
	} {
		if err := b.CopyIn(ctx, host, "/tmp/f", c.opts...); err != nil {
			t.Fatalf("CopyIn for %q: %v", c.want, err)
		}
		if got := string(run(t, b, "stat -c '%a %u:%g' /tmp/f; rm /tmp/f", WithUser("root")).Stdout); got != c.want+"\n" {
			t.Errorf("got %q, want %q", got, c.want)
		}
	}

	// A panic in the progress function goes on after the copy.
	func() {
		defer func() {
			if p := recover(); p != "progress panic" {
				t.Errorf("recovered %v", p)
			}
		}()
		b.CopyIn(ctx, host, "/tmp/p", WithProgress(func(Progress) { panic("progress panic") }))
		t.Error("CopyIn did not panic")
	}()
	if got := sh(t, b, "cat /tmp/p"); got != "x" {
		t.Errorf("the copy during the panic: %q", got)
	}
}
