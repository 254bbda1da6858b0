# shellcheck shell=sh
# The end-to-end story of the tutorial's cluster, told from a client of the VIP. Sourced (POSIX
# sh) by vagrant/verify (three VMs, commands through `vagrant ssh`) and by tests/lab/e2e (QEMU
# lab, network namespaces, `ip netns exec`), so CI runs the same story the Vagrant lab tells.
#
# The caller defines:
#   on NODE COMMAND...   runs COMMAND as root on NODE (director, rs1 or rs2); arguments must not
#                        hold spaces or shell characters (vagrant ssh -c joins them)
#   client_get URL       one HTTP GET from the client, bounded by CLIENT_TIMEOUT seconds;
#                        prints the body, fails on any error
# and sets:
#   PROVISION            the provisioning scripts' folder as the nodes see it
#   VIP                  the virtual IP
#   MARGIN_MS            what every bound allows beyond the configuration's own figures
#   CLIENT_TIMEOUT       seconds per request
# Bounds are derived from the director's configuration, read with `on director`.

RUN_K=${RUN_K:-8}   # consecutive answers that make a verdict
PASSED=0
FAILED=0

say() { printf 'story: %s\n' "$*"; }
pass() { PASSED=$((PASSED + 1)); say "PASS: $*"; }
fail() {
    FAILED=$((FAILED + 1))
    say "FAIL: $*"
    say "--- ipvsadm -Ln on the director"
    on director ipvsadm -Ln 2>&1 | sed 's/^/    /'
    say "--- lvs-hc log on the director (last 60 lines)"
    on director sh "$PROVISION/director.sh" log 2>&1 | tail -n 60 | sed 's/^/    /'
}

# Milliseconds on a monotonic clock (seconds precision where /proc/uptime is missing).
now_ms() {
    if [ -r /proc/uptime ]; then
        awk '{ printf "%d\n", $1 * 1000 }' /proc/uptime
    else
        echo $(($(date +%s) * 1000))
    fi
}

# 1234 -> 1.2s
secs() { awk -v m="$1" 'BEGIN { printf "%.1fs", m / 1000 }'; }

# A duration as written in the configuration ("1s", "500ms", "1m30s") in milliseconds.
dur_ms() {
    printf '%s\n' "$1" | awk '{
        s = $0; total = 0
        while (match(s, /^[0-9.]+(ms|s|m|h)/)) {
            part = substr(s, 1, RLENGTH); s = substr(s, RLENGTH + 1)
            n = part + 0; u = part; sub(/^[0-9.]+/, "", u)
            total += n * (u == "ms" ? 1 : u == "s" ? 1000 : u == "m" ? 60000 : 3600000)
        }
        if (s != "") exit 1
        printf "%d\n", total
    }'
}

# The first value of KEY in the configuration text $CONF_TEXT, quotes and comments removed.
conf_value() {
    printf '%s\n' "$CONF_TEXT" | sed -n "s/^$1 *= *\"\{0,1\}\([^\" #]*\)\"\{0,1\}.*/\1/p" | head -n 1
}

# Reads the director's configuration and derives every bound from it.
story_bounds() {
    CONF_TEXT=$(on director cat "${DIRECTOR_CONF:-/etc/lvs-hc/lvs-hc.toml}")
    interval=$(dur_ms "$(conf_value interval)")
    failing=$(conf_value failing_interval)
    if [ -n "$failing" ]; then failing=$(dur_ms "$failing"); else failing=$interval; fi
    timeout=$(conf_value timeout)
    if [ -n "$timeout" ]; then timeout=$(dur_ms "$timeout"); else timeout=$((interval < 2000 ? interval : 2000)); fi
    fall=$(conf_value fall)
    rise=$(conf_value rise)
    resync=$(conf_value resync_interval)
    if [ -n "$resync" ]; then resync=$(dur_ms "$resync"); else resync=5000; fi
    # A server leaves at most fall x interval + timeout after it died; it returns at most
    # rise x failing_interval + timeout after it came back; drift is repaired at the next resync.
    OUT_MS=$((fall * interval + timeout + MARGIN_MS))
    BACK_MS=$((rise * failing + timeout + MARGIN_MS))
    REPAIR_MS=$((resync + MARGIN_MS))
    say "configuration: interval $(secs "$interval"), failing_interval $(secs "$failing"), timeout $(secs "$timeout"), fall $fall, rise $rise, resync_interval $(secs "$resync")"
    say "bounds: out fall x interval + timeout + margin = $(secs "$OUT_MS"); back rise x failing_interval + timeout + margin = $(secs "$BACK_MS"); repair resync_interval + margin = $(secs "$REPAIR_MS") (margin $(secs "$MARGIN_MS"))"
}

# One answer through the VIP, or "-" when the request failed.
vip_answer() { client_get "http://$VIP/" 2>/dev/null || echo -; }

# await_answers SET LIMIT_MS [any]: asks the VIP until RUN_K consecutive answers are all in SET
# (words separated by |, e.g. "server-1|server-2") and, unless "any" is given, every word of SET
# was seen among them. Sets WAITED_MS to when that run started (since the caller's T0) and SEEN
# to its answers; fails when LIMIT_MS pass first.
#
# "any" is for the steps after servers came back: IPVS brings a re-added server back with the
# connection counts it had (its removed entry waits in a trash list while connections refer to
# it), and a connection cut by a dying server stays ESTABLISHED for 15 minutes on a DR director,
# which sees only the client's half. wlc may then send every new connection to the other server
# for a while: correct, but no ground for a verdict about both.
await_answers() {
    set_="|$1|"
    limit=$2
    need_all=1
    [ "${3:-}" = any ] && need_all=0
    run=0
    run_start=0
    SEEN=
    while :; do
        t=$(now_ms)
        a=$(vip_answer)
        case $set_ in
            *"|$a|"*)
                if [ "$run" = 0 ]; then run_start=$t; SEEN=; fi
                run=$((run + 1))
                SEEN="$SEEN $a"
                ;;
            *) run=0 ;;
        esac
        if [ "$run" -ge "$RUN_K" ] && { [ "$need_all" = 0 ] || all_seen "$1"; }; then
            WAITED_MS=$((run_start - T0))
            [ "$WAITED_MS" -ge 0 ] || WAITED_MS=0
            return 0
        fi
        [ $((t - T0)) -lt "$limit" ] || return 1
        sleep 0.1
    done
}

all_seen() {
    for w in $(printf '%s\n' "$1" | tr '|' ' '); do
        case " $SEEN " in *" $w "*) ;; *) return 1 ;; esac
    done
}

# Answers seen, counted: "server-1 x5, server-2 x3".
tally() { printf '%s\n' "$SEEN" | tr ' ' '\n' | grep -v '^$' | sort | uniq -c | awk '{ printf "%s%s x%d", (NR == 1 ? "" : ", "), $2, $1 }'; }

# await_table LIMIT_MS WANT...: reads the director's table (ipvsadm -Ln) until every WANT holds:
# +ADDR (a real server ADDR:port is in) or -ADDR (it is out). Sets TABLE_MS to when it first held
# (since the caller's T0); fails when LIMIT_MS pass first.
await_table() {
    limit=$1
    shift
    while :; do
        t=$(now_ms)
        table=$(on director ipvsadm -Ln)
        ok=1
        for want in "$@"; do
            case $want in
                +*) printf '%s\n' "$table" | grep -q -- "-> ${want#+}:" || ok=0 ;;
                -*) printf '%s\n' "$table" | grep -q -- "-> ${want#-}:" && ok=0 ;;
            esac
        done
        if [ "$ok" = 1 ]; then
            TABLE_MS=$((t - T0))
            [ "$TABLE_MS" -ge 0 ] || TABLE_MS=0
            return 0
        fi
        [ $((t - T0)) -lt "$limit" ] || return 1
        sleep 0.2
    done
}

# check WHAT BOUND_MS ANSWERS TABLE-WANT...: after the caller changed something (a command run
# between T_BEFORE and T0), the
# director's table must reach TABLE-WANT and the client must then get RUN_K answers in ANSWERS
# ("any" appended: not necessarily each of them), both within BOUND_MS.
check() {
    what=$1
    bound=$2
    answers=$3
    shift 3
    if ! await_table "$((bound * 3))" "$@"; then
        fail "$what: the table is not $* after $(secs $((bound * 3))) (bound $(secs "$bound"))"
        return
    fi
    mode=
    case $answers in *" any") mode=any answers=${answers% any} ;; esac
    if ! await_answers "$answers" "$((bound * 3))" ${mode:+"$mode"}; then
        fail "$what: the table changed after $(secs "$TABLE_MS"), but the client does not see only $answers (last answers:$SEEN)"
        return
    fi
    # The change happened while the command ran (between T_BEFORE and T0): the delays are from
    # its end, and at most the command's own duration more.
    took=$((T0 - T_BEFORE))
    figures="after $(secs "$TABLE_MS"), the client sees it after $(secs "$WAITED_MS") (bound $(secs "$bound"); the command itself took $(secs "$took"))"
    if [ "$TABLE_MS" -le "$bound" ] && [ "$WAITED_MS" -le "$bound" ]; then
        pass "$what $figures: $(tally)"
    else
        fail "$what $figures: over the bound"
    fi
}

RS1_ADDR=${VIP%.*}.179
RS2_ADDR=${VIP%.*}.180

# Each step: what the tutorial wants, the measured figures (the kernel table read on the
# director, and the client's view), the bound.
step_both_answer() {
    T0=$(now_ms)
    if await_answers "server-1|server-2" "$((MARGIN_MS + 10000))"; then
        pass "both servers answer through the VIP ($(tally))"
    else
        fail "both servers do not answer through the VIP (last answers:$SEEN)"
    fi
}

step_rs1_dies() {
    T_BEFORE=$(now_ms)
    on rs1 sh "$PROVISION/realserver.sh" web-stop
    T0=$(now_ms)
    check "rs1's web server stopped: rs1 out of the table" "$OUT_MS" "server-2" "-$RS1_ADDR"
}

step_both_die() {
    T_BEFORE=$(now_ms)
    on rs2 sh "$PROVISION/realserver.sh" web-stop
    T0=$(now_ms)
    check "rs2's web server stopped too: the fallback in, rs2 out" "$OUT_MS" "director" \
        +127.0.0.1 "-$RS2_ADDR"
}

step_rs1_returns() {
    T_BEFORE=$(now_ms)
    on rs1 sh "$PROVISION/realserver.sh" web-start
    T0=$(now_ms)
    check "rs1's web server started: rs1 back, the fallback out" "$BACK_MS" "server-1" \
        "+$RS1_ADDR" -127.0.0.1
    # rs2 too, for the steps that follow (see await_answers for why the client may not see it
    # at once).
    T_BEFORE=$(now_ms)
    on rs2 sh "$PROVISION/realserver.sh" web-start
    T0=$(now_ms)
    check "rs2's web server started: rs2 back" "$BACK_MS" "server-1|server-2 any" \
        "+$RS1_ADDR" "+$RS2_ADDR" -127.0.0.1
}

step_table_flushed() {
    # Without the service, the director's own web server answers the VIP: "director".
    T_BEFORE=$(now_ms)
    on director ipvsadm -C
    T0=$(now_ms)
    check "ipvsadm -C by hand: repaired" "$REPAIR_MS" "server-1|server-2 any" \
        "+$RS1_ADDR" "+$RS2_ADDR" -127.0.0.1
}

# A client loops on the VIP while lvs-hc stops and starts again: no request may fail. The
# loop's results go to $1 (a scratch file on the checking side).
step_restart() {
    scratch=$1
    rm -f "$scratch.stop" "$scratch.log"
    (
        while [ ! -f "$scratch.stop" ]; do
            vip_answer >> "$scratch.log"
        done
    ) &
    loop=$!
    sleep 1
    T0=$(now_ms)
    on director sh "$PROVISION/director.sh" daemon-stop
    stopped=$(now_ms)
    sleep 1
    on director sh "$PROVISION/director.sh" daemon-start
    up=$(now_ms)
    sleep 2
    touch "$scratch.stop"
    wait "$loop"
    total=$(wc -l < "$scratch.log" | tr -d ' ')
    failed=$(grep -c '^-$' "$scratch.log")
    SEEN=$(grep -v '^-$' "$scratch.log" | tr '\n' ' ')
    what="lvs-hc restarted (down $(secs $((up - stopped))), stop and start took $(secs $((up - T0)))) under a client loop: $failed of $total requests failed ($(tally))"
    if [ "$failed" = 0 ] && [ "$total" -ge 5 ]; then pass "$what"; else fail "$what"; fi
    rm -f "$scratch.stop" "$scratch.log"
}

# A reload with a broken file: refused, still serving, the error in the log and in /status.
# $1: the broken file as the director sees it; the error must mention $2.
step_broken_reload() {
    ok=1
    out=$(on director sh "$PROVISION/director.sh" reload-with "$1" 2>&1) && {
        ok=0
        say "the reload of a broken file succeeded: $out"
    }
    case $out in *"$2"*) ;; *) ok=0; say "lvs-hc reload did not name \`$2\`: $out" ;; esac
    on director sh "$PROVISION/director.sh" log | grep -q "reload.*$2" || {
        ok=0
        say "the log does not hold the reload error"
    }
    status=$(on director sh "$PROVISION/director.sh" status)
    err=$(printf '%s\n' "$status" | grep '"config_error"')
    case $err in *"$2"*) ;; *) ok=0; say "/status has no config_error naming \`$2\`: $err" ;; esac
    T0=$(now_ms)
    if ! await_answers "server-1|server-2" "$((MARGIN_MS + 5000))" any; then
        ok=0
        say "not serving after the broken reload (last answers:$SEEN)"
    fi
    if [ "$ok" = 1 ]; then
        pass "a reload with a broken file is refused (\"$(printf '%s\n' "$out" | grep -m 1 -o "[^ ]*$2.*" | cut -c 1-90)\"); still serving ($(tally)); the error is in the log and in /status"
    else
        fail "a reload with a broken file"
    fi
    if on director sh "$PROVISION/director.sh" restore-config >/dev/null &&
        on director sh "$PROVISION/director.sh" status | grep -q '"config_error": null'; then
        pass "the good file reloaded: /status has no configuration error"
    else
        fail "the good file did not reload cleanly"
    fi
}

# rs1's weight in the director's table, or "-" when it is not there.
rs1_weight() {
    on director ipvsadm -Ln | awk -v a="$RS1_ADDR:" '$1 == "->" && index($2, a) == 1 { print $4; found = 1 } END { if (!found) print "-" }'
}

# rs1's configured weight, from the director's configuration (the first server's).
rs1_configured() {
    printf '%s\n' "$CONF_TEXT" | awk -v a="$RS1_ADDR:" '
        /^address/ && index($0, a) { hit = 1; next }
        hit && /^weight/ { sub(/#.*/, ""); gsub(/[^0-9]/, ""); print; exit }
        /^\[/ { hit = 0 }'
}

# The operator's story: drain rs1 for patching, patch it (its web server stops and starts),
# restart lvs-hc meanwhile, enable it, and watch it ramp up (slow_start). The table at each step.
step_operator_story() {
    full=$(rs1_configured)
    [ -n "$full" ] || full=1
    ramp=$(conf_value slow_start)
    if [ -n "$ramp" ]; then ramp_ms=$(dur_ms "$ramp"); else ramp_ms=0; fi
    drain=8s
    drain_ms=$(dur_ms "$drain")
    say "operator story: rs1 (weight $full) drained, patched and enabled; slow_start ${ramp:-none}"
    T_BEFORE=$(now_ms)
    out=$(on director sh "$PROVISION/director.sh" server drain "$RS1_ADDR:80" kernel-patching "$drain" 2>&1) ||
        { fail "lvs-hc server drain failed: $out"; return; }
    T0=$(now_ms)
    say "lvs-hc server drain: $out"
    # The command returns once the daemon has the change; the table follows within moments.
    while :; do
        w=$(rs1_weight)
        [ "$w" = 0 ] && break
        [ $(($(now_ms) - T0)) -lt "$REPAIR_MS" ] || break
        sleep 0.1
    done
    zero_ms=$(($(now_ms) - T0))
    if [ "$w" = 0 ] && await_answers "server-2" "$((MARGIN_MS + 5000))"; then
        pass "drain: rs1 at weight 0 after $(secs "$zero_ms"), the client sees only server-2 ($(tally))"
    else
        fail "drain: rs1 at weight $w, answers:$SEEN"
    fi
    say "table while draining:"
    on director ipvsadm -Ln | sed 's/^/    /'
    if await_table "$((drain_ms + REPAIR_MS * 2))" "-$RS1_ADDR"; then
        pass "drain: rs1 out after $(secs "$TABLE_MS") (drain timeout $drain, or its connections ended)"
    else
        fail "drain: rs1 still in after $(secs $((drain_ms + REPAIR_MS * 2)))"
    fi
    # Patching: its web server stops and starts again; the operator's drain holds throughout.
    on rs1 sh "$PROVISION/realserver.sh" web-stop
    sleep $(((OUT_MS + 999) / 1000))
    st=$(on director sh "$PROVISION/director.sh" status-text)
    line=$(printf '%s\n' "$st" | grep -F "$RS1_ADDR:80" | head -n 1)
    case $line in
        *drain*admin*kernel-patching*down* | *down*drain*admin*kernel-patching*)
            pass "patching: status shows rs1 drained by admin and down: $(printf '%s' "$line" | tr -s ' ')" ;;
        *) fail "patching: status does not show the drain and the health: $line" ;;
    esac
    on rs1 sh "$PROVISION/realserver.sh" web-start
    on director sh "$PROVISION/director.sh" daemon-stop
    on director sh "$PROVISION/director.sh" daemon-start
    sleep $(((BACK_MS + REPAIR_MS + 999) / 1000))
    w=$(rs1_weight)
    st=$(on director sh "$PROVISION/director.sh" status-text | grep -F "$RS1_ADDR:80" | head -n 1)
    case $w:$st in
        -:*drain*up*)
            pass "patched and lvs-hc restarted: rs1 up and still out (the drain was kept across the restart): $(printf '%s' "$st" | tr -s ' ')" ;;
        *) fail "after the restart rs1 is at weight $w: $st" ;;
    esac
    say "table before enable:"
    on director ipvsadm -Ln | sed 's/^/    /'
    T_BEFORE=$(now_ms)
    out=$(on director sh "$PROVISION/director.sh" server enable "$RS1_ADDR:80" 2>&1) ||
        { fail "lvs-hc server enable failed: $out"; return; }
    T0=$(now_ms)
    say "lvs-hc server enable: $out"
    # The weights seen while it ramps: from below full (1) up to full, never down, never above.
    seen=
    last=-
    while :; do
        t=$(now_ms)
        w=$(rs1_weight)
        if [ "$w" != "$last" ]; then
            seen="$seen $w@$(secs $((t - T0)))"
            last=$w
            say "  rs1 weight $w after $(secs $((t - T0))):"
            on director ipvsadm -Ln | grep -F -e "$RS1_ADDR:" -e "$RS2_ADDR:" | sed 's/^/    /'
        fi
        [ "$w" = "$full" ] && break
        [ $((t - T0)) -lt $((ramp_ms + REPAIR_MS + MARGIN_MS)) ] || break
        sleep 0.2
    done
    weights=$(printf '%s\n' "$seen" | tr ' ' '\n' | sed -n 's/@.*//p')
    ok=1
    prev=0
    for w in $weights; do
        [ "$w" = - ] && continue
        { [ "$w" -ge "$prev" ] && [ "$w" -le "$full" ]; } || ok=0
        prev=$w
    done
    [ "$last" = "$full" ] || ok=0
    first=$(printf '%s\n' "$weights" | grep -v '^-$' | head -n 1)
    if [ "$ramp_ms" -gt 0 ] && [ "$full" -gt 1 ] && [ "${first:-$full}" -ge "$full" ]; then ok=0; fi
    if [ "$ok" = 1 ]; then
        pass "enable: rs1 back and ramped to weight $full (slow_start ${ramp:-none}): weights$seen"
    else
        fail "enable: rs1's weights$seen (full $full, slow_start ${ramp:-none})"
    fi
}

# The pass/fail summary; its status is the story's result.
story_summary() {
    say "$PASSED passed, $FAILED failed"
    [ "$FAILED" = 0 ]
}
