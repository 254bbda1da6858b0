#!/bin/sh
# A real server of the tutorial's cluster (direct routing):
#
#   realserver.sh provision TEXT   web server answering TEXT ("server-1"), then
#                                  `lvs-hc setup realserver --vip VIP --mode dr`
#   realserver.sh web-stop         stop the web server (the story's "server dies")
#   realserver.sh web-start        start it again
#
# Variables: see lib.sh (LVS_HC_NET, LVS_HC_WEB, LVS_HC_PREFIX). lvs-hc must be installed
# (install-lvs-hc.sh) before `provision`.
set -eu
# shellcheck source=vagrant/provision/lib.sh
. "$(dirname "$0")/lib.sh"

# The VIP on lo, ARP for it suppressed (arp_ignore=1, arp_announce=2); idempotent.
setup_realserver() {
    mkdir -p "$STATE_DIR"
    lvs-hc setup realserver --vip "$VIP" --mode dr --state-dir "$STATE_DIR"
}

case ${1:-} in
    provision)
        [ -n "${2:-}" ] || die "usage: realserver.sh provision TEXT"
        web_serve "$2"
        setup_realserver
        log "real server ready: \"$2\" on port 80, VIP $VIP on lo"
        ;;
    web-stop) web_stop ;;
    web-start) web_start ;;
    *) die "usage: realserver.sh provision TEXT | web-stop | web-start" ;;
esac
