#!/bin/sh
# Installs lvs-hc as /usr/bin/lvs-hc (where dist/lvs-hc.service runs it):
#
#   install-lvs-hc.sh             build it from the checkout ($LVS_HC_SRC) with cargo,
#                                 installing Rust with rustup first if cargo is missing
#   LVS_HC_BINARY=FILE install-lvs-hc.sh   install that binary instead (a build from the host,
#                                 or the QEMU lab's /lab/bin/lvs-hc)
#
# LVS_HC_PREFIX prefixes the destination (see lib.sh).
set -eu
# shellcheck source=vagrant/provision/lib.sh
. "$(dirname "$0")/lib.sh"

LVS_HC_SRC=${LVS_HC_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
dest=$LVS_HC_PREFIX/usr/bin/lvs-hc

build() {
    if ! command -v cargo >/dev/null 2>&1 && [ ! -x "$HOME/.cargo/bin/cargo" ]; then
        log "installing Rust (rustup, minimal profile)"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            curl ca-certificates build-essential >/dev/null
        curl -sSf https://sh.rustup.rs | sh -s -- -y -q --profile minimal
    fi
    PATH=$HOME/.cargo/bin:$PATH
    # Build outside the shared folder: the checkout may be read-only or synced back to the host.
    CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/cache/lvs-hc-build}
    export CARGO_TARGET_DIR
    log "building lvs-hc from $LVS_HC_SRC (a few minutes)"
    (cd "$LVS_HC_SRC" && cargo build -q --release --locked -p lvs-hc)
    LVS_HC_BINARY=$CARGO_TARGET_DIR/release/lvs-hc
}

if [ -z "${LVS_HC_BINARY:-}" ]; then
    build
fi
[ -f "$LVS_HC_BINARY" ] || die "$LVS_HC_BINARY is not a file"
mkdir -p "$(dirname "$dest")"
cp "$LVS_HC_BINARY" "$dest.new"
chmod 0755 "$dest.new"
mv "$dest.new" "$dest"
log "installed $("$dest" --version) as $dest"
