package bottle

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// slowSmolvm points BOTTLE_SMOLVM, for this test, at a smolvm that answers
// `machine status` with a running machine and sleeps on everything else,
// its command line marked with a name unique to the test.
func slowSmolvm(t *testing.T) (marker string) {
	t.Helper()
	marker = fmt.Sprintf("slow-smolvm-%d-%d", os.Getpid(), machines.Add(1))
	path := filepath.Join(t.TempDir(), marker)
	script := "#!/bin/sh\n" +
		"case \"$2\" in\n" +
		"status) echo '{\"name\":\"m\",\"state\":\"running\",\"labels\":{}}'; exit 0;;\n" +
		"ls) sleep 60; echo '[]'; exit 0;;\n" +
		"esac\n" +
		"exec sleep 60\n"
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("BOTTLE_SMOLVM", path)
	return marker
}

// stopsWithin runs op under a ctx that ends after 300 ms and checks that
// it returns that ctx's error promptly and leaves no smolvm running.
func stopsWithin(t *testing.T, marker, what string, op func(ctx context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	started := time.Now()
	err := op(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("%s: got %v, want context.DeadlineExceeded", what, err)
	}
	if took := time.Since(started); took > 10*time.Second {
		t.Errorf("%s returned %v after a 300 ms deadline", what, took)
	}
	if left := processesWith(marker); len(left) > 0 {
		t.Errorf("%s left smolvm running: %q", what, left)
	}
}

// A ctx that ends stops every blocking call, not only Exec: smolvm is
// stopped and reaped, and the call returns the ctx's error.
func TestCtxStopsEveryOperation(t *testing.T) {
	marker := slowSmolvm(t)
	b, err := Open("m")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	host := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(host, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	stopsWithin(t, marker, "CopyIn", func(ctx context.Context) error {
		return b.CopyIn(ctx, host, "/tmp/file")
	})
	stopsWithin(t, marker, "CopyOut", func(ctx context.Context) error {
		return b.CopyOut(ctx, "/tmp/file", filepath.Join(t.TempDir(), "out"))
	})
	stopsWithin(t, marker, "ExecClaude", func(ctx context.Context) error {
		_, err := b.ExecClaude(ctx, []string{"-p", "hi"}, false)
		return err
	})
	stopsWithin(t, marker, "Launch", func(ctx context.Context) error {
		launched, err := Launch(ctx)
		if err == nil {
			launched.Close()
		}
		return err
	})
	stopsWithin(t, marker, "Reap", func(ctx context.Context) error {
		_, err := Reap(ctx)
		return err
	})
	if _, err := os.Stat(filepath.Join(filepath.Dir(host), "out")); err == nil {
		t.Error("a stopped CopyOut left a file behind")
	}
}
