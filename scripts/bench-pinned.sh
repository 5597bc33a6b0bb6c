# shellcheck shell=bash
# bench-pinned.sh: sourced by bench-ceiling.sh and bench-monoio.sh — one server at a time, pinned
# to SERVER_CPU and listening on 127.0.0.1:$PORT, under wrk pinned to LOAD_CPU (bench/wrk/decide.lua,
# CONNECTIONS connections, a 2 s warm-up, then DURATION seconds measured).

PINNED_PID=
pinned_stop() {
    if [[ -n "$PINNED_PID" ]]; then
        kill "$PINNED_PID" 2>/dev/null || true
        wait "$PINNED_PID" 2>/dev/null || true
        PINNED_PID=
    fi
}
trap pinned_stop EXIT

# pinned_run CMD...: runs CMD as the server; prints "REQUESTS_PER_S SERVER_CPU_SECONDS" for the
# measured run (CPU of all the server's threads, from /proc).
pinned_run() {
    taskset -c "$SERVER_CPU" "$@" >/dev/null 2>&1 &
    PINNED_PID=$!
    for _ in $(seq 1 50); do curl -s -o /dev/null "http://127.0.0.1:$PORT/" && break; sleep 0.1; done
    taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNECTIONS" -d2s -s bench/wrk/decide.lua "http://127.0.0.1:$PORT" >/dev/null
    local c0 c1 rps
    c0=$(awk '{print $14+$15}' "/proc/$PINNED_PID/stat")
    rps=$(taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" -s bench/wrk/decide.lua \
        "http://127.0.0.1:$PORT" | awk '/^Requests\/sec/{print $2}')
    c1=$(awk '{print $14+$15}' "/proc/$PINNED_PID/stat")
    pinned_stop
    awk -v r="$rps" -v t=$((c1 - c0)) -v hz="$(getconf CLK_TCK)" 'BEGIN{printf "%.0f %.3f\n", r, t / hz}'
}

# The machine line of a report.
pinned_machine() {
    echo "Machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), kernel $(uname -r), $(date -u +%Y-%m-%dT%H:%MZ)."
}
