package bottle

import (
	"context"
	"errors"
	"testing"
)

// What the binding adds to each call, for BENCHMARKS.md. These need
// BOTTLE_SMOLVM to name bench/null-smolvm, a smolvm that runs nothing and
// answers for any machine; scripts/bench.sh builds it, runs
//
//	go test -run '^$' -bench . -benchtime 2000x
//
// and sets each result against the same call made from C by bench/bench.c.

// benchBottle opens a Bottle on the machine null-smolvm pretends to have.
func benchBottle(b *testing.B) *Bottle {
	b.Helper()
	bt, err := Open("bench")
	if err != nil {
		b.Fatalf("Open: %v", err)
	}
	b.Cleanup(func() { bt.Close() })
	return bt
}

// benchExec runs an exec with no output ("0 0" are the output sizes
// null-smolvm is asked for) b.N times under ctx.
func benchExec(ctx context.Context, b *testing.B) {
	bt := benchBottle(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r, err := bt.Exec(ctx, "0 0")
		if err != nil || r.ExitCode != 0 || len(r.Stdout)+len(r.Stderr) != 0 {
			b.Fatalf("Exec: %v, %+v", err, r)
		}
	}
}

// BenchmarkExec is one exec with a context that can never be done.
func BenchmarkExec(b *testing.B) {
	benchExec(context.Background(), b)
}

// BenchmarkExecCancellable adds what a cancellable context costs: the call
// is watched, to be stopped when the context ends.
func BenchmarkExecCancellable(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	benchExec(ctx, b)
}

// BenchmarkExecRejected is a call refused before anything starts: the
// binding's fixed cost plus the library's.
func BenchmarkExecRejected(b *testing.B) {
	bt := benchBottle(b)
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := bt.Exec(ctx, "0 0", WithUser("-bad")); !errors.Is(err, ErrInvalidArgument) {
			b.Fatalf("Exec: %v", err)
		}
	}
}
