package bottle

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// Endpoints that name no serve: making one contacts nothing.
const nowhereSocket = "unix:/nonexistent/smolvm.sock"

func TestNewEndpointRefusesBadURLs(t *testing.T) {
	t.Parallel()
	for _, url := range []string{
		"",
		"smolvm.sock",
		"/run/smolvm.sock",
		"unix:",
		"unix:relative.sock",
		"unix:/a\x00b.sock",
		"http://10.0.0.1:8080",
		"http://example.com:8080",
		"ftp://localhost:21",
	} {
		ep, err := NewEndpoint(url)
		wantErr(t, err, ErrInvalidArgument, "url: ")
		var e *Error
		if errors.As(err, &e) && e.Op != "endpoint" {
			t.Errorf("NewEndpoint(%q): Op %q", url, e.Op)
		}
		if ep != nil {
			t.Errorf("NewEndpoint(%q) returned an Endpoint with an error", url)
		}
	}
}

func TestNewEndpointTakesEachKindOfURL(t *testing.T) {
	t.Parallel()
	for _, url := range []string{
		"unix:/run/smolvm.sock",
		"unix:///run/smolvm.sock",
		"https://localhost:8443",
		"https://serve.example.com:8443",
		"http://127.0.0.1:8080",
		"http://localhost:8080",
	} {
		ep, err := NewEndpoint(url)
		if err != nil {
			t.Errorf("NewEndpoint(%q): %v", url, err)
			continue
		}
		if ep.URL() != url {
			t.Errorf("URL() = %q, want %q", ep.URL(), url)
		}
		if err := ep.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if err := ep.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
		if ep.URL() != url {
			t.Errorf("URL() after Close = %q", ep.URL())
		}
	}
}

func TestWithTLSOnlyOnHTTPS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pem")

	// Refused on any other endpoint, before its files are read.
	for _, url := range []string{"unix:/run/smolvm.sock", "http://127.0.0.1:8080"} {
		ep, err := NewEndpoint(url, WithTLS(missing, missing, missing))
		wantErr(t, err, ErrInvalidArgument, "ep: ")
		if !strings.Contains(err.Error(), "https://") {
			t.Errorf("%s: the refusal does not say TLS is for https://: %v", url, err)
		}
		if ep != nil {
			t.Errorf("%s: an Endpoint with an error", url)
		}
	}

	const https = "https://localhost:8443"
	for _, c := range []struct {
		ca, cert, key string
		err           error
		arg           string
	}{
		{missing, notPEM, notPEM, ErrIO, "ca_file"},
		{notPEM, notPEM, notPEM, ErrInvalidArgument, "ca_file: "},
		{"", notPEM, notPEM, ErrInvalidArgument, "ca_file: must not be empty"},
		{notPEM, "/a\x00b", notPEM, ErrInvalidArgument, "cert_file: "},
		{notPEM, notPEM, "/a\x00b", ErrInvalidArgument, "key_file: "},
	} {
		ep, err := NewEndpoint(https, WithTLS(c.ca, c.cert, c.key))
		wantErr(t, err, c.err, c.arg)
		if ep != nil {
			t.Errorf("%s: an Endpoint with an error", c.arg)
		}
	}
}

// An https:// endpoint without its certificates cannot be used, and
// says so before anything is contacted.
func TestHTTPSEndpointNeedsTLS(t *testing.T) {
	t.Parallel()
	ep, err := NewEndpoint("https://localhost:8443")
	if err != nil {
		t.Fatal(err)
	}
	defer ep.Close()
	const needle = "ep: https://localhost:8443: an https endpoint needs its certificates"
	b, err := Open("go-https-no-tls", WithEndpoint(ep))
	wantErr(t, err, ErrInvalidArgument, needle)
	if b != nil {
		t.Error("Open returned a Bottle with an error")
	}
	b, err = Launch(context.Background(), WithEndpoint(ep))
	wantErr(t, err, ErrInvalidArgument, needle)
	if b != nil {
		t.Error("Launch returned a Bottle with an error")
	}
	_, err = ReapAt(context.Background(), ep)
	wantErr(t, err, ErrInvalidArgument, needle)
}

func TestClosedEndpoint(t *testing.T) {
	t.Parallel()
	ep, err := NewEndpoint(nowhereSocket)
	if err != nil {
		t.Fatal(err)
	}
	// A bottle keeps what it needs of the endpoint.
	b, err := Open("go-closed-endpoint", WithEndpoint(ep))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := ep.Close(); err != nil {
		t.Fatal(err)
	}
	_, err = b.Exec(context.Background(), "true")
	wantErr(t, err, ErrIO, "smolvm serve at "+nowhereSocket)

	_, err = Open("go-closed-endpoint", WithEndpoint(ep))
	wantErr(t, err, ErrClosed, "ep: the endpoint is closed")
	wantErr(t, err, ErrInvalidArgument, "ep: ")
	_, err = Launch(context.Background(), WithEndpoint(ep))
	wantErr(t, err, ErrClosed, "ep: the endpoint is closed")
	var e *Error
	if errors.As(err, &e); e.Op != "launch" {
		t.Errorf("Launch: Op %q", e.Op)
	}
	names, err := ReapAt(context.Background(), ep)
	wantErr(t, err, ErrClosed, "ep: the endpoint is closed")
	if names != nil {
		t.Errorf("ReapAt with a closed endpoint: %q", names)
	}

	names, err = ReapAt(context.Background(), nil)
	wantErr(t, err, ErrInvalidArgument, "ep: ")
	if len(names) != 0 {
		t.Errorf("ReapAt(nil): %q", names)
	}
}

// Opens at one endpoint from many goroutines while it is closed: each
// gets a Bottle or ErrClosed, and the handle is freed once.
func TestEndpointCloseRacesWithOpens(t *testing.T) {
	t.Parallel()
	ep, err := NewEndpoint(nowhereSocket)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 4; j++ {
				b, err := Open("go-open-race", WithEndpoint(ep))
				switch {
				case errors.Is(err, ErrClosed):
				case err != nil:
					errs <- err
				default:
					b.Close()
				}
			}
		}()
	}
	ep.Close()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if ep.c != nil {
		t.Error("the handle was not freed")
	}
}

// Every byte value, NULs, CR LF and bytes that are not UTF-8 come back
// exactly, on both streams, through serve.
func TestOpenAtEndpointExecIsByteExact(t *testing.T) {
	t.Parallel()
	ep := needEndpoint(t)
	name := newMachine(t)
	b, err := Open(name, WithEndpoint(ep))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var all []byte
	for i := 0; i < 256; i++ {
		all = append(all, byte(i))
	}
	var script strings.Builder
	script.WriteString("printf '")
	for _, c := range all {
		fmt.Fprintf(&script, "\\%03o", c)
	}
	script.WriteString("'; printf 'e\\000\\r\\n\\377\\376' >&2; exit 3")
	r := run(t, b, script.String())
	if !bytes.Equal(r.Stdout, all) {
		t.Errorf("stdout: %q\nwant %q", r.Stdout, all)
	}
	if !bytes.Equal(r.Stderr, []byte("e\x00\r\n\xff\xfe")) || r.ExitCode != 3 {
		t.Errorf("stderr %q, exit %d", r.Stderr, r.ExitCode)
	}
}

func TestLaunchAtEndpointAndClose(t *testing.T) {
	t.Parallel()
	needEndpoint(t)
	// An endpoint of its own, closed as soon as Launch returns: the
	// bottle keeps what it needs.
	ep, err := envEndpoint()
	if err != nil {
		t.Fatal(err)
	}
	b, err := Launch(context.Background(), WithEndpoint(ep), WithMachineEnv("MODE", "at serve"))
	if err != nil {
		t.Fatalf("Launch: %v", err)
	}
	ep.Close()
	name := b.Name()
	if st := machineStatus(t, name); st == nil || st["state"] != "running" {
		t.Fatalf("the launched machine %s: %v", name, st)
	}
	if got := sh(t, b, `id -un; printf %s "$MODE"`); got != "node\nat serve" {
		t.Errorf("Exec in the launched machine: %q", got)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if machineStatus(t, name) != nil {
		t.Error("Close did not delete the machine")
	}
	if records := serveRecords(t, name); len(records) != 0 {
		t.Errorf("Close left records: %q", records)
	}
	if err := b.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestReapAtReturns(t *testing.T) {
	t.Parallel()
	ep := needEndpoint(t)
	if _, err := ReapAt(context.Background(), ep); err != nil {
		t.Fatalf("ReapAt: %v", err)
	}
}

// launchAndExit is the child of TestReapAtDeletesOnlyMachinesOfDeadOwners:
// it launches a machine at the endpoint under test, prints its name and
// exits without closing it.
func launchAndExit() {
	ep, err := envEndpoint()
	if err == nil && ep == nil {
		err = errors.New("BOTTLE_TEST_ENDPOINT is not set")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	b, err := Launch(context.Background(), WithEndpoint(ep))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	fmt.Print(b.Name())
	os.Exit(0)
}

// Not parallel: it points XDG_STATE_HOME, where the launches record their
// machines, at a directory of its own, so that it sees only its own
// records.
func TestReapAtDeletesOnlyMachinesOfDeadOwners(t *testing.T) {
	ep := needEndpoint(t)
	standin(t)
	t.Setenv("XDG_STATE_HOME", t.TempDir())

	child := exec.Command(os.Args[0], "-test.run=^$")
	child.Env = append(os.Environ(), "BOTTLE_TEST_LAUNCH_AND_EXIT=1")
	var stderr bytes.Buffer
	child.Stderr = &stderr
	out, err := child.Output()
	orphan := string(out)
	if err != nil || orphan == "" {
		t.Fatalf("the child that launches and exits: %v, %q\n%s", err, out, stderr.String())
	}
	t.Cleanup(func() {
		if machineStatus(t, orphan) != nil {
			smolvm(t, "machine", "delete", "--name", orphan, "-f")
		}
	})
	if machineStatus(t, orphan) == nil {
		t.Fatalf("the child's machine %s is not there", orphan)
	}
	foreign := newMachine(t)
	ours := launch(t)

	removed, err := ReapAt(context.Background(), ep)
	if err != nil {
		t.Fatalf("ReapAt: %v", err)
	}
	if !slices.Equal(removed, []string{orphan}) || machineStatus(t, orphan) != nil {
		t.Errorf("ReapAt removed %q; want only the orphan %s, which must be gone", removed, orphan)
	}
	for _, live := range []string{foreign, ours.Name()} {
		if machineStatus(t, live) == nil {
			t.Errorf("ReapAt removed %s, which is not an orphan", live)
		}
	}
	if records := serveRecords(t, orphan); len(records) != 0 {
		t.Errorf("ReapAt left the orphan's record: %q", records)
	}
	if removed, err := ReapAt(context.Background(), ep); err != nil || len(removed) != 0 {
		t.Errorf("a second ReapAt: %q, %v", removed, err)
	}
}
