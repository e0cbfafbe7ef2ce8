package bottle

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The tests run against the stand-in smolvm (tests/smolvm-standin), which
// runs each machine's commands for real in a chroot with a node user and a
// recording claude. They fail, never skip, when it is not there.
//
// With BOTTLE_TEST_ENDPOINT set to a smolvm serve's URL (tests/with-serve
// sets it, and BOTTLE_TEST_TLS_DIR, holding ca.pem, client.pem and
// client.key, for an https:// one), the bottles they open and launch are
// opened and launched at that endpoint instead, while the machines are
// still made and checked with the CLI, whose machines serve shares. The
// few tests that need an endpoint skip, saying so, without one.

// TestMain runs the tests, or, as the child of
// TestReapAtDeletesOnlyMachinesOfDeadOwners, launches a machine and exits.
func TestMain(m *testing.M) {
	if os.Getenv("BOTTLE_TEST_LAUNCH_AND_EXIT") != "" {
		launchAndExit()
	}
	os.Exit(m.Run())
}

// standin returns the stand-in smolvm's path, or fails the test with the
// reason the tests cannot run here.
func standin(t *testing.T) string {
	t.Helper()
	path := os.Getenv("BOTTLE_SMOLVM")
	if path == "" {
		t.Fatal("BOTTLE_SMOLVM is not set: run `make test-go` from the repository root, " +
			"or set it to the stand-in smolvm, target/debug/smolvm-standin")
	}
	if os.Getenv("SMOLVM_STANDIN_HOME") == "" {
		t.Fatal("SMOLVM_STANDIN_HOME is not set: the stand-in smolvm keeps its machines there " +
			"(make test-go sets it to target/standin-home)")
	}
	if fi, err := os.Stat(path); err != nil || !fi.Mode().IsRegular() {
		t.Fatalf("the stand-in smolvm %s is missing (%v): build it with `cargo build -p smolvm-standin`",
			path, err)
	}
	if os.Geteuid() != 0 {
		t.Fatal("the stand-in smolvm needs root (mount namespaces and chroot); " +
			"these tests cannot run as a normal user")
	}
	return path
}

// runSmolvm runs the smolvm under test directly, for setup and checks the
// package does not do. The real smolvm can fail at once with "database is
// locked" when several smolvms change its machine database together (the
// library waits that out too): tried again then.
func runSmolvm(t *testing.T, args ...string) ([]byte, error) {
	t.Helper()
	pause := 10 * time.Millisecond
	for {
		out, err := exec.Command(standin(t), args...).CombinedOutput()
		if err == nil || !bytes.Contains(out, []byte("database is locked")) || pause > 2*time.Second {
			return out, err
		}
		time.Sleep(pause)
		pause *= 2
	}
}

// smolvm runs the smolvm under test directly and fails the test if it fails.
func smolvm(t *testing.T, args ...string) {
	t.Helper()
	if out, err := runSmolvm(t, args...); err != nil {
		t.Fatalf("smolvm %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// The endpoint under test, made once from the environment: nil, the CLI,
// when BOTTLE_TEST_ENDPOINT is not set.
var (
	endpointOnce sync.Once
	endpointUsed *Endpoint
	endpointErr  error
)

// envEndpoint makes the endpoint BOTTLE_TEST_ENDPOINT and
// BOTTLE_TEST_TLS_DIR name, or returns nil without one.
func envEndpoint() (*Endpoint, error) {
	url := os.Getenv("BOTTLE_TEST_ENDPOINT")
	if url == "" {
		return nil, nil
	}
	var opts []EndpointOption
	if dir := os.Getenv("BOTTLE_TEST_TLS_DIR"); dir != "" {
		opts = append(opts, WithTLS(filepath.Join(dir, "ca.pem"), filepath.Join(dir, "client.pem"),
			filepath.Join(dir, "client.key")))
	}
	ep, err := NewEndpoint(url, opts...)
	if err != nil {
		return nil, fmt.Errorf("BOTTLE_TEST_ENDPOINT=%s (BOTTLE_TEST_TLS_DIR=%q): %w",
			url, os.Getenv("BOTTLE_TEST_TLS_DIR"), err)
	}
	return ep, nil
}

// testEndpoint is the endpoint the tests open and launch their bottles
// at, shared by the whole run and never closed, or nil for the CLI. It
// fails the test if BOTTLE_TEST_ENDPOINT names no usable endpoint.
func testEndpoint(t testing.TB) *Endpoint {
	t.Helper()
	endpointOnce.Do(func() { endpointUsed, endpointErr = envEndpoint() })
	if endpointErr != nil {
		t.Fatal(endpointErr)
	}
	return endpointUsed
}

// atEndpoint tells whether the tests run at an endpoint.
func atEndpoint(t testing.TB) bool {
	t.Helper()
	return testEndpoint(t) != nil
}

// needEndpoint skips a test that can only run at an endpoint, saying so.
func needEndpoint(t *testing.T) *Endpoint {
	t.Helper()
	ep := testEndpoint(t)
	if ep == nil {
		t.Skip("SKIPPED, needs a smolvm serve: set BOTTLE_TEST_ENDPOINT (and BOTTLE_TEST_TLS_DIR for https), " +
			"or run the tests under tests/with-serve")
	}
	return ep
}

// open is Open at the endpoint under test (through the CLI without one);
// opts come after it, so a test's own WithEndpoint wins.
func open(t *testing.T, machine string, opts ...Option) (*Bottle, error) {
	t.Helper()
	return Open(machine, append([]Option{WithEndpoint(testEndpoint(t))}, opts...)...)
}

// launchOpts puts the endpoint under test before opts, for Launch and
// WithBottle.
func launchOpts(t *testing.T, opts ...LaunchOption) []LaunchOption {
	t.Helper()
	return append([]LaunchOption{WithEndpoint(testEndpoint(t))}, opts...)
}

// notFound is how smolvm says it has no machine name: the CLI's words, or
// serve's.
func notFound(t *testing.T, name string) string {
	t.Helper()
	if atEndpoint(t) {
		return fmt.Sprintf("machine '%s' not found", name)
	}
	return "vm not found: " + name
}

// serveRecords lists the files in which Launch at an endpoint records
// machine for ReapAt: under $XDG_STATE_HOME/libbottle/serve, else
// ~/.local/state/libbottle/serve, one per endpoint, named after it.
func serveRecords(t *testing.T, machine string) []string {
	t.Helper()
	state := os.Getenv("XDG_STATE_HOME")
	if state == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			t.Fatal(err)
		}
		state = filepath.Join(home, ".local", "state")
	}
	found, err := filepath.Glob(filepath.Join(state, "libbottle", "serve", machine+"@*.json"))
	if err != nil {
		t.Fatal(err)
	}
	return found
}

var machines atomic.Int64

// newMachine creates and starts a stand-in machine with a unique name,
// deleted when the test ends.
func newMachine(t *testing.T) string {
	t.Helper()
	name := fmt.Sprintf("go-%d-%d", os.Getpid(), machines.Add(1))
	smolvm(t, "machine", "create", "--name", name)
	t.Cleanup(func() {
		out, err := runSmolvm(t, "machine", "delete", "--name", name, "-f")
		if err != nil {
			t.Errorf("delete machine %s: %v\n%s", name, err, out)
		}
	})
	smolvm(t, "machine", "start", "--name", name)
	return name
}

// openMachine opens a Bottle on a new running machine, at the endpoint
// under test if there is one, closed when the test ends (before the
// machine is deleted).
func openMachine(t *testing.T, opts ...Option) (*Bottle, string) {
	t.Helper()
	name := newMachine(t)
	b, err := open(t, name, opts...)
	if err != nil {
		t.Fatalf("Open(%q): %v", name, err)
	}
	t.Cleanup(func() { b.Close() })
	return b, name
}

// run is Exec that must succeed.
func run(t *testing.T, b *Bottle, script string, opts ...ExecOption) *ExecResult {
	t.Helper()
	r, err := b.Exec(context.Background(), script, opts...)
	if err != nil {
		t.Fatalf("Exec(%q): %v", script, err)
	}
	return r
}

// sh runs script as node, asserts exit 0 and returns its stdout.
func sh(t *testing.T, b *Bottle, script string) string {
	t.Helper()
	r := run(t, b, script)
	if r.ExitCode != 0 {
		t.Fatalf("Exec(%q): exit %d, stderr %q", script, r.ExitCode, r.Stderr)
	}
	return string(r.Stdout)
}

// claudeArgv is the argv the claude stand-in last recorded.
func claudeArgv(t *testing.T, b *Bottle) []string {
	t.Helper()
	out := sh(t, b, "cat ~/.claude-standin/argv")
	args := strings.Split(out, "\x00")
	if args[len(args)-1] != "" {
		t.Fatalf("argv file does not end with a NUL: %q", out)
	}
	return args[:len(args)-1]
}

// wantErr asserts that err is an *Error matching sentinel whose message
// contains needle.
func wantErr(t *testing.T, err, sentinel error, needle string) {
	t.Helper()
	var e *Error
	switch {
	case err == nil:
		t.Fatalf("no error; want %v containing %q", sentinel, needle)
	case !errors.Is(err, sentinel):
		t.Fatalf("error %v is not %v", err, sentinel)
	case !errors.As(err, &e):
		t.Fatalf("error %v (%T) is not an *Error", err, err)
	case !strings.Contains(e.Message, needle):
		t.Fatalf("error %v does not contain %q", err, needle)
	}
}

// machineStatus is `smolvm machine status --json` of name, or nil if
// smolvm does not know the machine.
func machineStatus(t *testing.T, name string) map[string]any {
	t.Helper()
	var out []byte
	var err error
	for pause := 10 * time.Millisecond; ; pause *= 2 {
		out, err = exec.Command(standin(t), "machine", "status", "--name", name, "--json").Output()
		var failed *exec.ExitError
		locked := errors.As(err, &failed) && bytes.Contains(failed.Stderr, []byte("database is locked"))
		if !locked || pause > 2*time.Second {
			break
		}
		time.Sleep(pause)
	}
	if err != nil {
		return nil
	}
	var st map[string]any
	if err := json.Unmarshal(out, &st); err != nil {
		t.Fatalf("machine status of %s: %v\n%s", name, err, out)
	}
	return st
}

// processesWith lists the processes whose command line, with its
// arguments each preceded and followed by a NUL, contains needle.
func processesWith(needle string) []string {
	var found []string
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		cmdline, err := os.ReadFile(filepath.Join("/proc", d.Name(), "cmdline"))
		if err == nil && bytes.Contains(append([]byte{0}, cmdline...), []byte(needle)) {
			found = append(found, d.Name()+": "+strings.ReplaceAll(string(cmdline), "\x00", " "))
		}
	}
	return found
}

// noSmolvmFor fails the test if a process has machine as one of its
// arguments: a smolvm left running for it. (Whole arguments, so that
// go-1-1 does not match go-1-10.) At an endpoint, serve's guest of the
// machine (the stand-in's `_api-guest --name NAME`, kept across requests
// while the machine runs, as a VM would be) is the machine itself, not
// one of them.
func noSmolvmFor(t *testing.T, machine string) {
	t.Helper()
	var left []string
	for _, p := range processesWith("\x00" + machine + "\x00") {
		if !strings.Contains(p, " _api-guest ") {
			left = append(left, p)
		}
	}
	if len(left) > 0 {
		t.Errorf("processes left behind: %q", left)
	}
}

// tricky breaks naive quoting: spaces, both quotes, $, backticks,
// newlines, globs, backslashes, non-ASCII text, empty strings, leading
// dashes. The Rust and C tests read the same file,
// tests/data/tricky-strings.txt (its README says the format).
var tricky = loadTricky()

// loadTricky reads the tricky strings from the tests/data folder of the
// tree this package is in, found by looking up from the package's folder,
// or from the folder $BOTTLE_TEST_DATA names.
func loadTricky() []string {
	dir := os.Getenv("BOTTLE_TEST_DATA")
	if dir == "" {
		for up, _ := filepath.Abs("."); ; up = filepath.Dir(up) {
			candidate := filepath.Join(up, "tests", "data")
			if _, err := os.Stat(filepath.Join(candidate, "tricky-strings.txt")); err == nil {
				dir = candidate
				break
			}
			if up == filepath.Dir(up) {
				panic("tests/data/tricky-strings.txt not found above " + up + "; set BOTTLE_TEST_DATA")
			}
		}
	}
	text, err := os.ReadFile(filepath.Join(dir, "tricky-strings.txt"))
	if err != nil {
		panic(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(text), "\n"), "\n")
	for i, line := range lines {
		lines[i] = unescapeTricky(line)
	}
	return lines
}

// unescapeTricky undoes the file's four escapes: \\, \n, \t and \xHH.
func unescapeTricky(line string) string {
	var b strings.Builder
	for i := 0; i < len(line); i++ {
		if line[i] != '\\' {
			b.WriteByte(line[i])
			continue
		}
		i++
		switch line[i] {
		case 'n':
			b.WriteByte('\n')
		case 't':
			b.WriteByte('\t')
		case 'x':
			n, err := strconv.ParseUint(line[i+1:i+3], 16, 8)
			if err != nil {
				panic(err)
			}
			b.WriteByte(byte(n))
			i += 2
		default:
			b.WriteByte(line[i])
		}
	}
	return b.String()
}

func allZero(p []byte) bool {
	return len(bytes.Trim(p, "\x00")) == 0
}
