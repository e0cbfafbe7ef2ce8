#!/usr/bin/env bash
# Runs the C examples, and an install into a scratch PREFIX (without cargo
# on PATH, then moved elsewhere) with programs built against it through
# pkg-config, against the stand-in smolvm. Prints "N passed, M failed".
# Needs: make lib, the stand-in, BOTTLE_SMOLVM and SMOLVM_STANDIN_HOME set
# (the Makefile's test-examples target does all of that).
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
: "${BOTTLE_SMOLVM:?BOTTLE_SMOLVM must name the stand-in smolvm}"
: "${SMOLVM_STANDIN_HOME:?SMOLVM_STANDIN_HOME must be set}"
[ "$(id -u)" = 0 ] || { echo "examples: the stand-in smolvm needs root" >&2; exit 2; }

passed=0 failed=0
ok() { passed=$((passed + 1)); }
bad() { failed=$((failed + 1)); echo "FAIL: $*" >&2; }
# expect DESCRIPTION NEEDLE OUTPUT: OUTPUT must contain NEEDLE.
expect() { case "$3" in *"$2"*) ok ;; *) bad "$1: no \"$2\" in: $3" ;; esac; }

scratch=$(mktemp -d)
machine="examples-$$"
cleanup() {
    "$BOTTLE_SMOLVM" machine delete --name "$machine" -f >/dev/null 2>&1
    rm -rf "$scratch"
}
trap cleanup EXIT
"$BOTTLE_SMOLVM" machine create --name "$machine" >/dev/null &&
    "$BOTTLE_SMOLVM" machine start --name "$machine" >/dev/null ||
    { echo "examples: cannot create a stand-in machine" >&2; exit 2; }

# The C examples, built against the in-tree library.
make -s -C "$root/bindings/c" OUT="$scratch/in-tree" >/dev/null || bad "build C examples"
bin="$scratch/in-tree"
out=$("$bin/exec" "$machine" 2>&1); code=$?
[ $code = 0 ] && ok || bad "exec example exited $code"
expect "exec example" "exit code: 3" "$out"
expect "exec example" "node in /home/node" "$out"
expect "exec example" "stderr (5 bytes): oops" "$out"

out=$("$bin/claude" "$machine" /home/node/prompt.md -p "it's a test" "" </dev/null 2>&1); code=$?
[ $code = 0 ] && ok || bad "claude example exited $code: $out"
argv=$("$bin/exec" "$machine" 'tr "\0" "|" < ~/.claude-standin/argv' 2>&1)
expect "claude example argv" "--append-system-prompt-file|/home/node/prompt.md|-p|it's a test||" "$argv"

printf 'payload\n' > "$scratch/host file: -x"
out=$("$bin/cp_in" "$machine" "$scratch/host file: -x" "/tmp/it's here" 2>&1); code=$?
[ $code = 0 ] && ok || bad "cp_in example exited $code: $out"
expect "cp_in example" "$(sha256sum < "$scratch/host file: -x" | cut -d' ' -f1)" "$out"

out=$("$bin/exec" no-such-machine true 2>&1); code=$?
[ $code = 1 ] && ok || bad "exec example on a missing machine exited $code"
expect "exec example error" "smolvm failed: smolvm machine exec on 'no-such-machine' failed: vm not found" "$out"

mkdir -p "$scratch/work/sub"
printf 'a\n' > "$scratch/work/a.txt"; printf 'b\n' > "$scratch/work/sub/b.txt"
out=$("$bin/launch" "$scratch/work" 2>&1); code=$?
[ $code = 0 ] && ok || bad "launch example exited $code: $out"
expect "launch example" "copied 2/2 files, 4/4 bytes" "$out"
expect "launch example" "mode demo, token 15 chars" "$out"
expect "launch example" "stdin: 3 lines" "$out"
expect "launch example report" "mode demo" "$(cat "$scratch/work.report" 2>&1)"
launched=$(printf '%s\n' "$out" | sed -n 's/^launched //p')
"$BOTTLE_SMOLVM" machine status --name "$launched" >/dev/null 2>&1 && bad "launch example left $launched" || ok

out=$("$bin/stream" "$machine" 'echo one; echo two >&2; sleep 60' 400 2>&1); code=$?
[ $code = 124 ] && ok || bad "stream example with a timeout exited $code: $out"
expect "stream example" "one" "$out"
expect "stream example" "timed out after 400 ms" "$out"
"$bin/stream" "$machine" 'echo started; sleep 60' > "$scratch/stream.out" 2>&1 &
streamer=$!
for _ in $(seq 100); do grep -q started "$scratch/stream.out" && break; sleep 0.05; done
kill -INT "$streamer"; wait "$streamer"; code=$?
[ $code = 130 ] && ok || bad "stream example after SIGINT exited $code: $(cat "$scratch/stream.out")"
expect "stream example cancelled" "cancelled" "$(cat "$scratch/stream.out")"
left=$(pgrep -af "exec --name $machine" || true)
[ -z "$left" ] && ok || bad "smolvm left running after cancel: $left"

out=$("$bin/reap" 2>&1); code=$?
[ $code = 0 ] && ok || bad "reap example exited $code: $out"

# Install into a scratch PREFIX as `make lib && sudo make install` does:
# install builds nothing and needs no cargo (sudo's PATH has none), and says
# what to run when the library is not built.
prefix="$scratch/prefix"
nocargo=/usr/bin:/bin
PATH=$nocargo command -v cargo >/dev/null && bad "cargo is on $nocargo; the check proves nothing"
out=$(PATH=$nocargo make -s -C "$root" install PREFIX="$prefix" LIBDIR="$scratch/unbuilt" 2>&1) &&
    bad "make install without a built library succeeded"
expect "install without a built library" "run \`make lib\` first" "$out"
[ -e "$prefix" ] && bad "make install without a built library installed something" || ok
PATH=$nocargo make -s -C "$root" install PREFIX="$prefix" >/dev/null || bad "make install without cargo on PATH"
installed=$(cd "$prefix" && find . | sort)
expect "installed files" "./lib/libbottle.so.0.1" "$installed"
[ "$(readlink "$prefix/lib/libbottle.so")" = libbottle.so.0.1 ] && ok || bad "dev symlink"
[ "$(readlink "$prefix/lib/libbottle.so.0.1")" = libbottle.so.0.1.0 ] && ok || bad "soname symlink"
readelf -d "$prefix/lib/libbottle.so.0.1.0" | grep -q 'SONAME.*libbottle.so.0.1' && ok || bad "soname"
readelf -S -W "$prefix/lib/libbottle.so.0.1.0" | grep -q '\.debug_\|\.symtab' &&
    bad "the installed shared library is not stripped" || ok
readelf -S -W "$prefix/lib/libbottle.a" 2>/dev/null | grep -q '\.debug_' &&
    bad "the installed static library has debug info" || ok
echo "examples: libbottle.so $(stat -c %s "$root/target/release/libbottle.so") bytes in target/release," \
    "$(stat -c %s "$prefix/lib/libbottle.so.0.1.0") installed (stripped);" \
    "libbottle.a $(stat -c %s "$root/target/release/libbottle.a") and $(stat -c %s "$prefix/lib/libbottle.a")"
expect "bottle.pc is relative to its place" 'prefix=${pcfiledir}/../..' "$(cat "$prefix/lib/pkgconfig/bottle.pc")"
expect "bottle.pc paths under the prefix" 'libdir=${prefix}/lib' "$(cat "$prefix/lib/pkgconfig/bottle.pc")"

# build NAME SOURCE PREFIX [cc options...]: builds SOURCE against the
# libbottle installed in PREFIX, through pkg-config, into $scratch/NAME.
build() {
    local name=$1 source=$2 pc=$3/lib/pkgconfig
    shift 3
    cc -std=c11 -Wall -Werror "$source" -o "$scratch/$name" \
        $(PKG_CONFIG_PATH="$pc" pkg-config --cflags --libs bottle) "$@" || bad "build $name"
}
build exec-installed "$root/bindings/c/exec.c" "$prefix"
out=$(LD_LIBRARY_PATH="$prefix/lib" "$scratch/exec-installed" "$machine" 'echo installed' 2>&1)
expect "installed library" "stdout (10 bytes): installed" "$out"
LD_LIBRARY_PATH="$prefix/lib" ldd "$scratch/exec-installed" | grep -q "libbottle.so.0.1 => $prefix/lib/" && ok || bad "linked to the installed soname"
# bottle.pc carries no rpath: without LD_LIBRARY_PATH (or an rpath, or
# ldconfig) the program cannot find the library, as the README says.
if ! ldconfig -p | grep -q 'libbottle\.so\.0\.1 '; then
    out=$("$scratch/exec-installed" "$machine" true 2>&1) && bad "ran without finding libbottle: $out"
    expect "no rpath in bottle.pc" "libbottle.so.0.1: cannot open shared object file" "$out"
fi
build version "$root/tests/c/version.c" "$prefix"
out=$(LD_LIBRARY_PATH="$prefix/lib" "$scratch/version" 2>&1) && ok || bad "header and library versions differ: $out"
expect "version macros" "header $(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -n 1)" "$out"
PKG_CONFIG_PATH="$prefix/lib/pkgconfig" cc -std=c11 -static-libgcc "$root/bindings/c/exec.c" -o "$scratch/exec-static" \
    $(PKG_CONFIG_PATH="$prefix/lib/pkgconfig" pkg-config --cflags bottle) "$prefix/lib/libbottle.a" \
    $(PKG_CONFIG_PATH="$prefix/lib/pkgconfig" pkg-config --libs-only-other --static bottle) \
    $(PKG_CONFIG_PATH="$prefix/lib/pkgconfig" pkg-config --libs-only-l --static bottle | sed 's/-lbottle//') || bad "static build"
out=$("$scratch/exec-static" "$machine" 'echo static' 2>&1)
expect "static library" "stdout (7 bytes): static" "$out"

# The installed tree moved elsewhere: bottle.pc follows it, and a program
# built with an rpath to the new place runs without LD_LIBRARY_PATH.
moved="$scratch/moved/prefix"
mkdir "$scratch/moved"
mv "$prefix" "$moved"
build exec-moved "$root/bindings/c/exec.c" "$moved" -Wl,-rpath,"$moved/lib"
out=$("$scratch/exec-moved" "$machine" 'echo moved' 2>&1)
expect "relocated prefix with an rpath" "stdout (6 bytes): moved" "$out"
mv "$moved" "$prefix"

make -s -C "$root" uninstall PREFIX="$prefix" >/dev/null || bad "make uninstall"
left=$(cd "$prefix" && find . -type f -o -type l)
[ -z "$left" ] && ok || bad "uninstall left: $left"

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
