set -u
VIP=127.0.0.5; MARGIN_MS=1000; CLIENT_TIMEOUT=2
client_get() { curl -fsS -m "$CLIENT_TIMEOUT" "$1"; }
on() { echo "on $*" >&2; }
. /work/wt-vagrant-pair/vagrant/lib/checks.sh
. /tmp/pairtest/pair.sh
PAIR_WAIT=2
PAIR_DIR=$(mktemp -d)
pair_hold 1 &
sleep 1.2
kill -STOP $SRV
sleep 3.5
pair_conns 0 0; echo "alive=$C_ALIVE broken=$C_BROKEN why=$C_WHY pending=$C_PENDING"
kill -CONT $SRV
touch $PAIR_DIR/stop; wait
cat $PAIR_DIR/conn.1
