package bottle_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"time"

	bottle "github.com/libbottle/libbottle/bindings/go"
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
