# shellcheck shell=sh disable=SC2034  # the addresses are for the scripts that source this
# Shared by the provisioning scripts (sourced, POSIX sh). The same files provision the Vagrant
# VMs (Debian 12, nginx, systemd) and the QEMU lab's namespaces (busybox, no init system), so
# the parts that differ are chosen by variables:
#
#   LVS_HC_NET     first three octets of the lab subnet: 192.168.56 (Vagrant, the default) or
#                  192.168.0 (the QEMU lab, the tutorial's own); .178 director, .101 VIP,
#                  .179 RS1, .180 RS2, .177 director2 (the second director of a pair)
#   LVS_HC_PAIR    1: director.sh provisions one of a pair of directors (keepalived's VRRP
#                  moves the VIP, lvs-hc runs the sync daemons); empty (the default): the
#                  only director, holding the VIP itself. Vagrant sets it with LVS_HC_DIRECTOR2=1.
#   LVS_HC_WEB     nginx (the default) or busybox (busybox httpd, started directly)
#   LVS_HC_INIT    systemd (the default) or direct (lvs-hc run started in the background)
#   LVS_HC_PREFIX  prefix of every path these scripts write (empty by default); the QEMU lab
#                  gives each namespace its own, as they share one file system
#   LVS_HC_SRC     the lvs-hc checkout (default: two levels above this file)

LVS_HC_NET=${LVS_HC_NET:-192.168.56}
LVS_HC_WEB=${LVS_HC_WEB:-nginx}
LVS_HC_INIT=${LVS_HC_INIT:-systemd}
LVS_HC_PREFIX=${LVS_HC_PREFIX:-}
LVS_HC_PAIR=${LVS_HC_PAIR:-}
VIP=$LVS_HC_NET.101
DIP=$LVS_HC_NET.178
DIP2=$LVS_HC_NET.177
RS1=$LVS_HC_NET.179
RS2=$LVS_HC_NET.180
STATE_DIR=$LVS_HC_PREFIX/var/lib/lvs-hc
RUN_DIR=$LVS_HC_PREFIX/run/lvs-hc-lab

# busybox sh runs its own applets before searching PATH, and busybox's ip lacks what these
# scripts need: iproute2's, wherever it is installed.
ip() {
    if [ -x /sbin/ip ]; then /sbin/ip "$@"; elif [ -x /usr/sbin/ip ]; then /usr/sbin/ip "$@"; else command ip "$@"; fi
}

log() { printf '%s: %s\n' "${0##*/}" "$*" >&2; }
die() { log "error: $*"; exit 1; }

case $LVS_HC_WEB in nginx | busybox) ;; *) die "LVS_HC_WEB must be nginx or busybox, not $LVS_HC_WEB" ;; esac
case $LVS_HC_INIT in systemd | direct) ;; *) die "LVS_HC_INIT must be systemd or direct, not $LVS_HC_INIT" ;; esac

# need_command COMMAND PACKAGE: installs Debian's PACKAGE when COMMAND is missing (a public box;
# the box of vagrant/box/build has them all, and the QEMU lab brings its own).
need_command() {
    command -v "$1" >/dev/null 2>&1 && return
    log "installing $2 (for $1)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$2" >/dev/null
}

# Where the web server's pages live.
web_root() {
    if [ "$LVS_HC_WEB" = nginx ]; then echo /var/www/html; else echo "$LVS_HC_PREFIX/srv/www"; fi
}

# Installs and starts a web server on port 80 answering "/" with $1 and "/health.html" with "ok"
# (the tutorial's hidden page for checks). It listens on every address: the director's fallback
# is a local real server, and IPVS delivers its packets locally still addressed to the VIP.
web_serve() {
    root=$(web_root)
    if [ "$LVS_HC_WEB" = nginx ]; then need_command nginx nginx; fi
    mkdir -p "$root"
    rm -f "$root"/index.nginx-debian.html
    printf '%s\n' "$1" > "$root/index.html"
    printf 'ok\n' > "$root/health.html"
    web_start
}

web_start() {
    if [ "$LVS_HC_WEB" = nginx ]; then
        systemctl enable -q nginx
        systemctl restart nginx
        return
    fi
    mkdir -p "$RUN_DIR"
    web_stop
    busybox httpd -f -p 80 -h "$(web_root)" </dev/null >>"$RUN_DIR/httpd.log" 2>&1 &
    echo $! > "$RUN_DIR/httpd.pid"
    wait_for 5 port_listening 80 || die "httpd did not start listening on port 80"
}

web_stop() {
    if [ "$LVS_HC_WEB" = nginx ]; then
        systemctl stop nginx
        return
    fi
    stop_pidfile "$RUN_DIR/httpd.pid"
}

# True when something in this network namespace listens on TCP port $1.
port_listening() {
    hex=$(printf ':%04X' "$1")
    awk -v p="$hex" 'FNR > 1 && $4 == "0A" && substr($2, length($2) - 4) == p { found = 1 }
        END { exit !found }' /proc/net/tcp /proc/net/tcp6 2>/dev/null
}

# Kills the process whose pid is in $1 (if any) and waits until it is gone.
stop_pidfile() {
    [ -f "$1" ] || return 0
    pid=$(cat "$1")
    rm -f "$1"
    kill "$pid" 2>/dev/null || return 0
    i=0
    while kill -0 "$pid" 2>/dev/null; do
        i=$((i + 1))
        [ "$i" -le 100 ] || { kill -9 "$pid" 2>/dev/null; break; }
        sleep 0.1
    done
}

# wait_for SECONDS COMMAND...: runs COMMAND every 0.1s until it succeeds or SECONDS pass.
wait_for() {
    limit=$(($1 * 10))
    shift
    n=0
    until "$@"; do
        n=$((n + 1))
        [ "$n" -lt "$limit" ] || return 1
        sleep 0.1
    done
}

# The interface holding address $1, e.g. eth1 for the director's 192.168.56.178.
iface_of() {
    ip -o -4 addr show | awk -v a="$1" '{ split($4, p, "/"); if (p[1] == a) { print $2; exit } }'
}
