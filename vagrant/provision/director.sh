#!/bin/sh
# The tutorial's director (direct routing):
#
#   director.sh provision     web server answering "director" (the fallback, 127.0.0.1:80), the
#                             configuration in /etc/lvs-hc/lvs-hc.toml, `lvs-hc setup director`,
#                             and lvs-hc started (systemd unit, or a background process)
#   director.sh daemon-start  start lvs-hc          director.sh daemon-stop   stop it (SIGTERM)
#   director.sh reload        `lvs-hc reload`       director.sh log           print its log
#   director.sh status        `lvs-hc status --json`   director.sh status-text   `lvs-hc status`
#   director.sh server ACTION ADDR [REASON [TIMEOUT]]   `lvs-hc server drain|disable|enable`
#   director.sh reload-with FILE   FILE becomes the configuration, unchecked, then `lvs-hc
#                             reload` (its status is this command's): how the story tries a
#                             broken file
#   director.sh restore-config     the configuration installed again from LVS_HC_CONFIG_SRC,
#                             then `lvs-hc reload`
#
# Variables: see lib.sh, and LVS_HC_CONFIG_SRC, the configuration to install (default the
# checkout's examples/seed.toml; its 192.168.0.x addresses are moved to $LVS_HC_NET.x).
# lvs-hc must be installed (install-lvs-hc.sh) before `provision`.
set -eu
# shellcheck source=vagrant/provision/lib.sh
. "$(dirname "$0")/lib.sh"

LVS_HC_SRC=${LVS_HC_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
LVS_HC_CONFIG_SRC=${LVS_HC_CONFIG_SRC:-$LVS_HC_SRC/examples/seed.toml}
CONF=$LVS_HC_PREFIX/etc/lvs-hc/lvs-hc.toml
DAEMON_LOG=$RUN_DIR/lvs-hc.log
# Commands go to the control socket, beside the daemon's lock (/run/lvs-hc/<config stem>.lock).
CONTROL=/run/lvs-hc/$(basename "$CONF" .toml).sock

install_config() {
    mkdir -p "$(dirname "$CONF")"
    sed "s/192\.168\.0\./$LVS_HC_NET./g" "$LVS_HC_CONFIG_SRC" > "$CONF.new"
    lvs-hc check --config "$CONF.new" >/dev/null || die "$LVS_HC_CONFIG_SRC does not load"
    mv "$CONF.new" "$CONF"
}

setup_director() {
    iface=$(iface_of "$DIP")
    [ -n "$iface" ] || die "no interface holds the director's address $DIP"
    mkdir -p "$STATE_DIR"
    lvs-hc setup director --config "$CONF" --interface "$iface" --state-dir "$STATE_DIR"
}

daemon_start() {
    if [ "$LVS_HC_INIT" = systemd ]; then
        unit=$LVS_HC_SRC/dist/lvs-hc.service
        [ -f "$unit" ] || die "$unit is missing"
        cp "$unit" /etc/systemd/system/lvs-hc.service
        systemctl daemon-reload
        systemctl enable -q lvs-hc
        systemctl restart lvs-hc
    else
        mkdir -p "$RUN_DIR"
        daemon_stop
        lvs-hc run --config "$CONF" --log-format text </dev/null >>"$DAEMON_LOG" 2>&1 &
        echo $! > "$RUN_DIR/lvs-hc.pid"
    fi
    wait_for 30 lvs_hc_answers || die "lvs-hc does not answer on its API after 30s"
}

# The client finds the API through `[daemon] api` of the source configuration, not of the
# installed one, which the story replaces with a broken file.
lvs_hc_answers() { lvs-hc status --config "$LVS_HC_CONFIG_SRC" >/dev/null 2>&1; }

daemon_stop() {
    if [ "$LVS_HC_INIT" = systemd ]; then
        systemctl stop lvs-hc
    else
        stop_pidfile "$RUN_DIR/lvs-hc.pid"
    fi
}

case ${1:-} in
    provision)
        # The story reads the table with ipvsadm; lvs-hc itself needs no ipvsadm.
        need_command ipvsadm ipvsadm
        web_serve director
        install_config
        setup_director
        daemon_start
        log "director ready: VIP $VIP, lvs-hc running with $CONF"
        ;;
    daemon-start) daemon_start ;;
    daemon-stop) daemon_stop ;;
    reload) lvs-hc reload --control "$CONTROL" ;;
    status) lvs-hc status --json --config "$LVS_HC_CONFIG_SRC" ;;
    status-text) lvs-hc status --control "$CONTROL" ;;
    server)
        # director.sh server drain|disable|enable ADDR [REASON [TIMEOUT]]
        action=${2:-}
        addr=${3:-}
        reason=${4:-}
        timeout=${5:-}
        if [ -z "$action" ] || [ -z "$addr" ]; then
            die "usage: director.sh server ACTION ADDR [REASON [TIMEOUT]]"
        fi
        set -- "$action" "$addr" --control "$CONTROL"
        if [ -n "$reason" ]; then set -- "$@" --reason "$reason"; fi
        if [ -n "$timeout" ]; then set -- "$@" --timeout "$timeout"; fi
        lvs-hc server "$@"
        ;;
    reload-with)
        [ -f "${2:-}" ] || die "usage: director.sh reload-with FILE"
        cp "$2" "$CONF"
        lvs-hc reload --control "$CONTROL"
        ;;
    restore-config)
        install_config
        lvs-hc reload --control "$CONTROL"
        ;;
    log)
        if [ "$LVS_HC_INIT" = systemd ]; then
            journalctl -u lvs-hc --no-pager -n 300
        else
            cat "$DAEMON_LOG"
        fi
        ;;
    *) die "usage: director.sh provision | daemon-start | daemon-stop | reload | log | status | status-text | server ACTION ADDR [REASON [TIMEOUT]] | reload-with FILE | restore-config" ;;
esac
