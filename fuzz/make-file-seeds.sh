#!/bin/sh
# Makes the seed corpus of fuzz_files from the test certificates (tests/certs/make-test-certs.sh
# output in CERTS): each seed is the role byte fuzz_files reads first, then a real file.
#   fuzz/make-file-seeds.sh CERTS OUT
set -eu
certs=$1 out=$2
mkdir -p "$out"
seed() {  # seed ROLE NAME FILE...
  role=$1 name=$2
  shift 2
  { printf "\\$(printf %03o "$role")"; cat "$@"; } > "$out/$name"
}
seed 0 chain-chained "$certs/chained.pem" "$certs/inter.pem"
seed 1 cert-ec "$certs/server-ec.pem"
seed 1 cert-ipcn "$certs/ipcn.pem"
seed 2 combined-rsa "$certs/combined.pem"
seed 2 combined-ec "$certs/server-ec.pem" "$certs/server-ec.key"
seed 3 key-ec "$certs/server-ec.key"
seed 3 key-encrypted "$certs/server-enc.key"
seed 4 ca "$certs/ca.pem"
seed 4 cas "$certs/ca.pem" "$certs/other-ca.pem"
seed 5 crl "$certs/crl.pem"
seed 6 intermediate "$certs/inter.pem"
seed 7 pem-combined "$certs/combined.pem"
seed 8 pem-ca "$certs/ca.pem"
