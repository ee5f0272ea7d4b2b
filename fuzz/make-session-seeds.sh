#!/bin/bash
# Writes the seed corpus of fuzz_session: each seed is the mode byte, then the peer's script
# (fuzz_session.cpp explains the mode bits, scenario_peer.hpp the commands).
#   fuzz/make-session-seeds.sh OUT
set -euo pipefail
out=$1
mkdir -p "$out"
seed() {  # seed NAME HEX-BYTES...
  local name=$1
  shift
  printf "$(printf '\\x%s' "$@")" > "$out/$name"
}
# Modes: 00 server, 01 client; +02*config; +10/20/30 how we read; +40 writer; +80 TLS 1.2 peer.
# Commands: 00 data u16 | 01 data from input u8 | 02 fragment u16 | 03 key_update u8 |
# 04 key_updates u8 | 05 ticket | 06 tickets u8 | 07 close_notify | 08 fin | 09 rst |
# 0a raw u8 bytes | 0b cut u16 | 0c corrupt u16 u8 | 0d read | 0e alert u8 | 0f tiny_records u8
seed server-data-close        00 00 64 00 07 08
seed client-data-close        01 00 64 00 07 08
seed server-words-keyupdate   10 00 32 00 03 01 00 32 00 0d 07
seed client-lines-tickets     21 06 05 00 e8 03 07
seed server-fragment-4k       30 02 00 00 00 a0 0f 07
seed client-big-records       01 00 ff ff 00 01 40 07
seed client-cut               01 00 2c 01 0b 0a 00 00 40 00
seed server-rst               00 00 0a 00 09
seed client-corrupt           21 0c 05 00 ff 00 64 00 07
seed server-writer            40 00 d0 07 0d 03 01 0d 07
seed client-writer-getline    61 00 d0 07 06 02 0d 07
seed server-renegotiate-tls12 80 00 10 00 05 00 10 00 0d 07
seed server-keyupdate-flood   00 04 ff 04 ff 00 10 00 07
seed client-alert             01 00 0a 00 0e 17
seed server-plain-alert       10 00 0a 00 0a 07 15 03 03 00 02 01 00 07
seed client-tiny-records      21 0f 40 07
seed server-input-lines       20 01 16 68 65 6c 6c 6f 20 77 6f 72 6c 64 0a 6e 6f 20 6e 65 77 6c 69 6e 65 07
seed server-mutual            04 00 64 00 0d 07
seed client-mutual-alpn       37 00 64 00 07
seed server-mutual-tls12      0c 00 64 00 07
seed client-tls12-writer      c5 00 e8 03 0d 07
seed server-fin-no-notify     00 00 64 00 08
seed client-pinned            0f 00 64 00 07
seed server-chacha-pieces     3e 00 00 10 03 00 07
seed client-ticket-flood      01 00 10 00 06 ff 00 10 00 07
seed client-keyupdate-flood   11 04 ff 04 ff 04 ff 00 20 00 0d 07
seed server-max-record        00 00 00 40 00 01 40 00 00 40 07
seed server-words-writer      50 00 e8 03 03 01 0d 07
seed client-pieces-writer     73 00 e8 03 06 02 0d 07
seed client-look-beside-reader 71 06 05 00 10 00 0d 06 05 07
seed server-zero-then-close   00 00 00 00 07 00 10 00 08
seed client-cut-first-record  01 00 10 00 0b 03 00 00 10 00
seed server-cut-in-handshake  00 0b 40 01
seed client-corrupt-handshake 01 0c 40 00 01 00 10 00 07
# Found by this target on the library before "close_notify is an end of stream only for a read"
# (issue 9, defect 2): the writer thread spun on EPIPE past every timeout after the peer's
# close_notify and RST. Kept as a regression seed.
seed client-writer-notify-rst 41 07 09
seed server-tls12-keyupdate   a0 00 10 00 03 01 00 10 00 07
