#!/bin/sh
# Installs what sslstream needs to build and test, from Debian 12's packages. Safe to re-run.
set -eu
sudo=""
[ "$(id -u)" -eq 0 ] || sudo=sudo
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends \
  build-essential cmake pkg-config git ca-certificates \
  libssl-dev openssl \
  libcli11-dev nlohmann-json3-dev libgtest-dev libgmock-dev googletest libbenchmark-dev \
  gnutls-bin curl socat python3 clang-format \
  clang-14 libclang-rt-14-dev valgrind sslscan nginx-light libnss-wrapper doxygen > /dev/null
echo "dependencies installed"
