package bottle

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// A program of its own, in a directory outside this repository, that
// depends on this module the way README.md tells users to: a require and a
// replace directive pointing at a checkout.
const outsideGoMod = `module example.com/agentctl

go 1.22

require github.com/libbottle/libbottle/bindings/go/bottle v0.0.0

replace github.com/libbottle/libbottle/bindings/go/bottle => %s
`

const outsideMain = `package main

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/libbottle/libbottle/bindings/go/bottle"
)

func main() {
	b, err := bottle.Open(os.Args[1])
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close()
	r, err := b.Exec(context.Background(), "echo hello from $(id -un)")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("exit %d: %s", r.ExitCode, r.Stdout)
}
`

// outsideModule writes that program into a new temporary directory and
// returns it.
func outsideModule(t *testing.T) string {
	t.Helper()
	here, err := os.Getwd() // go test runs in the package's directory, the module root
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if strings.HasPrefix(dir, filepath.Dir(filepath.Dir(filepath.Dir(here)))) {
		t.Fatalf("the temporary directory %s is inside the repository", dir)
	}
	gomod := strings.Replace(outsideGoMod, "%s", here, 1)
	for name, text := range map[string]string{"go.mod": gomod, "main.go": outsideMain} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// goCommand is the go tool that runs this test, in dir, without a
// workspace that could resolve the module some other way.
func goCommand(dir string, env []string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), append([]string{"GOWORK=off", "GOFLAGS=-mod=mod"}, env...)...)
	return cmd
}

func TestProgramOutsideTheRepositoryBuildsAndRuns(t *testing.T) {
	t.Parallel()
	machine := newMachine(t)
	dir := outsideModule(t)
	bin := filepath.Join(dir, "agentctl")
	if out, err := goCommand(dir, nil, "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build outside the repository: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, machine).CombinedOutput()
	if err != nil {
		t.Fatalf("the program failed: %v\n%s", err, out)
	}
	if string(out) != "exit 0: hello from node\n" {
		t.Errorf("the program printed %q", out)
	}
}

func TestBuildWithoutCgoSaysWhy(t *testing.T) {
	t.Parallel()
	dir := outsideModule(t)
	out, err := goCommand(dir, []string{"CGO_ENABLED=0"}, "build", "-o", os.DevNull, ".").CombinedOutput()
	if err == nil {
		t.Fatal("a build with CGO_ENABLED=0 succeeded")
	}
	if !strings.Contains(string(out), "bottle_needs_cgo_and_libbottle__build_with_CGO_ENABLED_1") {
		t.Errorf("the failure does not name cgo:\n%s", out)
	}
	if strings.Contains(string(out), "undefined: bottle.") {
		t.Errorf("the failure still shows the package's missing symbols:\n%s", out)
	}
}
