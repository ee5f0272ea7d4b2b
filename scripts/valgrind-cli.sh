#!/usr/bin/env bash
# The command-line tool's main paths under valgrind (memcheck): demo, cert, listen and connect
# both ways with pinning, mutual TLS with listen --keep-open, info, and the common failures.
# Any memory error or definite/indirect leak fails the run (exit 99 from valgrind).
#   scripts/valgrind-cli.sh BUILD_DIR      (a build with tests: its tests/certs are used)
set -euo pipefail
build=$(cd "$1" && pwd)
bin=$build/tools/sslstream
certs=$build/tests/certs
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

vg() {  # vg NAME ARGS...: the tool under memcheck, its log in $work/NAME.vg
  local name=$1
  shift
  valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite,indirect \
    --show-leak-kinds=definite,indirect --log-file="$work/$name.vg" "$bin" "$@"
}

check() {  # check NAME EXPECTED_STATUS STATUS
  if [ "$3" -ne "$2" ] || [ -s "$work/$1.vg" ]; then
    echo "valgrind: $1: exit $3 (expected $2)"
    cat "$work/$1.vg" "$work/$1.err" 2>/dev/null || true
    exit 1
  fi
  echo "valgrind: $1 clean (exit $3)"
}

wait_port() {  # wait_port FILE: the port listen wrote, within 60 s
  for _ in $(seq 600); do
    [ -s "$1" ] && { cat "$1"; return; }
    sleep 0.1
  done
  echo "listen did not start" >&2
  exit 1
}

run() {  # run NAME EXPECTED ARGS... (stdin from /dev/null, bounded)
  local name=$1 expected=$2 st=0
  shift 2
  timeout 300 bash -c "$(declare -f vg); bin=$bin work=$work; vg $name $(printf '%q ' "$@")" \
    < /dev/null > "$work/$name.out" 2> "$work/$name.err" || st=$?
  check "$name" "$expected" "$st"
}

run demo 0 demo
run cert 0 cert --out "$work/self.pem" --cn valgrind --san localhost,127.0.0.1 -q

# listen <-> connect, both ways, the client pinning the server's certificate.
fp=$(openssl x509 -in "$work/self.pem" -noout -fingerprint -sha256 | sed 's/.*=//; s/://g')
printf 'to the client\n' > "$work/down"
vg listen listen --cert "$work/self.pem" --port-file "$work/port1" < "$work/down" \
  > "$work/listen.out" 2> "$work/listen.err" &
lp=$!
pids+=($lp)
port=$(wait_port "$work/port1")
st=0
printf 'to the server\n' | timeout 300 bash -c "$(declare -f vg); bin=$bin work=$work; \
  vg connect connect 127.0.0.1 $port --pin sha256:$fp" > "$work/connect.out" 2> "$work/connect.err" || st=$?
check connect 0 $st
st=0
timeout 120 tail --pid=$lp -f /dev/null || true
wait $lp || st=$?
check listen 0 $st
grep -q 'to the server' "$work/listen.out"
grep -q 'to the client' "$work/connect.out"

# Mutual TLS: listen --keep-open --echo --verify required, three clients, then info.
vg keep-open listen --keep-open --echo --max-connections 4 --verify required --ca-file "$certs/ca.pem" \
  --cert "$certs/server-rsa.pem" --key "$certs/server-rsa.key" --port-file "$work/port2" \
  < /dev/null > "$work/keep-open.out" 2> "$work/keep-open.err" &
kp=$!
pids+=($kp)
port=$(wait_port "$work/port2")
for i in 1 2 3; do
  st=0
  echo "client $i" | timeout 300 bash -c "$(declare -f vg); bin=$bin work=$work; \
    vg mutual$i connect localhost $port --ca-file $certs/ca.pem --cert $certs/client.pem \
    --key $certs/client.key" > "$work/mutual$i.out" 2> "$work/mutual$i.err" || st=$?
  check mutual$i 0 $st
  grep -q "client $i" "$work/mutual$i.out"
done
run info 0 info localhost "$port" --ca-file "$certs/ca.pem" --cert "$certs/client.pem" \
  --key "$certs/client.key"
st=0
timeout 120 tail --pid=$kp -f /dev/null || true
wait $kp || st=$?
check keep-open 0 $st

# Failures: refused, a bad file, an unknown CA.
run refused 3 connect 127.0.0.1 1
run bad-file 2 listen --cert "$work/missing.pem"
vg unknown-ca-server listen --keep-open --max-connections 1 --cert "$certs/server-rsa.pem" \
  --key "$certs/server-rsa.key" --port-file "$work/port3" -q < /dev/null \
  > /dev/null 2> "$work/unknown-ca-server.err" &
up=$!
pids+=($up)
port=$(wait_port "$work/port3")
run unknown-ca 4 connect localhost "$port"
st=0
timeout 120 tail --pid=$up -f /dev/null || true
wait $up || st=$?
check unknown-ca-server 0 $st
echo "valgrind: every path clean"
