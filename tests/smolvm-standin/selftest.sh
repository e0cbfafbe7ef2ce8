#!/usr/bin/env bash
# Self-test of the smolvm stand-in: runs it the way libbottle runs smolvm and
# checks statuses, messages, isolation and cleanup. Needs root (mount
# namespaces, chroot). Uses its own state home and removes it.
#
#   sudo tests/smolvm-standin/selftest.sh
#
# SMOLVM_STANDIN=/path/to/smolvm-standin tests a given binary; otherwise the
# debug build is (re)built with cargo first.

set -u

if [ "$(id -u)" != 0 ]; then
    echo "selftest.sh: FATAL: must run as root (needs mount namespaces and chroot)" >&2
    exit 1
fi

here=$(cd "$(dirname "$0")" && pwd)
if [ -z "${SMOLVM_STANDIN:-}" ]; then
    (cd "$here/../.." && cargo build -q -p smolvm-standin) || {
        echo "selftest.sh: FATAL: cargo build failed" >&2
        exit 1
    }
    target=$(cd "$here/../.." && cargo metadata --format-version 1 --no-deps 2>/dev/null |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
    SMOLVM_STANDIN=$target/debug/smolvm-standin
fi
[ -x "$SMOLVM_STANDIN" ] || {
    echo "selftest.sh: FATAL: no executable at $SMOLVM_STANDIN" >&2
    exit 1
}

T=$(mktemp -d /tmp/smolvm-standin-selftest.XXXXXX)
export SMOLVM_STANDIN_HOME=$T/home
cleanup() {
    # Machines of the real-smolvm section, if it stopped half way.
    if [ -n "${BOTTLE_REAL_SMOLVM_HOME:-}" ] && [ -d "$BOTTLE_REAL_SMOLVM_HOME" ]; then
        for n in $("$real" machine ls --json 2>/dev/null |
            python3 -c 'import json,sys; print(" ".join(m["name"] for m in json.load(sys.stdin)))'); do
            "$real" machine delete --name "$n" -f >/dev/null 2>&1
        done
        rm -rf "$BOTTLE_REAL_SMOLVM_HOME"
    fi
    # Machines first (the stand-in's own delete), then whatever is left.
    for d in "$SMOLVM_STANDIN_HOME"/*/; do
        [ -d "$d" ] && "$SMOLVM_STANDIN" machine delete --name "$(basename "$d")" -f 2>/dev/null
    done
    rm -rf "$T"
}
trap cleanup EXIT

passed=0
failed=0
pass() {
    passed=$((passed + 1))
    echo "ok - $1"
}
fail() {
    failed=$((failed + 1))
    echo "FAIL - $1"
    shift
    for line in "$@"; do printf '    %s\n' "$line"; done
}

sv() { "$SMOLVM_STANDIN" machine "$@"; }

# check DESC STATUS STDOUT STDERR CMD...
# Runs CMD; passes if its exit status, stdout and stderr are exactly as given
# (trailing newlines aside). '*' accepts anything.
check() {
    local desc=$1 want_rc=$2 want_out=$3 want_err=$4
    shift 4
    "$@" >"$T/out" 2>"$T/err"
    rc=$?
    out=$(cat "$T/out")
    err=$(cat "$T/err")
    if [ "$want_rc" != '*' ] && [ "$rc" != "$want_rc" ]; then
        fail "$desc" "status $rc, expected $want_rc" "stdout: $out" "stderr: $err"
    elif [ "$want_out" != '*' ] && [ "$out" != "$want_out" ]; then
        fail "$desc" "stdout: $out" "expected: $want_out" "stderr: $err"
    elif [ "$want_err" != '*' ] && [ "$err" != "$want_err" ]; then
        fail "$desc" "stderr: $err" "expected: $want_err"
    else
        pass "$desc"
    fi
}

# expect DESC CONDITION...: passes if the command CONDITION succeeds.
expect() {
    local desc=$1
    shift
    if "$@"; then pass "$desc"; else fail "$desc" "failed: $*"; fi
}

not_running() {
    echo "Error: agent operation failed: connect: machine '$1' is not running. Use 'smolvm machine start --name $1' first."
}

guest_path=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

echo "# stand-in: $SMOLVM_STANDIN"
echo "# home: $SMOLVM_STANDIN_HOME"

## Command line

check "--version" 0 "smolvm 1.9.0-standin" "" "$SMOLVM_STANDIN" --version
check "ls --json with no machines is []" 0 "[]" "" sv ls --json
check "unknown option is a clap error, exit 2" 2 "" '*' sv exec --name m --bogus -- true
expect "  ... and the message starts with error:" grep -q '^error:' "$T/err"
check "missing command is a clap error, exit 2" 2 "" '*' sv exec --name m
check "missing option value is a clap error, exit 2" 2 "" '*' sv status --name
check "non-UTF-8 argument is a clap error, exit 2" 2 "" '*' sv exec --name m -- echo $'\xff'
check "bad --timeout is a clap error, exit 2" 2 "" '*' sv exec --name m --timeout 5x -- true
name_error="Error: config operation failed: validate machine name: machine name"
while IFS='|' read -r bad why; do
    check "invalid machine name '${bad:0:20}'" 1 "" "$name_error $why" sv status --name="$bad"
done <<EOF
a--b|cannot contain consecutive hyphens
-x|must start with a letter or digit (got: "-x")
x-|cannot end with a hyphen (got: "x-")
_x|must start with a letter or digit (got: "_x")
a b|contains invalid character: ' '
a/b|cannot contain path separators
$(printf 'a%.0s' {1..129})|too long: 129 characters (max 128)
EOF
check "name defaults to 'default'" 1 "" "Error: vm not found: default" sv status

## Lifecycle

check "create with labels" 0 '*' "" \
    sv create --name life --image img:1 --cpus 2 --mem 1024 --label bottle=yes --label "k=v w"
check "create again fails" 1 "" "Error: config operation failed: create machine: machine 'life' already exists or is being created" \
    sv create --name life
check "status --json right after create" 0 '*' "" sv status --name life --json
expect "  ... parses as JSON" python3 -m json.tool "$T/out" /dev/null
expect "  ... has the recorded fields" python3 -c '
import json, sys
m = json.load(open(sys.argv[1]))
assert m["name"] == "life" and m["state"] == "created" and m["image"] == "img:1", m
assert m["cpus"] == 2 and m["memory_mib"] == 1024 and m["network"] is False, m
assert m["labels"] == {"bottle": "yes", "k": "v w"}, m
assert isinstance(m["created_at"], int) and len(m) == 31, m' "$T/out"
check "start" 0 "Starting machine 'life'...
Machine 'life' running" "" sv start --name life
check "start again is fine" 0 "Machine 'life' already running" "" sv start --name life
check "status human line" 0 '*' "" sv status --name life
expect "  ... says running" grep -q running "$T/out"
check "ls --json" 0 '*' "" sv ls --json
expect "  ... is a JSON array holding the machine as running" python3 -c '
import json, sys
ms = json.load(open(sys.argv[1]))
assert [m["name"] for m in ms] == ["life"] and ms[0]["state"] == "running", ms' "$T/out"
check "stop" 0 "Stopping machine 'life'...
Stopped machine: life" "" sv stop --name life
check "stop when stopped is fine" 0 "Machine 'life' is not running (state: stopped)" "" sv stop --name life
check "status after stop" 0 '*' "" sv status --name life --json
expect "  ... says stopped" grep -q '"state": "stopped"' "$T/out"
check "stop of a missing machine" 1 "" "Error: vm not found: nope" sv stop --name nope
check "start of a missing machine" 1 "" "Error: vm not found: nope" sv start --name nope
check "delete without -f asks; no answer cancels" 0 "Delete machine 'life'? [y/N] Cancelled" "" \
    sh -c "'$SMOLVM_STANDIN' machine delete --name life </dev/null"
check "delete -f" 0 "Deleted machine: life" "" sv delete --name life -f
check "status --json after delete" 1 "" "Error: config operation failed: machine status: machine 'life' not found" \
    sv status --name life --json
check "status after delete" 1 "" "Error: vm not found: life" sv status --name life
check "delete again" 1 "" "Error: vm not found: life" sv delete --name life -f
expect "  ... nothing of it remains" test ! -e "$SMOLVM_STANDIN_HOME/life"

check "create with more memory than the host has" 0 '*' "" sv create --name fails --mem 4000000000
check "  ... start fails" 1 '*' "Error: agent operation failed: start machine: agent operation failed: monitor agent: Error: smolvm-standin guest: cannot give the guest 4000000000 MiB of memory: the host has $(( $(sed -n 's/^MemTotal: *\([0-9]*\) kB/\1/p' /proc/meminfo) / 1024 )) MiB (boot process exited (code 1) before the agent was ready)" \
    sv start --name fails
check "  ... and it stays created" 0 '*' "" sv status --name fails --json
expect "  ... (state created)" grep -q '"state": "created"' "$T/out"
check "exec on a created machine" 1 "" "$(not_running fails)" sv exec --name fails -- true
sv delete --name fails -f >/dev/null

check "malformed -v names the value" 1 "" '*' sv create --name badv -v /tmp
expect "  ... in one Error: line" grep -qx "Error: invalid mount path: invalid format '/tmp' (expected host:guest\[:ro|:rw\])" "$T/err"
check "a missing volume source" 1 "" "Error: mount source not found: /nonexistent-$$" \
    sv create --name badv -v "/nonexistent-$$:/x"
check "malformed --label names the value" 1 "" "Error: config operation failed: --label: expected KEY=VALUE, got 'nolabel'" \
    sv create --name badl --label nolabel
check "--mem under 64 MiB" 1 "" "Error: config operation failed: validate resources: memory must be at least 64 MiB (got 10 MiB)" \
    sv create --name badm --mem 10
check "no machine was left behind by the failures" 0 "[]" "" sv ls --json

## Exec

mkdir -p "$T/vol" "$T/rovol"
echo from-host >"$T/rovol/file"
check "create m (with env and volumes; a malformed -e is dropped)" 0 '*' "" \
    sv create --name m -e FROM_CREATE=c -e OVERRIDE=create -e NO_EQUALS_UNSET_$$ -e =x \
    -v "$T/vol:/mnt/vol" -v "$T/rovol:/mnt/ro:ro"
sv start --name m >/dev/null

check "exec as root: id, HOME, PATH, cwd" 0 "0 root
/root
$guest_path
/" "" sv exec --name m -- sh -c 'echo "$(id -u) $(id -un)"; echo "$HOME"; echo "$PATH"; pwd'
check "argv arrives exactly, no shell in between" 0 'a b|$HOME|'"'"'q'"'"'|;|' "" \
    sv exec --name m -- printf '%s|' 'a b' '$HOME' "'q'" ';'
check "guest env: smolvm's base, then the machine's" 0 "FROM_CREATE=c
HOME=/root
OVERRIDE=create
PATH=$guest_path
PWD=/
SMOLVM_MACHINE_NAME=m
SMOLVM_MOUNT_0=smolvm0:/mnt/vol:rw
SMOLVM_MOUNT_1=smolvm1:/mnt/ro:ro
SMOLVM_MOUNT_COUNT=2
TERM=xterm-256color" "" sv exec --name m -- env -u SHLVL -u _ sh -c \
    'env | grep -v "^SMOLVM_HOST_TIME_NS=[0-9]*$" | grep -v "^SMOLVM_READY_MARKER=.smolvm-ready.[0-9a-f]\{16\}$" | sort'
check "exit status 0" 0 "" "" sv exec --name m -- true
check "exit status 1" 1 "" "" sv exec --name m -- false
check "exit status 255" 255 "" "" sv exec --name m -- sh -c 'exit 255'
check "killed by SIGKILL is 137" 137 "" "" sv exec --name m -- sh -c 'kill -9 $$'
check "command not found: exit 1, smolvm's spawn failure" 1 "" \
    "Error: agent operation failed: vm exec: failed to spawn command: No such file or directory (os error 2)" \
    sv exec --name m -- no-such-cmd arg
check "  ... worded for -i" 1 "" "Error: agent operation failed: vm exec interactive: No such file or directory (os error 2)" \
    sv exec --name m -i -- no-such-cmd arg
check "  ... and for --stream" 1 "" "Error: agent operation failed: streaming exec: Permission denied (os error 13)" \
    sv exec --name m --stream -- /etc/passwd
check "stdout first, then stderr, after the command" 0 "out
err" "" sh -c "'$SMOLVM_STANDIN' machine exec --name m -- sh -c 'echo err >&2; echo out' 2>&1"

check "runuser -l node: id, HOME, USER, PATH, cwd (no warnings)" 0 "node
/home/node node
/usr/local/bin:/usr/bin:/bin:/usr/local/games:/usr/games
/home/node" "" sv exec --name m -- runuser -l node -c 'id -un; echo $HOME $USER; echo $PATH; pwd'
check "runuser -l root is a harmless switch" 0 "root /root" "" \
    sv exec --name m -- runuser -l root -c 'echo $(id -un) $HOME'
check "claude stand-in is node's /usr/local/bin/claude" 0 "/usr/local/bin/claude" "" \
    sv exec --name m -- runuser -l node -c 'command -v claude'
check "claude stand-in runs, as node" 0 "claude stand-in: 4 arguments" "" \
    sv exec --name m -- runuser -l node -c "exec claude 'two words' '' 'it'\''s' 'line
break'"
printf '%s\0' 'two words' '' "it's" 'line
break' >"$T/argv.expected"
sv exec --name m -- cat /home/node/.claude-standin/argv >"$T/argv.got"
expect "  ... recorded argv byte for byte" cmp -s "$T/argv.expected" "$T/argv.got"
check "  ... recorded user, cwd, tty" 0 "node
/home/node
notty" "" sv exec --name m -- cat /home/node/.claude-standin/run
sv exec --name m -- sh -c 'echo 7 > /tmp/claude-exit'
check "  ... exits with /tmp/claude-exit" 7 '*' "" sv exec --name m -- runuser -l node -c claude
sv exec --name m -- rm /tmp/claude-exit

check "-e sets and overrides create-time env" 0 "c exec x=y" "" \
    sv exec --name m -e OVERRIDE=exec -e 'NEW=x=y' -- sh -c 'echo $FROM_CREATE $OVERRIDE $NEW'
check "malformed -e is dropped, -e KEY forwards the host's KEY" 0 "[] [fwd]" "" \
    env FWD_$$=fwd "$SMOLVM_STANDIN" machine exec --name m -e NOEQ_UNSET_$$ -e =x -e "FWD_$$" -- \
    sh -c "echo [\$NOEQ_UNSET_$$] [\$FWD_$$]"
secret="s3cr3t-$$-value"
check "--secret-env reads the stand-in's environment" 0 "$secret" "" \
    env HOST_TOKEN="$secret" "$SMOLVM_STANDIN" machine exec --name m --secret-env TOKEN=HOST_TOKEN -- \
    sh -c 'echo "$TOKEN"'
printf %s "$secret" >"$T/secret.pattern"
printf '%s' '/tmp/secret; sleep 2' >"$T/command.pattern"
env HOST_TOKEN="$secret" "$SMOLVM_STANDIN" machine exec --name m --secret-env TOKEN=HOST_TOKEN -- \
    sh -c 'printf %s "$TOKEN" > /tmp/secret; sleep 2' &
spid=$!
sleep 1
# Every process of the host, guest included; -f: the pattern is no argv either.
expect "  ... and the value is in no argv on the host while it runs" \
    sh -c "! cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' ' | grep -qF -f '$T/secret.pattern'"
expect "  ... (the same scan does find the guest command's argv)" \
    sh -c "cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' ' | grep -qF -f '$T/command.pattern'"
wait "$spid"
check "  ... (while the guest had it)" 0 "$secret" "" sv exec --name m -- cat /tmp/secret
check "--secret-env with a missing host variable runs nothing" 1 "" "Error: config operation failed: resolve secret 'X': env_unset" \
    sv exec --name m --secret-env "X=NOT_SET_$$" -- touch /tmp/ran
check "  ... (nothing ran)" 1 "" "" sv exec --name m -- test -e /tmp/ran
check "-w sets the working directory" 0 "/home/node" "" sv exec --name m -w /home/node -- pwd
check "-w of a missing directory" 1 "" "Error: agent operation failed: vm exec: failed to spawn command: No such file or directory (os error 2)" \
    sv exec --name m -w /nonexistent -- pwd
check "-i passes stdin" 0 "piped in" "" sh -c "echo 'piped in' | '$SMOLVM_STANDIN' machine exec --name m -i -- cat"
check "without -i stdin is /dev/null" 0 "" "" sh -c "echo 'piped in' | '$SMOLVM_STANDIN' machine exec --name m -- cat"
check "TERM is xterm-256color, whatever the caller's" 0 "xterm-256color" "" env TERM=vt100 "$SMOLVM_STANDIN" machine exec --name m -t -- sh -c 'echo $TERM'
check "-e TERM wins over -t" 0 "dumb" "" env TERM=vt100 "$SMOLVM_STANDIN" machine exec --name m -t -e TERM=dumb -- sh -c 'echo $TERM'

sv exec --name m -i -- sh -c 'head -c 67108864 /dev/zero; head -c 67108864 /dev/zero >&2' >"$T/big.out" 2>"$T/big.err"
rc=$?
expect "-i: 64 MiB on stdout and 64 MiB on stderr at once (status $rc)" \
    test "$rc" = 0 -a "$(stat -c %s "$T/big.out")" = 67108864 -a "$(stat -c %s "$T/big.err")" = 67108864
rm -f "$T/big.out" "$T/big.err"
check "buffered: the cap per stream holds" 0 "11534336" "" sh -c "'$SMOLVM_STANDIN' machine exec --name m -- head -c 11534336 /dev/zero | wc -c"
check "  ... one byte more fails" 1 "" "Error: agent operation failed: vm exec: command output exceeded 11534336 bytes and was truncated. Use streaming exec (exec_stream / execStream) for large output." \
    sv exec --name m -- sh -c 'head -c 11534337 /dev/zero >&2'
check "--stream: the CLI's cap on the total" 1 '*' "error: streaming output exceeded 11534336 byte cap; exec terminated (output truncated)" \
    sv exec --name m --stream -- sh -c 'head -c 6000000 /dev/zero; head -c 6000000 /dev/zero >&2'
check "--stream: stdin never ends" 124 "" "" sv exec --name m --stream --timeout 1s -- cat
head -c 3000000 /dev/urandom >"$T/random"
sv exec --name m -i -- cat <"$T/random" >"$T/random.back"
expect "output is binary-safe" cmp -s "$T/random" "$T/random.back"

start=$(date +%s%N)
check "--timeout kills the command's group: 124, output kept, nothing added" 124 "before" "during" \
    sv exec --name m --timeout 500ms -- sh -c 'echo before; echo during >&2; sleep 4321 & sleep 4321'
ms=$((($(date +%s%N) - start) / 1000000))
expect "  ... promptly (${ms} ms)" test "$ms" -lt 3000
expect "  ... and no sleep is left running" sh -c '! pgrep -f "sleep 432[1]" >/dev/null'
check "--timeout not reached" 0 "done" "" sv exec --name m --timeout 30s -- echo done

sv exec --name m -- sh -c 'echo first; sleep 2; echo second' >"$T/buffered" &
bpid=$!
sv exec --name m --stream -- sh -c 'echo first; sleep 2; echo second' >"$T/streamed" &
spid=$!
sleep 1
expect "--stream delivers output as produced" test "$(cat "$T/streamed")" = first
expect "without --stream output waits for the end" test ! -s "$T/buffered"
wait "$bpid" "$spid"
expect "  ... and both end complete" test "$(cat "$T/streamed" "$T/buffered" | tr '\n' ' ')" = "first second first second "

for sig in TERM INT HUP KILL; do
    # A script's background jobs start with SIGINT ignored; the stand-in
    # keeps an inherited SIG_IGN, so give it default signal handling.
    env --default-signal "$SMOLVM_STANDIN" machine exec --name m -- sh -c 'setsid sleep 4322 & sleep 4322' &
    pid=$!
    for _ in $(seq 50); do pgrep -f "sleep 432[2]" >/dev/null && break; sleep 0.1; done
    kill -s "$sig" "$pid"
    wait "$pid" 2>/dev/null
    for _ in $(seq 20); do pgrep -f "sleep 432[2]" >/dev/null || break; sleep 0.1; done
    expect "SIG$sig to the stand-in leaves no guest process (even a setsid one)" \
        sh -c '! pgrep -f "sleep 432[2]" >/dev/null'
done

exec 7<"$T/rovol/file"
check "the stand-in's open fds do not leak into the guest" 0 "0 1 2 3" "" \
    sv exec --name m -- sh -c 'ls /proc/self/fd | sort -n | tr "\n" " " | sed "s/ $//"'
exec 7<&-

## Isolation

check "hostname is the machine name" 0 "m" "" sv exec --name m -- hostname
check "the guest sees only its own processes" 0 "1
2" "" sv exec --name m -- find /proc -maxdepth 1 -name '[0-9]*' -printf '%f\n'
check "  ... pid 1 being the stand-in's guest init" 0 "smolvm-standin" "" sv exec --name m -- cat /proc/1/comm
check "/usr is read-only" 1 "" '*' sv exec --name m -- touch /usr/standin-probe
check "/proc/sys is read-only" '*' "" '*' sv exec --name m -- sh -c 'echo 1 > /proc/sys/kernel/printk_ratelimit'
expect "  ... (Read-only file system)" grep -q 'Read-only file system' "$T/err"
check "/usr/local is writable" 0 "" "" sv exec --name m -- touch /usr/local/bin/probe
check "without --net only loopback exists" 0 "lo" "" sv exec --name m -- sh -c \
    "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '"
check "a volume is shared with the host" 0 "" "" sv exec --name m -- sh -c 'echo hi > /mnt/vol/written'
expect "  ... (host sees the file)" test "$(cat "$T/vol/written")" = hi
check "a :ro volume is readable" 0 "from-host" "" sv exec --name m -- cat /mnt/ro/file
check "a :ro volume is not writable" 1 "" '*' sv exec --name m -- touch /mnt/ro/x
check "create m2 with --net" 0 '*' "" sv create --name m2 --net
sv start --name m2 >/dev/null
check "machines have their own /usr/local" 1 "" "" sv exec --name m2 -- test -e /usr/local/bin/probe
check "machines have their own /tmp" 0 "" "" sv exec --name m -- touch /tmp/only-in-m
check "  ... (not in m2)" 1 "" "" sv exec --name m2 -- test -e /tmp/only-in-m
interfaces="tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | sort | tr '\n' ' '"
check "--net machine shares the host's interfaces" 0 "$(sh -c "$interfaces")" "" \
    sv exec --name m2 -- sh -c "$interfaces"

## Copy

printf 'copied\n' >"$T/in.txt"
check "cp in with --mode/--uid/--gid" 0 "" "Uploading $T/in.txt -> /home/node/in.txt: 7 B / 7 B (100.0%)" \
    sv cp --mode 640 --uid 1000 --gid 1000 -- "$T/in.txt" m:/home/node/in.txt
check "  ... owner and mode in the guest" 0 "node:node 640 copied" "" \
    sv exec --name m -- sh -c 'echo $(stat -c "%U:%G %a" /home/node/in.txt) $(cat /home/node/in.txt)'
check "cp in defaults: root:root 644" 0 "" "*" sv cp -- "$T/in.txt" m:/tmp/in.txt
check "  ... as seen in the guest" 0 "root:root 644" "" sv exec --name m -- stat -c "%U:%G %a" /tmp/in.txt
check "cp in over a bigger existing file" 0 "" "*" sv cp --mode 600 -- "$T/random" m:/tmp/in.txt
check "  ... then a smaller one" 0 "" "*" sv cp -- "$T/in.txt" m:/tmp/in.txt
check "  ... replaces it, mode 644 again" 0 "644 copied" "" \
    sv exec --name m -- sh -c 'echo $(stat -c %a /tmp/in.txt) $(cat /tmp/in.txt)'
check "cp out" 0 "" "Downloading /tmp/random -> $T/out.bin: 3000000 B" \
    sh -c "'$SMOLVM_STANDIN' machine cp -- '$T/random' m:/tmp/random 2>/dev/null &&
           '$SMOLVM_STANDIN' machine cp -- m:/tmp/random '$T/out.bin'"
expect "  ... content identical, mode 644" sh -c "cmp -s '$T/random' '$T/out.bin' && test \$(stat -c %a '$T/out.bin') = 644"
exec 8<"$T/in.txt"
check "cp from /dev/fd/N (an inherited fd)" 0 "" '*' sv cp -- /dev/fd/8 m:/tmp/fd.txt
check "cp from /proc/self/fd/N" 0 "" '*' sv cp -- /proc/self/fd/8 m:/tmp/fd2.txt
check "  ... both arrived" 0 "copied
copied" "" sv exec --name m -- cat /tmp/fd.txt /tmp/fd2.txt
exec 8<&-
check "a host path with ':' is read as MACHINE:PATH (SRC first)" 1 "" "$name_error must start with a letter or digit (got: \"$T/a\")" \
    sv cp -- "$T/a:b" m:/tmp/x
(cd "$T" && "$SMOLVM_STANDIN" machine cp -- m:/etc/hostname "x:y" 2>/dev/null)
expect "  ... and with ':' in both, SRC is the machine side" test "$(cat "$T/x:y")" = m
check "neither side is MACHINE:PATH" 1 "" "Error: config operation failed: cp: one of SRC or DST must use machine:path syntax (e.g., myvm:/workspace/file)" sv cp -- "$T/in.txt" "$T/x"
check "cp of a directory fails" 1 "" "Error: agent operation failed: read source file: Is a directory (os error 21)" sv cp -- "$T" m:/tmp/dir
check "cp out of a guest directory fails" 1 "" "Error: agent operation failed: read file: not a regular file: /etc" sv cp -- m:/etc "$T/etc"
expect "  ... and creates nothing on the host" test ! -e "$T/etc"
check "cp onto a guest directory fails" 1 "" "Error: agent operation failed: write file: failed to rename onto /tmp: Is a directory (os error 21)" \
    sv cp -- "$T/in.txt" m:/tmp
check "cp into a missing guest directory creates it" 0 "" '*' sv cp -- "$T/in.txt" m:/no/such/dir
check "  ... (there)" 0 "copied" "" sv exec --name m -- cat /no/such/dir
echo old >"$T/none"
check "cp of a missing guest file fails" 1 "" "Error: agent operation failed: read file: failed to open /no-such-file: No such file or directory (os error 2)" \
    sv cp -- m:/no-such-file "$T/none"
expect "  ... and removes the host file it had truncated, as smolvm does" test ! -e "$T/none"
check "a relative guest path is taken from /" 0 "" '*' sv cp -- "$T/in.txt" m:tmp/x
check "  ... (there)" 0 "copied" "" sv exec --name m -- cat /tmp/x
probe="standin-escape-$$"
check "a guest path with .. is refused" 1 "" "Error: agent operation failed: write file: invalid guest path /../../etc/$probe: parent traversal is not allowed" \
    sv cp -- "$T/in.txt" "m:/../../etc/$probe"
expect "  ... (nothing in the host's /etc)" test ! -e "/etc/$probe"
sv exec --name m -- ln -s /../../../../etc /tmp/escape
check "a guest symlink to / does not lead out either" 0 "" "*" sv cp -- "$T/in.txt" "m:/tmp/escape/$probe-2"
expect "  ... (host /etc untouched)" test ! -e "/etc/$probe-2"
check "cp to a missing machine" 1 "" "Error: vm not found: nope" sv cp -- "$T/in.txt" nope:/tmp/x
sv stop --name m2 >/dev/null
check "cp to a stopped machine" 1 "" "$(not_running m2)" sv cp -- "$T/in.txt" m2:/tmp/x
check "exec on a stopped machine" 1 "" "$(not_running m2)" sv exec --name m2 -- true
check "exec on a missing machine" 1 "" "Error: vm not found: nope" sv exec --name nope -- true

## Concurrency

for i in $(seq 32); do
    sv exec --name m -- sh -c "echo run-$i" >"$T/par.$i" 2>&1 &
done
wait
good=0
for i in $(seq 32); do [ "$(cat "$T/par.$i")" = "run-$i" ] && good=$((good + 1)); done
expect "32 concurrent execs on one machine all succeed ($good/32)" test "$good" = 32

for i in $(seq 8); do
    (sv create --name "c$i" --label batch=1 && sv start --name "c$i" &&
        sv exec --name "c$i" -- true && sv delete --name "c$i" -f) >/dev/null 2>"$T/cd.$i" &
done
# The same name created 4 times at once: exactly one wins.
for i in $(seq 4); do sv create --name race >/dev/null 2>"$T/race.$i" & done
wait
good=0
for i in $(seq 8); do [ ! -s "$T/cd.$i" ] && good=$((good + 1)); done
expect "8 concurrent create/start/exec/delete of different machines ($good/8)" test "$good" = 8
wins=0
for i in $(seq 4); do [ ! -s "$T/race.$i" ] && wins=$((wins + 1)); done
expect "4 concurrent creates of one name: exactly one wins ($wins)" test "$wins" = 1
expect "  ... the others say it exists" sh -c "cat '$T'/race.* | grep -c \"Error: config operation failed: create machine: machine 'race' already exists\" | grep -qx 3"
check "ls shows exactly the remaining machines" 0 '*' "" sv ls --json
expect "  ... (m, m2, race)" python3 -c '
import json, sys
assert [m["name"] for m in json.load(open(sys.argv[1]))] == ["m", "m2", "race"]' "$T/out"

## Cleanup leaves the host untouched

for name in m m2 race; do sv delete --name "$name" -f >/dev/null; done
check "after deleting all, ls --json is []" 0 "[]" "" sv ls --json
expect "nothing of the machines remains in the home" sh -c "test -z \"\$(ls -A '$SMOLVM_STANDIN_HOME')\""
expect "no mount in the host mentions the home" sh -c "! grep -F '$SMOLVM_STANDIN_HOME' /proc/self/mountinfo"
expect "no guest process is left" sh -c '! pgrep -f "sleep 432[0-9]" >/dev/null'

## The HTTP API (serve): the stand-in's, and the real one in front of the stand-in guest

. "$here/selftest-serve.sh"

## The real smolvm CLI against the stand-in guest

. "$here/selftest-real.sh"

## Timing (informational)

sv create --name timing >/dev/null && sv start --name timing >/dev/null
start=$(date +%s%N)
for _ in $(seq 50); do sv exec --name timing -- true; done
echo "# trivial exec: $((($(date +%s%N) - start) / 50000)) us on average"
sv delete --name timing -f >/dev/null

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
