#!/usr/bin/env bash
# Builds and runs libbottle's benchmarks and prints the tables that
# BENCHMARKS.md records. All but the last table run against
# bench/null-smolvm, a smolvm that runs nothing, so what is measured is the
# caller's own cost; the last goes through the real smolvm CLI.
#
# Knobs (environment): BENCH_CALLS (per-call samples, default 4000),
# BENCH_LARGE_MIB (default 256) and BENCH_LARGE_RUNS (default 7),
# BENCH_SCALING_CALLS (default 800), BENCH_GO_ROUNDS (default 5),
# BENCH_SPAWN_CALLS (default 1000) and BENCH_RESIDENT_MIB (default 2048),
# BENCH_REAL_CALLS (default 100, through the real smolvm CLI),
# BENCH_TRANSPORT_CALLS (default 200) and BENCH_TRANSPORT_SCALING (default
# 160, both transports against the stand-in).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
out=$root/build/bench
cc=${CC:-cc}

calls=${BENCH_CALLS:-4000}
large_mib=${BENCH_LARGE_MIB:-256}
large_runs=${BENCH_LARGE_RUNS:-7}
scaling_calls=${BENCH_SCALING_CALLS:-800}
go_rounds=${BENCH_GO_ROUNDS:-5}
spawn_calls=${BENCH_SPAWN_CALLS:-1000}
resident_mib=${BENCH_RESIDENT_MIB:-2048}

# The release library, its soname link and the pkg-config file cgo uses.
make --no-print-directory lib >/dev/null
mkdir -p "$out"
cflags=(-std=c11 -O2 -g -Wall -Wextra -Wpedantic -Werror)
"$cc" "${cflags[@]}" bench/null-smolvm.c -o "$out/null-smolvm"
"$cc" "${cflags[@]}" -Iinclude bench/bench.c -o "$out/bench" \
    -L"$root/target/release" -lbottle -lpthread -Wl,-rpath,"$root/target/release"

export BOTTLE_SMOLVM=$out/null-smolvm
export BENCH_VALUES=$out/values
: >"$BENCH_VALUES"
bench=$out/bench

# The median of the numbers on stdin, one per line.
median() {
    sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# The value recorded last under KEY in $BENCH_VALUES, or all of them.
values() { sed -n "s/^$1=//p" "$BENCH_VALUES"; }

echo "libbottle $(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)," \
    "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- src 2>/dev/null || echo ' + uncommitted src/ changes')"
echo "$(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)," \
    "$(free -h | awk '/^Mem:/ { print $2 }') RAM, Linux $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo

echo "## bottle_exec against the floor"
echo
echo "| measure | library | floor | library/floor | target | |"
echo "| --- | --- | --- | --- | --- | --- |"
"$bench" percall "$calls"
"$bench" large "$large_mib" "$large_runs"
echo

echo "## Starting smolvm from a large caller (median per call, no output)"
echo
echo "| caller holds | how smolvm is started | per call | against the floor |"
echo "| --- | --- | --- | --- |"
"$bench" spawn "$spawn_calls" 0
"$bench" spawn "$spawn_calls" "$resident_mib"
echo

echo "## Concurrent execs on one bottle ($scaling_calls calls in all)"
echo
echo "| threads | library wall | library calls/s | speed-up | floor wall | floor calls/s | speed-up | library/floor |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
"$bench" scaling "$scaling_calls"
echo

echo "## The Go binding against the C call"
echo
# Alternating rounds of the C call and the Go benchmarks, so that both see
# the same machine; medians over the rounds.
gobench=$out/go-bench.txt
: >"$gobench"
for _ in $(seq "$go_rounds"); do
    "$bench" lib "$calls"
    (cd bindings/go/bottle && PKG_CONFIG_PATH=$root/build/pkgconfig \
        go test -run '^$' -bench . -benchtime "${calls}x" -count 1 .) >>"$gobench"
done
"$bench" rejected 200000 >/dev/null
go_ns() { awk -v name="^Benchmark$1(-[0-9]+)?\$" '$1 ~ name { print $3 }' "$gobench" | median; }
c_us=$(values lib_call_us | median)
c_rejected_ns=$(values lib_rejected_ns | median)
echo "| call | C | Go | Go − C |"
echo "| --- | --- | --- | --- |"
awk -v c="$c_us" -v g="$(go_ns Exec)" -v gc="$(go_ns ExecCancellable)" \
    -v cr="$c_rejected_ns" -v gr="$(go_ns ExecRejected)" 'BEGIN {
    printf "| exec, no output (mean per call) | %.1f µs | %.1f µs | %+.1f µs |\n", c, g / 1000, g / 1000 - c
    printf "| exec, cancellable context | %.1f µs | %.1f µs | %+.1f µs |\n", c, gc / 1000, gc / 1000 - c
    printf "| exec refused (user `-bad`), no process | %.0f ns | %.0f ns | %+.0f ns |\n", cr, gr, gr - cr
}'
echo

echo "## The CLI and serve transports"
echo
# One machine through the CLI and through serve on a unix socket: the real
# smolvm 1.9.2 (CLI and serve) with the stand-in guest, whose own process
# keeps the guest's work out of smolvm's CPU; then the stand-in's CLI and
# serve.
make --no-print-directory standin >/dev/null
real_smolvm=${BOTTLE_REAL_SMOLVM:-$root/../shared/smolvm-1.9.2/smolvm}
if [ -x "$real_smolvm" ]; then
    echo "### The real smolvm, the stand-in guest"
    echo
    BOTTLE_REAL_SMOLVM=$real_smolvm python3 bench/transports.py "$root/target/release/libbottle.so" \
        "$root/tests/real-smolvm" "${BENCH_TRANSPORT_CALLS:-200}" "${BENCH_TRANSPORT_SCALING:-160}"
    echo
else
    echo "NOT RUN: no real smolvm at $real_smolvm (set BOTTLE_REAL_SMOLVM)"
fi
echo "### The stand-in (its CLI's CPU includes the guest's work)"
echo
SMOLVM_STANDIN_HOME=$root/target/standin-home \
    python3 bench/transports.py "$root/target/release/libbottle.so" \
    "$root/target/debug/smolvm-standin" "${BENCH_TRANSPORT_CALLS:-200}" "${BENCH_TRANSPORT_SCALING:-160}"
echo

echo "## Through the real smolvm CLI and the stand-in guest"
echo
# What an exec costs end to end when smolvm is the real 1.9.2 CLI (the
# guest is the stand-in's debug build): v0.1's buffered command against
# -i, runuser's --session-command and the guard that bottle_exec adds.
real_smolvm=${BOTTLE_REAL_SMOLVM:-$root/../shared/smolvm-1.9.2/smolvm}
if [ -x "$real_smolvm" ]; then
    make --no-print-directory standin >/dev/null
    BOTTLE_REAL_SMOLVM=$real_smolvm BOTTLE_SMOLVM=$root/tests/real-smolvm \
        python3 bench/real_smolvm.py "$root/target/release/libbottle.so" \
        "$root/tests/real-smolvm" "${BENCH_REAL_CALLS:-100}"
else
    echo "NOT RUN: no real smolvm at $real_smolvm (set BOTTLE_REAL_SMOLVM)"
fi
