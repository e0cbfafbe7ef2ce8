# The stand-in's `serve start` (smolvm 1.9.2's HTTP API) and, when the real
# smolvm binary is there, the real `smolvm serve start` in front of the
# stand-in guest, both put through the same checks: every route, the error
# bodies and status codes, SSE, the interactive WebSocket, file transfer,
# the 100 MiB upload cap, adoption of CLI-made machines, and TCP with mutual
# TLS. The expected answers are the real serve's, as measured.
#
# Sourced by selftest.sh, whose helpers (check, expect, pass, fail) and
# variables (T, SMOLVM_STANDIN, here) it uses; not run alone. Needs curl and
# openssl.

serve_repo=$(cd "$here/../.." && pwd)
serve_real_bin=${BOTTLE_REAL_SMOLVM:-$serve_repo/../shared/smolvm-1.9.2/smolvm}

# A free TCP port on the loopback address (and the next one: smolvm's TLS
# serve also listens on port + 1).
free_port() {
    python3 -c '
import socket
while True:
    a = socket.socket(); a.bind(("127.0.0.1", 0)); port = a.getsockname()[1]
    b = socket.socket()
    try:
        b.bind(("127.0.0.1", port + 1))
    except OSError:
        continue
    print(port)
    break'
}

# wait_for CONDITION...: up to 20 s.
wait_for() {
    local i
    for i in $(seq 200); do
        "$@" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

# The JSON body with what varies between runs and machines taken out (the
# pid and resource samples, timestamps, the server version, a background
# pid), compact; anything else as it is.
serve_norm() {
    python3 -c '
import json, re, sys
raw = open(sys.argv[1], "rb").read()
try:
    doc = json.loads(raw)
except ValueError:
    sys.stdout.buffer.write(raw)
    sys.exit()
VOLATILE = {"pid", "cpuSeconds", "cpuMillis", "rssMb", "diskUsedMb", "createdAt",
            "uptime_seconds", "version"}
def clean(v):
    if isinstance(v, dict):
        return {k: clean(x) for k, x in v.items() if k not in VOLATILE}
    if isinstance(v, list):
        return [clean(x) for x in v]
    if isinstance(v, str):
        return re.sub(r"^pid=[0-9]+\n$", "pid=N\n", v)
    return v
doc = clean(doc)
if isinstance(doc, dict) and doc.get("stdoutB64", "").startswith("cGlkPT"):
    doc["stdoutB64"] = "pid=N"
sys.stdout.write(json.dumps(doc, ensure_ascii=False, separators=(",", ":")))' "$1"
}

# req METHOD PATH [CURL ARGS...]: one request to the server under test
# ($api_sock, or $api_url with $api_tls curl arguments); the status goes to
# $T/status, the body to $T/body.
req() {
    local method=$1 path=$2
    shift 2
    if [ -n "${api_url:-}" ]; then
        curl -sS --max-time 60 $api_tls -X "$method" -o "$T/body" -w '%{http_code}' \
            "$api_url$path" "$@" >"$T/status" 2>"$T/curl.err"
    else
        curl -sS --max-time 60 --unix-socket "$api_sock" -X "$method" -o "$T/body" \
            -w '%{http_code}' "http://localhost$path" "$@" >"$T/status" 2>"$T/curl.err"
    fi
}

# api DESC STATUS BODY METHOD PATH [CURL ARGS...]: passes if the status and
# the normalized body are exactly as given ('*' accepts any body).
api() {
    local desc=$1 want_status=$2 want_body=$3
    shift 3
    req "$@"
    local status body
    status=$(cat "$T/status")
    body=$(serve_norm "$T/body" | tr -d '\0')
    if [ "$status" != "$want_status" ]; then
        fail "$api_label: $desc" "status $status, expected $want_status" "body: $body" \
            "curl: $(cat "$T/curl.err")"
    elif [ "$want_body" != '*' ] && [ "$body" != "$want_body" ]; then
        fail "$api_label: $desc" "body:     $body" "expected: $want_body"
    else
        pass "$api_label: $desc"
    fi
}

# post DESC STATUS BODY PATH JSON: api with a JSON request.
post() {
    api "$1" "$2" "$3" POST "/api/v1/machines$4" -H 'content-type: application/json' -d "$5"
}

# ws DESC ARGS...: the WebSocket client against the server under test; its
# stdout (binary frames) in $T/ws.out, stderr (text frames, `closed`) in
# $T/ws.err.
ws() {
    local desc=$1 path=$2
    shift 2
    if "$ws_client" --unix "$api_sock" "ws://localhost/api/v1/machines$path" "$@" \
        >"$T/ws.out" 2>"$T/ws.err"; then
        pass "$api_label: $desc"
    else
        fail "$api_label: $desc" "ws-client failed" "stdout: $(cat "$T/ws.out")" \
            "stderr: $(cat "$T/ws.err")"
    fi
}

ws_has() { grep -qF -- "$2" "$1"; }

# exec_out TEXT: the normalized answer of an exec that printed TEXT and a
# newline, nothing on stderr, and exited 0.
exec_out() {
    printf '{"exitCode":0,"stdout":"%s\\n","stderr":"","stdoutB64":"%s","stderrB64":""}' \
        "$1" "$(printf '%s\n' "$1" | base64 -w0)"
}

# standin_guests [NAME]: the pids of the stand-in serve's guest processes
# (`_api-guest` and its init) of machine NAME, or of any machine, over this
# test's home (other test runs may have guests of their own).
standin_guests() {
    local pid
    for pid in $(pgrep -f "[_]api-guest --name ${1:-.*}\$"); do
        tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null |
            grep -qxF "SMOLVM_STANDIN_HOME=$SMOLVM_STANDIN_HOME" && echo "$pid"
    done
}

# no_zombies: the serve under test has no child left unreaped.
no_zombies() { ! ps -o stat= --ppid "$serve_pid" | grep -q '^Z'; }

fffd=$'\xef\xbf\xbd'
m_info='"cpus":4,"memoryMb":8192,"mounts":[],"ports":[],"network":false,"gpu":false,"cuda":false,"storageGb":20,"overlayGb":10,"forkable":false,"forkpointHeld":false'
exec_fields='`command`, `env`, `secrets`, `workdir`, `timeoutSecs`, `stdin`, `background`'
not_running_spawn='{"error":"agent operation failed: vm exec: failed to spawn command: No such file or directory (os error 2)","code":"INTERNAL_ERROR"}'

# serve_checks CLI...: the checks every serve must pass, against the server
# at $api_sock, with CLI... the smolvm command line of the same machines.
serve_checks() {
    local cli=("$@")

    ## Machines
    api "health" 200 '{"status":"ok","machines":{"total":0,"running":0}}' GET /health
    post "create (labels are ignored)" 200 '{"name":"sv1","state":"created",'"$m_info"'}' "" \
        '{"name":"sv1","labels":{"a":"b"},"env":[{"name":"FROM_CREATE","value":"c"}]}'
    post "create a taken name is 409" 409 '{"error":"machine '"'sv1'"' already exists","code":"CONFLICT"}' "" '{"name":"sv1"}'
    post "create: invalid name is 400" 400 '{"error":"machine name must start with a letter or digit (got: \"-x\")","code":"BAD_REQUEST"}' "" '{"name":"-x"}'
    post "create: '.' in a name" 400 '{"error":"machine name contains invalid character: '"'.'"'","code":"BAD_REQUEST"}' "" '{"name":"a.b"}'
    post "create: a wrong type is axum's 422" 422 'Failed to deserialize the JSON body into the target type: cpus: invalid type: string "x", expected u8 at line 1 column 22' "" '{"name":"x","cpus":"x"}'
    post "create: missing mount source" 400 '{"error":"mount source not found: /nonexistent","code":"BAD_REQUEST"}' "" \
        '{"name":"sv9","mounts":[{"source":"/nonexistent","target":"/w"}]}'
    post "create: relative mount target" 400 '{"error":"mount operation failed: validate guest path: target path on guest should be an absolute directory: w","code":"BAD_REQUEST"}' "" \
        '{"name":"sv9","mounts":[{"source":"/tmp","target":"w"}]}'
    post "create: bad env name" 400 '{"error":"env entry with 2-byte name rejected: env key must start with an ASCII letter or underscore","code":"BAD_REQUEST"}' "" \
        '{"name":"sv9","env":[{"name":"1A","value":"x"}]}'
    post "create: any secret is refused" 400 '{"error":"secret '"'A'"': source kind '"'file'"' is not allowed in scope Untrusted; secret refs may only be resolved on the trusted local host","code":"BAD_REQUEST"}' "" \
        '{"name":"sv9","secrets":{"A":{"from_file":"/x"}}}'
    api "get" 200 '{"name":"sv1","state":"created",'"$m_info"'}' GET /api/v1/machines/sv1
    api "get unknown is 404" 404 '{"error":"machine '"'nope'"' not found","code":"NOT_FOUND"}' GET /api/v1/machines/nope
    api "list" 200 '{"machines":[{"name":"sv1","state":"created",'"$m_info"'}]}' GET /api/v1/machines

    ## Buffered exec
    post "exec boots a created machine, exit code, lossy text, exact base64" 200 \
        '{"exitCode":3,"stdout":"out\n'"$fffd"'","stderr":"err\n","stdoutB64":"b3V0Cv8=","stderrB64":"ZXJyCg=="}' \
        /sv1/exec '{"command":["sh","-c","echo out; printf \"\\377\"; echo err >&2; exit 3"]}'
    api "  ... the machine is running" 200 '{"name":"sv1","state":"running",'"$m_info"'}' GET /api/v1/machines/sv1
    post "exec: request env, not the machine's" 200 \
        '{"exitCode":0,"stdout":"unset 2 /root\n","stderr":"","stdoutB64":"dW5zZXQgMiAvcm9vdAo=","stderrB64":""}' \
        /sv1/exec '{"command":["sh","-c","echo ${FROM_CREATE-unset} $X $HOME"],"env":[{"name":"X","value":"1"},{"name":"X","value":"2"}]}'
    check "  ... while the CLI's exec applies it" 0 "c" "" "${cli[@]}" exec --name sv1 -- sh -c 'echo $FROM_CREATE'
    post "exec: stdin is text" 200 \
        '{"exitCode":0,"stdout":"a\nb","stderr":"","stdoutB64":"YQpi","stderrB64":""}' \
        /sv1/exec '{"command":["cat"],"stdin":"a\nb"}'
    post "exec: no stdin reads end of file" 200 \
        '{"exitCode":0,"stdout":"rc=0\n","stderr":"","stdoutB64":"cmM9MAo=","stderrB64":""}' \
        /sv1/exec '{"command":["sh","-c","cat; echo rc=$?"]}'
    post "exec: killed by SIGKILL is 137" 200 \
        '{"exitCode":137,"stdout":"","stderr":"","stdoutB64":"","stderrB64":""}' \
        /sv1/exec '{"command":["sh","-c","kill -9 $$"]}'
    post "exec: timeoutSecs gives 124, output so far" 200 \
        '{"exitCode":124,"stdout":"before\n","stderr":"","stdoutB64":"YmVmb3JlCg==","stderrB64":""}' \
        /sv1/exec '{"command":["sh","-c","echo before; sleep 5; echo after"],"timeoutSecs":1}'
    post "exec: a setsid child holding the output outlives the reply deadline (timeout + 5 s)" 500 \
        '{"error":"io operation failed: Resource temporarily unavailable (os error 11)","code":"INTERNAL_ERROR"}' \
        /sv1/exec '{"command":["sh","-c","setsid sleep 30 & exit 0"],"timeoutSecs":1}'
    post "exec: workdir" 200 '{"exitCode":0,"stdout":"/tmp\n","stderr":"","stdoutB64":"L3RtcAo=","stderrB64":""}' \
        /sv1/exec '{"command":["pwd"],"workdir":"/tmp"}'
    post "exec: a missing program is a 500" 500 "$not_running_spawn" /sv1/exec '{"command":["/nonexistent"]}'
    post "exec: so is a missing workdir" 500 "$not_running_spawn" /sv1/exec '{"command":["pwd"],"workdir":"/nonexistent"}'
    post "exec: output over 11 MiB is a 500" 500 '{"error":"agent operation failed: vm exec: command output exceeded 11534336 bytes and was truncated. Use streaming exec (exec_stream / execStream) for large output.","code":"INTERNAL_ERROR"}' \
        /sv1/exec '{"command":["head","-c","11534337","/dev/zero"]}'
    post "exec: background returns a pid" 200 '{"exitCode":0,"stdout":"pid=N\n","stderr":"","stdoutB64":"pid=N","stderrB64":""}' \
        /sv1/exec '{"command":["sleep","1"],"background":true}'

    ## The machine lives on between requests, as a VM does
    post "exec: what a command leaves running outlives its request" 200 "$(exec_out started)" \
        /sv1/exec '{"command":["sh","-c","sleep 3001 >/dev/null 2>&1 & echo $! >/tmp/bg.pid; (sleep 0.5; echo late >/tmp/late) >/dev/null 2>&1 & echo started"]}'
    post "  ... a later exec sees it, by its pid" 200 "$(exec_out "sleep 3001")" \
        /sv1/exec '{"command":["sh","-c","kill -0 $(cat /tmp/bg.pid) && ps -o args= -p $(cat /tmp/bg.pid)"]}'
    sleep 1
    api "  ... a later download gets what it wrote" 200 'late' GET /api/v1/machines/sv1/files/tmp/late
    post "  ... a later exec can kill it" 200 "$(exec_out killed)" \
        /sv1/exec '{"command":["sh","-c","p=$(cat /tmp/bg.pid); kill $p; for i in $(seq 50); do s=$(ps -o stat= -p $p); case \"$s\" in Z*|\"\") echo killed; exit;; esac; sleep 0.1; done; echo still $s"]}'

    ## Concurrent requests to one machine
    local started i long=()
    started=$(date +%s%N)
    for i in A B; do
        curl -sS --max-time 60 --unix-socket "$api_sock" -X POST -H 'content-type: application/json' \
            -d '{"command":["sh","-c","sleep 3; echo '$i'"]}' \
            http://localhost/api/v1/machines/sv1/exec >"$T/long.$i" 2>&1 &
        long+=($!)
    done
    post "concurrent: a third request while two long execs run sees both" 200 "$(exec_out 2)" \
        /sv1/exec '{"command":["sh","-c","for i in $(seq 50); do n=$(ps -eo args | grep -cx \"sleep 3\"); [ $n = 2 ] && break; sleep 0.1; done; echo $n"]}'
    expect "  ... and answers while they run" test $((($(date +%s%N) - started) / 1000000)) -lt 2500
    wait "${long[@]}"
    expect "  ... which then answer too" test "$(serve_norm "$T/long.A") $(serve_norm "$T/long.B")" = "$(exec_out A) $(exec_out B)"
    post "exec: user is an unknown field (422)" 422 "Failed to deserialize the JSON body into the target type: user: unknown field \`user\`, expected one of $exec_fields at line 1 column 24" \
        /sv1/exec '{"command":["id"],"user":"node"}'
    post "exec: missing command (422)" 422 'Failed to deserialize the JSON body into the target type: missing field `command` at line 1 column 2' /sv1/exec '{}'
    post "exec: empty command (400)" 400 '{"error":"command cannot be empty","code":"BAD_REQUEST"}' /sv1/exec '{"command":[]}'
    post "exec: broken JSON (400)" 400 'Failed to parse the request body as JSON: command: EOF while parsing a value at line 1 column 11' /sv1/exec '{"command":'
    api "exec: no JSON content type (415)" 415 'Expected request with `Content-Type: application/json`' POST /api/v1/machines/sv1/exec -d '{"command":["true"]}'
    post "exec: secrets are refused" 400 '{"error":"secret '"'A'"': source kind '"'env'"' is not allowed in scope Untrusted; secret refs may only be resolved on the trusted local host","code":"BAD_REQUEST"}' \
        /sv1/exec '{"command":["true"],"secrets":{"A":{"from_env":"HOME"}}}'
    post "exec: bad env name" 400 '{"error":"env entry with 3-byte name rejected: env key must contain only ASCII alphanumeric and underscore","code":"BAD_REQUEST"}' \
        /sv1/exec '{"command":["true"],"env":[{"name":"A=B","value":"x"}]}'
    post "exec: unknown machine is 404" 404 '{"error":"machine '"'nope'"' not found","code":"NOT_FOUND"}' /nope/exec '{"command":["true"]}'

    ## Streaming exec (SSE)
    post "exec/stream: events, lossy, split into lines" 200 \
        "event: stdout
data: a"$'\r'"data: 
data: b$fffd
data: 

event: stderr
data: e
data: 

event: exit
data: {\"exitCode\":2}" \
        /sv1/exec/stream '{"command":["sh","-c","printf \"a\\r\\nb\\377\\n\"; sleep 0.2; echo e >&2; sleep 0.2; exit 2"]}'
    post "exec/stream: a missing program is an error event" 200 \
        'event: error
data: {"message":"Internal("agent operation failed: streaming exec: No such file or directory (os error 2)")"}' \
        /sv1/exec/stream '{"command":["/nonexistent"]}'
    post "exec/stream: timeout" 200 "event: stdout
data: a
data: 

event: exit
data: {\"exitCode\":124}" /sv1/exec/stream '{"command":["sh","-c","echo a; sleep 5"],"timeoutSecs":1}'
    post "exec/stream: unknown field (422)" 422 "Failed to deserialize the JSON body into the target type: user: unknown field \`user\`, expected one of $exec_fields at line 1 column 26" \
        /sv1/exec/stream '{"command":["true"],"user":"x"}'

    ## Files
    printf 'abc\377\000def' >"$T/up.bin"
    api "upload: parents are created" 200 '{"path":"/tmp/up/a/b.bin","size":8}' PUT /api/v1/machines/sv1/files/tmp/up/a/b.bin --data-binary "@$T/up.bin"
    api "download: the same bytes" 200 '*' GET /api/v1/machines/sv1/files/tmp/up/a/b.bin
    expect "  ... byte for byte" cmp -s "$T/up.bin" "$T/body"
    post "  ... mode 644, root, parents 755" 200 '{"exitCode":0,"stdout":"644 root\n755 root\n","stderr":"","stdoutB64":"NjQ0IHJvb3QKNzU1IHJvb3QK","stderrB64":""}' \
        /sv1/exec '{"command":["stat","-c","%a %U","/tmp/up/a/b.bin","/tmp/up/a"]}'
    api "upload replaces an existing file" 200 '{"path":"/tmp/up/a/b.bin","size":2}' PUT /api/v1/machines/sv1/files//tmp/up/a/b.bin --data-binary zz
    api "  ... download" 200 'zz' GET /api/v1/machines/sv1/files/tmp/up/a/b.bin
    api "download a missing file is a 500" 500 '{"error":"agent operation failed: read file: failed to open /tmp/nope: No such file or directory (os error 2)","code":"INTERNAL_ERROR"}' GET /api/v1/machines/sv1/files/tmp/nope
    api "download a directory is a 500" 500 '{"error":"agent operation failed: read file: not a regular file: /tmp","code":"INTERNAL_ERROR"}' GET /api/v1/machines/sv1/files/tmp
    api "upload onto a directory is a 500" 500 '{"error":"agent operation failed: write file: failed to rename onto /tmp: Is a directory (os error 21)","code":"INTERNAL_ERROR"}' PUT /api/v1/machines/sv1/files/tmp --data-binary x
    api "upload with .. is a 500" 500 '{"error":"agent operation failed: write file: invalid guest path /tmp/../x: parent traversal is not allowed","code":"INTERNAL_ERROR"}' PUT '/api/v1/machines/sv1/files/tmp/%2E%2E/x' --data-binary x
    api "files: unknown machine is 404" 404 '{"error":"machine '"'nope'"' not found","code":"NOT_FOUND"}' GET /api/v1/machines/nope/files/etc/hostname
    head -c $((100 * 1024 * 1024)) /dev/urandom >"$T/big.bin"
    api "upload of 100 MiB" 200 '{"path":"/root/big.bin","size":104857600}' PUT /api/v1/machines/sv1/files/root/big.bin --data-binary "@$T/big.bin"
    api "  ... download" 200 '*' GET /api/v1/machines/sv1/files/root/big.bin
    expect "  ... byte for byte" cmp -s "$T/big.bin" "$T/body"
    printf x >>"$T/big.bin"
    api "upload over 100 MiB is 413" 413 'Failed to buffer the request body: length limit exceeded' PUT /api/v1/machines/sv1/files/root/big2.bin --data-binary "@$T/big.bin"
    rm -f "$T/big.bin" "$T/body"

    ## Interactive (WebSocket)
    # Computed output, so that the terminal's echo of the input cannot pass
    # for it (and the shell's prompt may come before it).
    ws "interactive: a pty, output, exit frame" "/sv1/exec/interactive?cmd=sh" \
        --send 'echo out-$((6*7)); [ -t 0 ] && echo tty-$((1+1)); echo err-$((2+2)) >&2; exit 5\n'
    expect "  ... output (stderr too)" sh -c "grep -q 'out-42' '$T/ws.out' && grep -q 'tty-2' '$T/ws.out' && grep -q 'err-4' '$T/ws.out'"
    expect "  ... exit frame" ws_has "$T/ws.err" 'text: {"type":"exit","code":5}'
    ws "interactive: size from the query, then resize" "/sv1/exec/interactive?cmd=sh&cols=100&rows=30" \
        --send 'stty size\n' --expect '30 100' \
        --text '{"type":"resize","cols":120,"rows":40}' --send 'stty size; exit\n' --expect '40 120'
    ws "interactive: JSON stdin text frame" "/sv1/exec/interactive?cmd=sh" --text '{"type":"stdin","data":"echo via-json; exit 6\\n"}'
    expect "  ... exit 6" ws_has "$T/ws.err" 'text: {"type":"exit","code":6}'
    ws "interactive: a Close frame ends the session, no exit frame" "/sv1/exec/interactive?cmd=cat" --send 'abc\n' \
        --expect 'abc\r\nabc\r\n' --close
    expect "  ... echo and cat's copy arrived" test "$(tr -d '\r' <"$T/ws.out")" = "abc
abc"
    expect "  ... no exit frame" sh -c "! grep -q exit '$T/ws.err'"
    ws "interactive: a program with arguments does not run" "/sv1/exec/interactive?cmd=echo%20hi"
    expect "  ... exit -1" ws_has "$T/ws.err" 'text: {"type":"exit","code":-1}'
    "$ws_client" --unix "$api_sock" "ws://localhost/api/v1/machines/nope/exec/interactive?cmd=sh" >"$T/ws.out" 2>"$T/ws.err"
    expect "interactive: unknown machine is a 404 before the upgrade" ws_has "$T/ws.err" 'handshake: 404 {"error":"machine '"'nope'"' not found","code":"NOT_FOUND"}'

    ## Lifecycle, and machines the CLI made
    check "CLI: create a machine while serve runs" 0 '*' '*' "${cli[@]}" create --name sv2
    api "  ... get knows it (the records are shared)" 200 '{"name":"sv2","state":"created",'"$m_info"'}' GET /api/v1/machines/sv2
    post "  ... exec does not (404)" 404 '{"error":"machine '"'sv2'"' not found","code":"NOT_FOUND"}' /sv2/exec '{"command":["true"]}'
    api "  ... nor files" 404 '{"error":"machine '"'sv2'"' not found","code":"NOT_FOUND"}' GET /api/v1/machines/sv2/files/etc/hostname
    api "  ... start adopts it" 200 '{"name":"sv2","state":"running",'"$m_info"'}' POST /api/v1/machines/sv2/start
    post "  ... then exec works" 200 '{"exitCode":0,"stdout":"sv2\n","stderr":"","stdoutB64":"c3YyCg==","stderrB64":""}' /sv2/exec '{"command":["hostname"]}'
    post "  ... and leaves a process running" 200 "$(exec_out started)" \
        /sv2/exec '{"command":["sh","-c","sleep 3002 >/dev/null 2>&1 & echo started"]}'
    local guest
    if [ "$api_label" = serve ]; then
        guest=$(standin_guests sv2)
        expect "  ... in sv2's guest" test -n "$guest"
    fi
    api "start: a malformed query is 400" 400 'Failed to deserialize query string: forkable: provided string was not `true` or `false`' POST '/api/v1/machines/sv2/start?forkable=maybe'
    api "stop" 200 '{"name":"sv2","state":"stopped",'"$m_info"'}' POST /api/v1/machines/sv2/stop
    if [ "$api_label" = serve ]; then
        expect "  ... ends the guest: no _api-guest of sv2 is left" test -z "$(standin_guests sv2)"
        expect "  ... and none unreaped" no_zombies
    fi
    check "  ... the CLI sees it stopped" 0 '*' '*' "${cli[@]}" status --name sv2
    expect "  ... (status says so)" grep -q stopped "$T/out"
    post "exec on a stopped machine boots it silently" 200 '{"exitCode":0,"stdout":"","stderr":"","stdoutB64":"","stderrB64":""}' /sv2/exec '{"command":["true"]}'
    api "  ... running again" 200 '{"name":"sv2","state":"running",'"$m_info"'}' GET /api/v1/machines/sv2
    post "  ... anew: what ran before the stop is gone" 200 "$(exec_out gone)" \
        /sv2/exec '{"command":["sh","-c","ps -eo args | grep -qx \"sleep 3002\" && echo running || echo gone"]}'
    post "a process left running again" 200 "$(exec_out started)" \
        /sv2/exec '{"command":["sh","-c","sleep 3003 >/dev/null 2>&1 & echo started"]}'
    [ "$api_label" = serve ] && guest=$(standin_guests sv2)
    check "  ... CLI: stop the machine while serve runs" 0 '*' '*' "${cli[@]}" stop --name sv2
    post "  ... the next request boots it anew" 200 "$(exec_out gone)" \
        /sv2/exec '{"command":["sh","-c","ps -eo args | grep -qx \"sleep 3003\" && echo running || echo gone"]}'
    api "  ... running" 200 '{"name":"sv2","state":"running",'"$m_info"'}' GET /api/v1/machines/sv2
    if [ "$api_label" = serve ]; then
        expect "  ... the stale guest is gone, and reaped" \
            sh -c 'for p; do ! kill -0 "$p" 2>/dev/null || exit 1; done' sh $guest
        expect "  ... a fresh one serves sv2" test -n "$(standin_guests sv2)"
    fi
    api "stop unknown is 404" 404 '{"error":"machine '"'nope'"' not found","code":"NOT_FOUND"}' POST /api/v1/machines/nope/stop
    api "start unknown is 404" 404 '{"error":"machine '"'nope'"' not found","code":"NOT_FOUND"}' POST /api/v1/machines/nope/start
    api "delete" 200 '{"deleted":"sv2"}' DELETE /api/v1/machines/sv2
    if [ "$api_label" = serve ]; then
        expect "  ... ends its guest" test -z "$(standin_guests sv2)"
        expect "  ... and reaps it" no_zombies
    fi
    api "delete again is 404" 404 '{"error":"machine '"'sv2'"' not found","code":"NOT_FOUND"}' DELETE /api/v1/machines/sv2
    api "delete sv1" 200 '{"deleted":"sv1"}' DELETE /api/v1/machines/sv1
    api "an unknown route is a bare 404" 404 '' GET /api/v1/nothing
    api "a wrong method is a bare 405" 405 '' GET /api/v1/machines/sv1/exec
}

# tls_checks CMD...: CMD starts a serve on 127.0.0.1:$port with the TLS
# variables set (from $tls); each check starts its own.
tls_checks() {
    local start=("$@") d=$T/tls pid
    port=$(free_port)
    # A simple command, so that $! is the server itself.
    env SMOLVM_SERVE_TLS_CERT="$d/server.pem" SMOLVM_SERVE_TLS_KEY="$d/server.key" \
        SMOLVM_SERVE_TLS_CLIENT_CA="$d/ca.pem" "${start[@]}" -l "127.0.0.1:$port" >"$T/tls.log" 2>&1 &
    pid=$!
    if ! wait_for curl -s -o /dev/null "http://127.0.0.1:$((port + 1))/health"; then
        fail "$api_label: TLS serve did not come up" "$(cat "$T/tls.log")"
        kill "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
        return
    fi
    expect "$api_label: TLS: it says so" grep -qF "smolvm API server listening on https://127.0.0.1:$port (mTLS)" "$T/tls.log"
    api_url=https://localhost:$port
    api_tls="--cacert $d/ca.pem --cert $d/client.pem --key $d/client.key"
    api "TLS: a client with a certificate from the CA" 200 '{"status":"ok","machines":{"total":0,"running":0}}' GET /health
    api "TLS: the API" 200 '{"machines":[]}' GET /api/v1/machines
    api_tls="--cacert $d/ca.pem"
    req GET /health
    expect "TLS: a client without a certificate is refused" sh -c "[ \"\$(cat '$T/status')\" = 000 ]"
    api_tls="--cacert $d/ca.pem --cert $d/intruder.pem --key $d/intruder.key"
    req GET /health
    expect "TLS: a certificate from another CA is refused" sh -c "[ \"\$(cat '$T/status')\" = 000 ]"
    api_tls=""
    api_url=http://localhost:$port
    req GET /health
    expect "TLS: plain HTTP is refused" sh -c "[ \"\$(cat '$T/status')\" = 000 ]"
    api_url=http://127.0.0.1:$((port + 1))
    api "TLS: the loopback door on port + 1 has health" 200 '{"status":"ok","machines":{"total":0,"running":0}}' GET /health
    api "  ... but not the API" 404 '' GET /api/v1/machines
    unset api_url api_tls
    kill "$pid"
    wait "$pid" 2>/dev/null

    check "$api_label: TLS required but not configured" 1 '*' \
        "Error: config operation failed: serve tls: SMOLVM_SERVE_REQUIRE_MTLS is set but SMOLVM_SERVE_TLS_CERT/SMOLVM_SERVE_TLS_KEY/SMOLVM_SERVE_TLS_CLIENT_CA are unset — refusing to start without client-cert verification (fail-closed)" \
        env SMOLVM_SERVE_REQUIRE_MTLS=1 "${start[@]}" -l "127.0.0.1:$(free_port)"
    check "$api_label: TLS half configured" 1 '*' \
        "Error: config operation failed: serve tls: incomplete serve TLS config: set all of SMOLVM_SERVE_TLS_CERT, SMOLVM_SERVE_TLS_KEY, SMOLVM_SERVE_TLS_CLIENT_CA (or none)" \
        env SMOLVM_SERVE_TLS_CERT="$d/server.pem" "${start[@]}" -l "127.0.0.1:$(free_port)"
    check "$api_label: a bad listen address" 1 "" \
        "Error: config operation failed: parse listen address: invalid address 'foo:bar': expected a valid ADDR:PORT or a unix:// path" \
        "${start[@]}" -l foo:bar
    port=$(free_port)
    "${start[@]}" -l "0.0.0.0:$port" >"$T/any.log" 2>&1 &
    pid=$!
    wait_for curl -s -o /dev/null "http://127.0.0.1:$port/health"
    kill "$pid"
    wait "$pid" 2>/dev/null
    expect "$api_label: all interfaces without TLS: the warning" grep -qF \
        "WARNING: Server is listening on all interfaces (0.0.0.0)." "$T/any.log"
}

# serve_start CMD...: starts a serve on $api_sock; its pid in $serve_pid.
serve_start() {
    rm -f "$api_sock"
    "$@" -l "unix://$api_sock" >"$T/serve.log" 2>&1 &
    serve_pid=$!
    wait_for test -S "$api_sock" && wait_for curl -s -o /dev/null --unix-socket "$api_sock" http://localhost/health
}

serve_stop() {
    kill "$serve_pid" 2>/dev/null
    wait "$serve_pid" 2>/dev/null
}

serve_section() {
    if ! (cd "$serve_repo" && cargo build -q -p smolvm-standin --example ws-client); then
        fail "serve: cargo build of the WebSocket client failed"
        return
    fi
    ws_client=$(cd "$serve_repo" && cargo metadata --format-version 1 --no-deps |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/debug/examples/ws-client
    mkdir -p "$T/tls" && (
        cd "$T/tls" || exit 1
        ca() { openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
            -subj "/CN=$1" -keyout "$1.key" -out "$1.pem" 2>/dev/null; }
        leaf() { # NAME CA EXTENSIONS
            openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$1" \
                -keyout "$1.key" -out "$1.csr" 2>/dev/null &&
                printf '%s\n' "$3" >"$1.ext" &&
                openssl x509 -req -in "$1.csr" -CA "$2.pem" -CAkey "$2.key" -CAcreateserial \
                    -days 2 -extfile "$1.ext" -out "$1.pem" 2>/dev/null
        }
        ca ca && ca otherca &&
            leaf server ca "subjectAltName=DNS:localhost,IP:127.0.0.1
extendedKeyUsage=serverAuth" &&
            leaf client ca "extendedKeyUsage=clientAuth" &&
            leaf intruder otherca "extendedKeyUsage=clientAuth"
    ) || fail "serve: openssl could not make the test certificates"

    # The stand-in's serve, over its own home (no machines yet).
    echo "# serve: the stand-in's"
    api_label=serve
    api_sock=$T/api.sock
    if ! serve_start "$SMOLVM_STANDIN" serve start; then
        fail "serve: the stand-in's serve did not come up" "$(cat "$T/serve.log")"
        return
    fi
    serve_checks "$SMOLVM_STANDIN" machine
    serve_stop

    # What the real serve takes 300 s for: the request timeout (here 3 s).
    if ! SMOLVM_STANDIN_API_TIMEOUT_SECS=3 serve_start "$SMOLVM_STANDIN" serve start; then
        fail "serve: the stand-in's serve (3 s timeout) did not come up" "$(cat "$T/serve.log")"
        return
    fi
    post "timeout override: a long exec" 200 '*' "" '{"name":"sv3"}'
    start=$(date +%s)
    post "  ... is a bare 408 after the request timeout" 408 '' /sv3/exec \
        '{"command":["sh","-c","sleep 5; echo done > /root/finished"]}'
    expect "  ... after about 3 s" test $(($(date +%s) - start)) -lt 5
    post "  ... while the command runs on, in the machine a later request sees" 200 "$(exec_out running)" \
        /sv3/exec '{"command":["sh","-c","ps -eo args | grep -qx \"sleep 5\" && echo running"]}'
    sleep 3
    post "  ... while the command ran to its end" 200 '{"exitCode":0,"stdout":"done\n","stderr":"","stdoutB64":"ZG9uZQo=","stderrB64":""}' \
        /sv3/exec '{"command":["cat","/root/finished"]}'
    ws "  ... the interactive route has no request timeout" "/sv3/exec/interactive?cmd=sh" --send 'sleep 4; exit 9\n'
    expect "  ... exit 9" ws_has "$T/ws.err" 'text: {"type":"exit","code":9}'
    api "delete sv3" 200 '{"deleted":"sv3"}' DELETE /api/v1/machines/sv3
    post "a machine with a process left running" 200 '*' "" '{"name":"sv4"}'
    post "  ... (the process)" 200 "$(exec_out started)" \
        /sv4/exec '{"command":["sh","-c","sleep 3004 >/dev/null 2>&1 & echo started"]}'
    expect "  ... (its guest)" test -n "$(standin_guests sv4)"
    serve_stop
    expect "serve: the socket is removed on SIGTERM" test ! -e "$api_sock"
    expect "serve: no guest is left: SIGTERM ended the running machine's" test -z "$(standin_guests)"
    check "  ... which stays recorded as running" 0 "Machine 'sv4': running" "" \
        "$SMOLVM_STANDIN" machine status --name sv4
    "$SMOLVM_STANDIN" machine delete --name sv4 -f >/dev/null

    tls_checks "$SMOLVM_STANDIN" serve start

    if [ ! -x "$serve_real_bin" ]; then
        if [ -n "${CI:-}" ]; then
            fail "real smolvm missing at $serve_real_bin (CI is set, so this is a failure)"
        else
            echo "# NOT RUN: real serve (smolvm missing at $serve_real_bin)"
        fi
        return
    fi

    # The real serve in front of the stand-in guest. SMOLVM_DATA_DIR keeps
    # its state in the scratch HOME (as root it would move to
    # /var/lib/smolvm), for the CLI too; its guest rollout listener needs a
    # port of its own.
    echo "# serve: the real one, $serve_real_bin"
    api_label="real serve"
    export BOTTLE_STANDIN=$SMOLVM_STANDIN BOTTLE_REAL_SMOLVM=$serve_real_bin
    export BOTTLE_REAL_SMOLVM_HOME=$serve_repo/target/selftest-serve-home.$$
    export SMOLVM_DATA_DIR=$BOTTLE_REAL_SMOLVM_HOME
    export SMOLVM_GUEST_ROLLOUT_HOST_PORT
    SMOLVM_GUEST_ROLLOUT_HOST_PORT=$(free_port)
    rm -rf "$BOTTLE_REAL_SMOLVM_HOME"
    api_sock=$T/real.sock
    if serve_start "$serve_repo/tests/real-smolvm" serve start; then
        serve_checks "$serve_repo/tests/real-smolvm" machine
        serve_stop
        tls_checks "$serve_repo/tests/real-smolvm" serve start
    else
        fail "real serve did not come up" "$(cat "$T/serve.log")"
        serve_stop
    fi
    for n in $("$serve_repo/tests/real-smolvm" machine ls --json 2>/dev/null |
        python3 -c 'import json,sys; print(" ".join(m["name"] for m in json.load(sys.stdin)))'); do
        "$serve_repo/tests/real-smolvm" machine delete --name "$n" -f >/dev/null 2>&1
    done
    expect "real serve: no boot process is left" sh -c "! pgrep -f '$BOTTLE_REAL_SMOLVM_HOME/.*[_]boot-vm' >/dev/null"
    rm -rf "$BOTTLE_REAL_SMOLVM_HOME"
    unset SMOLVM_DATA_DIR SMOLVM_GUEST_ROLLOUT_HOST_PORT BOTTLE_REAL_SMOLVM_HOME
}

serve_section
