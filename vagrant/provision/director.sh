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
# One of a pair (LVS_HC_PAIR=1 at `provision`, remembered for the commands that follow; Vagrant's
# director and director2; systemd only): keepalived in VRRP-only mode moves the VIP between the
# two (to the director whenever it is up: its priority is higher), the configuration has no
# `[director] interface` and a `[sync]` on the lab's interface instead, and lvs-hc runs the
# kernel's connection sync daemons. Then also:
#   director.sh link-down     the lab's interface down: the story's crashed director (VRRP,
#                             sync and probes stop; `vagrant ssh` comes in by the other one)
#   director.sh link-up       and up again          director.sh lab-mac   its MAC address
#   director.sh vrrp-log      keepalived's journal  director.sh pair-state   the interface, the
#                             table, the sync daemons and both logs' ends (for a failed step)
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
# Present on a director of a pair: `provision` leaves it (LVS_HC_PAIR=1) or removes it.
PAIR_MARK=$LVS_HC_PREFIX/etc/lvs-hc/lab-pair
KEEPALIVED_CONF=$LVS_HC_PREFIX/etc/keepalived/keepalived.conf
# keepalived's priorities: the director is the master whenever it is up.
PRIORITY_DIRECTOR=150
PRIORITY_DIRECTOR2=100

install_config() {
    mkdir -p "$(dirname "$CONF")"
    if [ -f "$PAIR_MARK" ]; then
        iface=$(lab_iface)
        sed "s/192\.168\.0\./$LVS_HC_NET./g" "$LVS_HC_CONFIG_SRC" | pair_config "$iface" > "$CONF.new"
    else
        sed "s/192\.168\.0\./$LVS_HC_NET./g" "$LVS_HC_CONFIG_SRC" > "$CONF.new"
    fi
    lvs-hc check --config "$CONF.new" >/dev/null || die "$LVS_HC_CONFIG_SRC does not load"
    mv "$CONF.new" "$CONF"
}

# The configuration on stdin made one of a pair's: its [director] table left out (VRRP owns the
# VIP: nothing may put it on an interface) and a [sync] table on the lab's interface $1.
pair_config() {
    awk -v iface="$1" '
        /^\[director\]/ {
            skip = 1
            print "# [director] left out: one of a pair of directors (vagrant/, LVS_HC_DIRECTOR2=1), whose"
            print "# VIP keepalived moves (VRRP only, /etc/keepalived/keepalived.conf)."
            print ""
            next
        }
        skip && /^\[/ { skip = 0 }
        !skip { print }
        END {
            print ""
            print "# One of a pair of directors: lvs-hc keeps the IPVS connection sync daemons running,"
            print "# master and backup on each director (the default role), so that the director taking the"
            print "# VIP knows the connections the other one forwarded."
            print "[sync]"
            print "interface = \"" iface "\""
            print "sync_id = 1"
        }'
}

# This machine's address on the lab: the director's, or director2's.
own_dip() {
    for a in "$DIP" "$DIP2"; do
        if [ -n "$(iface_of "$a")" ]; then
            echo "$a"
            return
        fi
    done
}

# The interface holding this director's lab address (eth1 in Vagrant's machines).
lab_iface() {
    me=$(own_dip)
    [ -n "$me" ] || die "no interface holds the director's address $DIP (nor director2's $DIP2)"
    iface_of "$me"
}

setup_director() {
    if [ -f "$PAIR_MARK" ]; then
        setup_pair_member
        return
    fi
    iface=$(iface_of "$DIP")
    [ -n "$iface" ] || die "no interface holds the director's address $DIP"
    mkdir -p "$STATE_DIR"
    lvs-hc setup director --config "$CONF" --interface "$iface" --state-dir "$STATE_DIR"
}

# One of a pair: `lvs-hc setup director` without --interface (VRRP owns the VIP). An lvs-hc whose
# setup knows [sync] does what a pair needs; one that does not asks for an interface for the
# VIPs, which is all it would do with this configuration (direct routing, no NAT, no via_vip),
# so that refusal is no error here.
setup_pair_member() {
    mkdir -p "$STATE_DIR"
    if out=$(lvs-hc setup director --config "$CONF" --state-dir "$STATE_DIR" 2>&1); then
        [ -z "$out" ] || printf '%s\n' "$out"
        return
    fi
    case $out in
        *"no interface for the virtual IPs"*)
            log "lvs-hc setup director skipped: this lvs-hc's setup wants an interface for the VIPs, which keepalived holds here" ;;
        *)
            printf '%s\n' "$out" >&2
            die "lvs-hc setup director failed" ;;
    esac
}

# keepalived in VRRP-only mode (--vrrp; no virtual_server, no lvs_sync_daemon): it moves the VIP
# between the directors and does nothing else. Restarted only when its configuration changed: a
# restart gives the VIP away for a moment.
vrrp_start() {
    iface=$(lab_iface)
    if [ "$(own_dip)" = "$DIP" ]; then
        name=director priority=$PRIORITY_DIRECTOR
    else
        name=director2 priority=$PRIORITY_DIRECTOR2
    fi
    mkdir -p "$(dirname "$KEEPALIVED_CONF")"
    cat > "$KEEPALIVED_CONF.new" <<KEEPALIVED
# $name of the Vagrant lab's pair of directors (vagrant/provision/director.sh). VRRP only: this
# moves the VIP $VIP and nothing else. lvs-hc checks the real servers and keeps the IPVS
# table and the kernel's connection sync daemons on both directors (/etc/lvs-hc/lvs-hc.toml).
global_defs {
    router_id $name
}

vrrp_instance lab {
    # Both start as backups and the priority elects the master: the director ($PRIORITY_DIRECTOR) whenever
    # it is up, director2 ($PRIORITY_DIRECTOR2) otherwise. A backup takes the VIP after 3 x advert_int +
    # skew without adverts, skew = (256 - priority) / 256 x advert_int.
    state BACKUP
    interface $iface
    virtual_router_id 56
    priority $priority
    advert_int 1
    # A director coming back waits this long before it takes the VIP from a lower priority
    # master: its lvs-hc marked the servers down while it was cut off and sees them again within
    # rise x failing_interval + timeout (6s with the seed's probes); until then it would send new
    # connections to its fallback. (keepalived ignores preempt_delay with state MASTER.)
    preempt_delay 10
    virtual_ipaddress {
        $VIP/32 dev $iface
    }
}
KEEPALIVED
    if cmp -s "$KEEPALIVED_CONF.new" "$KEEPALIVED_CONF" && systemctl is-active -q keepalived; then
        rm -f "$KEEPALIVED_CONF.new"
        return
    fi
    mv "$KEEPALIVED_CONF.new" "$KEEPALIVED_CONF"
    # Debian's unit runs `keepalived --dont-fork $DAEMON_ARGS`.
    printf 'DAEMON_ARGS="--vrrp"\n' > /etc/default/keepalived
    systemctl enable -q keepalived
    systemctl restart keepalived
}

# A director that was one of a pair, provisioned alone again: keepalived stops, and the VIP is
# `lvs-hc setup director`'s again.
vrrp_remove() {
    [ -f "$KEEPALIVED_CONF" ] && grep -q 'vagrant/provision/director.sh' "$KEEPALIVED_CONF" || return 0
    systemctl disable -q --now keepalived
    rm -f "$KEEPALIVED_CONF"
    log "keepalived stopped and its configuration removed: this director is no longer one of a pair"
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
        if [ "$LVS_HC_PAIR" = 1 ]; then
            [ "$LVS_HC_INIT" = systemd ] || die "a pair of directors needs systemd (keepalived's unit)"
            need_command keepalived keepalived
            mkdir -p "$(dirname "$PAIR_MARK")"
            : > "$PAIR_MARK"
            if [ "$(own_dip)" = "$DIP" ]; then web_serve director; else web_serve director2; fi
            install_config
            setup_director
            # lvs-hc first: the table and the sync daemons are there before VRRP can elect this
            # director.
            daemon_start
            vrrp_start
            log "director ready, one of a pair: keepalived moves VIP $VIP, lvs-hc running with $CONF ([sync] on $(lab_iface))"
        else
            rm -f "$PAIR_MARK"
            vrrp_remove
            web_serve director
            install_config
            setup_director
            daemon_start
            log "director ready: VIP $VIP, lvs-hc running with $CONF"
        fi
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
    link-down) ip link set "$(lab_iface)" down ;;
    link-up) ip link set "$(lab_iface)" up ;;
    lab-mac) cat "/sys/class/net/$(lab_iface)/address" ;;
    vrrp-log) journalctl -u keepalived --no-pager -n 300 ;;
    pair-state)
        # What a failed step of the pair's story shows of each director.
        iface=$(lab_iface)
        echo "--- $iface: $(ip -o link show "$iface" | grep -o 'state [A-Z]*'), $(ip -o -4 addr show dev "$iface" | awk '{ printf "%s ", $4 }')"
        echo "--- ipvsadm -Ln"
        ipvsadm -Ln
        echo "--- ipvsadm -L --daemon"
        ipvsadm -L --daemon
        echo "--- keepalived (last 12 lines)"
        journalctl -u keepalived --no-pager -n 12 -o short-monotonic
        echo "--- lvs-hc (last 20 lines)"
        journalctl -u lvs-hc --no-pager -n 20 -o short-monotonic
        ;;
    *) die "usage: director.sh provision | daemon-start | daemon-stop | reload | log | status | status-text | server ACTION ADDR [REASON [TIMEOUT]] | reload-with FILE | restore-config | link-down | link-up | lab-mac | vrrp-log | pair-state" ;;
esac
