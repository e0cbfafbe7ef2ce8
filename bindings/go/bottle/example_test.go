package bottle_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/libbottle/libbottle/bindings/go/bottle"
)

// Runs a script in the machine "agent-1" (started beforehand with
// `smolvm machine start --name agent-1`), then claude on this terminal.
func Example() {
	b, err := bottle.Open("agent-1", bottle.WithPromptPath("/home/node/prompt.md"))
	if err != nil {
		log.Fatal(err) // a bad name, or smolvm not found
	}
	defer b.Close()

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r, err := b.Exec(ctx, "echo hello from $(id -un)")
	switch {
	case errors.Is(err, bottle.ErrSmolvm):
		log.Fatalf("is the machine running? %v", err)
	case err != nil:
		log.Fatal(err)
	}
	fmt.Printf("exit %d: %s", r.ExitCode, r.Stdout)

	if err := b.CopyIn(ctx, "task.md", "/home/node/task.md"); err != nil {
		log.Fatal(err)
	}
	// claude talks to this terminal; ask for a guest terminal only if stdin
	// is one. No timeout: the session lasts as long as the user wants.
	stdin, err := os.Stdin.Stat()
	tty := err == nil && stdin.Mode()&os.ModeCharDevice != 0
	code, err := b.ExecClaude(context.Background(), []string{"--resume", "task"}, tty)
	if err != nil {
		log.Fatal(err)
	}
	os.Exit(code)
}

// Launches a machine of its own for one task, streams the test run to this
// terminal, copies the result out, and tears the machine down whatever
// happens.
func ExampleWithBottle() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel() // ends a running Exec: smolvm and the script are stopped

	err := bottle.WithBottle(ctx, func(b *bottle.Bottle) error {
		// A directory, given to node so the agent can change it.
		if err := b.CopyIn(ctx, "task", "/home/node/task", bottle.WithOwnerUser("node")); err != nil {
			return err
		}
		r, err := b.Exec(ctx, "make test",
			bottle.WithWorkdir("/home/node/task"),
			bottle.WithSecretEnv("API_KEY", os.Getenv("API_KEY")),
			bottle.WithTimeout(10*time.Minute),
			bottle.WithStdout(os.Stdout), bottle.WithStderr(os.Stderr))
		if err != nil {
			return err // ErrTimeout, ctx.Err(), ErrSmolvm, ...
		}
		if r.ExitCode != 0 {
			return fmt.Errorf("make test: exit %d", r.ExitCode)
		}
		return b.CopyOut(ctx, "/home/node/task/report.txt", "report.txt")
	}, bottle.WithImage("agent:latest"), bottle.WithMemoryMiB(4096))
	if err != nil {
		log.Fatal(err) // fn's error, joined with the teardown's if that failed too
	}
}

// Opens the machine "agent-1" that a smolvm serve runs on another host,
// reached over mutual TLS, instead of through the local smolvm CLI, runs a
// script there, then claude on this terminal.
func ExampleNewEndpoint() {
	ep, err := bottle.NewEndpoint("https://serve.internal:8443",
		bottle.WithTLS("/etc/bottle/ca.pem", "/etc/bottle/client.pem", "/etc/bottle/client.key"))
	if err != nil {
		log.Fatal(err) // a bad URL, or TLS files that cannot be read
	}
	defer ep.Close() // bottles opened or launched at ep keep what they need

	b, err := bottle.Open("agent-1", bottle.WithEndpoint(ep))
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close()
	r, err := b.Exec(context.Background(), "echo hello from $(id -un)")
	if err != nil {
		log.Fatal(err) // ErrIO: serve unreachable; ErrSmolvm: machine unknown or stopped
	}
	fmt.Printf("exit %d: %s", r.ExitCode, r.Stdout)

	// claude on this terminal, through serve's interactive route, with
	// exactly these arguments (its stderr merged into stdout, as on any
	// terminal).
	code, err := b.ExecClaude(context.Background(), []string{"--resume", "task"}, true)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("claude exited with", code)
}
