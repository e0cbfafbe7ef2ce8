# The real smolvm CLI against the stand-in guest (`_boot-vm`), through
# tests/real-smolvm. Sourced by selftest.sh, whose helpers (check, expect,
# pass, fail) and variables (T, SMOLVM_STANDIN, here) it uses; not run alone.
#
# Without the real binary (../shared/smolvm-1.9.2/smolvm beside the
# repository, or $BOTTLE_REAL_SMOLVM) this section fails when CI is set and
# is reported NOT RUN otherwise.

repo=$(cd "$here/../.." && pwd)
real=$repo/tests/real-smolvm
smolvm_bin=${BOTTLE_REAL_SMOLVM:-$repo/../shared/smolvm-1.9.2/smolvm}

real_section() {
    echo "# real smolvm: $smolvm_bin"
    export BOTTLE_STANDIN=$SMOLVM_STANDIN
    # Under target/: the guest's root filesystems live in the machines' data
    # directories, below this HOME.
    export BOTTLE_REAL_SMOLVM_HOME=$repo/target/selftest-real-home.$$
    rm -rf "$BOTTLE_REAL_SMOLVM_HOME"
    rs() { "$real" machine "$@"; }

    check "wrapper: a missing binary is one line and 127" 127 "" \
        "real-smolvm: no smolvm binary at /nonexistent (set BOTTLE_REAL_SMOLVM)" \
        env BOTTLE_REAL_SMOLVM=/nonexistent "$real" --version
    check "wrapper: real smolvm runs" 0 "smolvm 1.9.2" "" "$real" --version

    mkdir -p "$T/rvol"
    check "real: create (with -e and a volume)" 0 '*' "" rs create --name r1 -e FROM_CREATE=c -v "$T/rvol:/mnt/vol"
    check "real: start boots the stand-in guest" 0 "Machine 'r1' running (PID: *)" '*' sh -c "'$real' machine start --name r1 | sed 's/PID: [0-9]*/PID: */'"
    check "real: exec as root, HOME, PATH, TERM, cwd /" 0 "0 /root
/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin xterm-256color
/" "" rs exec --name r1 -- sh -c 'echo "$(id -u) $HOME"; echo "$PATH $TERM"; pwd'
    check "real: create-time -e, exec -e, --secret-env" 0 "c x s3" "" \
        env HOST_SECRET=s3 "$real" machine exec --name r1 -e NEW=x --secret-env SEC=HOST_SECRET -- \
        sh -c 'echo $FROM_CREATE $NEW $SEC'
    check "real: -w" 0 "/home/node" "" rs exec --name r1 -w /home/node -- pwd
    check "real: volume" 0 "" "" rs exec --name r1 -- sh -c 'echo v > /mnt/vol/f'
    expect "  ... (host sees it)" test "$(cat "$T/rvol/f")" = v
    check "real: exit status 3" 3 "" "" rs exec --name r1 -- sh -c 'exit 3'
    check "real: killed by SIGKILL is 137" 137 "" "" rs exec --name r1 -- sh -c 'kill -9 $$'
    check "real: stdout then stderr" 0 "out
err" "" sh -c "'$real' machine exec --name r1 -- sh -c 'echo err >&2; echo out' 2>&1"
    check "real: runuser -l node" 0 "node /home/node" "" rs exec --name r1 -- runuser -l node -c 'echo $(id -un) $HOME'
    check "real: spawn failure" 1 "" \
        "Error: agent operation failed: vm exec: failed to spawn command: No such file or directory (os error 2)" \
        rs exec --name r1 -- no-such-cmd
    check "real: -i passes stdin" 0 "piped" "" sh -c "echo piped | '$real' machine exec --name r1 -i -- cat"
    check "real: without -i stdin is empty" 0 "" "" sh -c "echo piped | '$real' machine exec --name r1 -- cat"
    check "real: -t gives a pty" 0 "/dev/pts/0" "" sh -c "'$real' machine exec --name r1 -t -- tty </dev/null | tr -d '\r'"
    check "real: bare --timeout: 124, output kept, nothing added" 124 "before" "" \
        rs exec --name r1 --timeout 1s -- sh -c 'echo before; sleep 5'

    check "real: over 11534336 bytes buffered is an error" 1 "" \
        "Error: agent operation failed: vm exec: command output exceeded 11534336 bytes and was truncated. Use streaming exec (exec_stream / execStream) for large output." \
        rs exec --name r1 -- head -c 20000000 /dev/zero
    rs exec --name r1 --stream -- head -c 20000000 /dev/zero >"$T/rbig" 2>"$T/rbig.err"
    rc=$?
    expect "real: --stream stops at the same cap (rc $rc, $(stat -c %s "$T/rbig") bytes)" \
        test "$rc" = 1 -a "$(stat -c %s "$T/rbig")" = 11534336
    expect "  ... saying so" grep -qx "error: streaming output exceeded 11534336 byte cap; exec terminated (output truncated)" "$T/rbig.err"
    rs exec --name r1 -i -- sh -c 'head -c 20000000 /dev/zero; echo end >&2' <"$T/rvol/f" >"$T/rbig" 2>"$T/rbig.err"
    rc=$?
    expect "real: -i streams 20 MB uncapped (rc $rc, $(stat -c %s "$T/rbig") bytes)" \
        test "$rc" = 0 -a "$(stat -c %s "$T/rbig")" = 20000000 -a "$(cat "$T/rbig.err")" = end
    rm -f "$T/rbig"

    # A killed client: the bare agent kills the command's process group;
    # the login shell of runuser -l is in a session of its own and lives on.
    env --default-signal "$real" machine exec --name r1 -- runuser -l node -c 'sleep 4331' &
    pid=$!
    # "^sleep": the smolvm client's own argv holds "sleep 4331" too.
    for _ in $(seq 50); do pgrep -f "^sleep 433[1]" >/dev/null && break; sleep 0.1; done
    kill -9 "$pid"
    wait "$pid" 2>/dev/null
    sleep 0.3
    check "real: a killed client leaves runuser's setsid shell running" 0 "node sleep 4331" "" \
        rs exec --name r1 -- sh -c 'ps -o user=,args= -C sleep | grep 4331 | tr -s " "'
    check "  ... and a later exec sees it with pgrep" 0 '*' "" rs exec --name r1 -- pgrep -f 'sleep 4331'

    printf 'copied\n' >"$T/rin"
    check "real: cp in with --mode/--uid/--gid" 0 "" '*' rs cp --mode 640 --uid 1000 --gid 1000 "$T/rin" r1:/home/node/in.txt
    check "  ... owner and mode" 0 "node:node 640 copied" "" \
        rs exec --name r1 -- sh -c 'echo $(stat -c "%U:%G %a" /home/node/in.txt) $(cat /home/node/in.txt)'
    check "real: cp out" 0 "" '*' rs cp r1:/home/node/in.txt "$T/rout"
    expect "  ... same content" cmp -s "$T/rin" "$T/rout"

    check "real: stop" 0 '*' "" rs stop --name r1
    expect "  ... kills every guest process" sh -c '! pgrep -f "sleep 433[1]" >/dev/null'
    expect "  ... and the boot process" sh -c "! pgrep -f '$BOTTLE_REAL_SMOLVM_HOME/.*[_]boot-vm' >/dev/null"
    check "real: exec on a stopped machine" 1 "" "$(not_running r1)" rs exec --name r1 -- true
    check "real: exec on a missing machine" 1 "" "Error: vm not found: nope" rs exec --name nope -- true
    rs start --name r1 >/dev/null 2>&1
    check "real: the root filesystem survives stop/start" 0 "copied" "" rs exec --name r1 -- cat /home/node/in.txt

    # Eight connections are served at once; a ninth waits for a free one.
    for _ in $(seq 8); do rs exec --name r1 -- sleep 2 & done
    sleep 0.5
    start=$(date +%s%N)
    rs exec --name r1 -- true
    ms=$((($(date +%s%N) - start) / 1000000))
    wait
    expect "real: a ninth concurrent exec waits for a slot (${ms} ms)" test "$ms" -ge 800

    check "real: create an --image machine" 0 '*' "" rs create --name r2 --net --image node:22
    check "  ... start" 0 '*' '*' rs start --name r2
    check "real: image --timeout: 124, timeout line on stderr" 124 "before" "
command timed out after 1000ms" rs exec --name r2 --timeout 1s -- sh -c 'echo before; sleep 5'

    check "real: delete" 0 '*' "" rs delete --name r1 -f
    check "real: delete the image machine" 0 '*' "" rs delete --name r2 -f
    check "real: ls is empty" 0 "[]" "" rs ls --json
    expect "  ... and no boot process is left" sh -c "! pgrep -f '$BOTTLE_REAL_SMOLVM_HOME/.*[_]boot-vm' >/dev/null"
    rm -rf "$BOTTLE_REAL_SMOLVM_HOME"
}

if [ -x "$smolvm_bin" ]; then
    real_section
elif [ -n "${CI:-}" ]; then
    fail "real smolvm missing at $smolvm_bin (CI is set, so this is a failure)"
else
    echo "# NOT RUN: real smolvm missing at $smolvm_bin"
fi
