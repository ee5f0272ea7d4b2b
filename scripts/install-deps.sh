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
  clang-14 libclang-rt-14-dev valgrind sslscan nginx-light libnss-wrapper doxygen \
  go-md2man dpkg-dev man-db > /dev/null

# The servers the STARTTLS tests run themselves, unprivileged, on loopback ports of their own
# (tests/test_cli_starttls.cpp). Their packages would start system services that keep ports
# 143, 110, 389 and 5432 for good: a policy-rc.d that answers 101 ("not allowed") stops
# invoke-rc.d and deb-systemd-invoke from starting them during the install. One that is
# already there (Docker images have one) is left alone.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" > /dev/null
  $sudo chmod 755 "$policy"
  trap '$sudo rm -f "$policy"' EXIT
fi
$sudo apt-get install -y -qq --no-install-recommends \
  postgresql-15 dovecot-imapd dovecot-pop3d slapd python3-aiosmtpd > /dev/null
# Under systemd the units were still enabled for the next boot: not on a test machine.
if [ -d /run/systemd/system ]; then
  for unit in postgresql dovecot slapd; do
    $sudo systemctl disable --now "$unit" > /dev/null 2>&1 || true
  done
fi
echo "dependencies installed"
