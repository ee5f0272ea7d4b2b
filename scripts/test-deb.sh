#!/usr/bin/env bash
# The Debian package as a user gets it: made by cpack from a configured and built build
# directory, its contents and declared dependencies checked, installed with apt-get (which
# resolves those dependencies), tests/consumer built against the installed package with
# find_package and with pkg-config and run, the tool, its man page and its bash completion
# tried, then the package removed and every file of it checked gone.
# Installing needs root (CI runs as root): otherwise only the package is made and inspected.
# Usage: scripts/test-deb.sh BUILD_DIR   (e.g. build/release, after cmake --build)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:?usage: scripts/test-deb.sh BUILD_DIR}" && pwd)
cd "$root"
version=$(sed -n 's/^CMAKE_PROJECT_VERSION:STATIC=//p' "$build/CMakeCache.txt")

out="$build/package"
rm -rf "$out" && mkdir -p "$out"
if ! cpack -G DEB --config "$build/CPackConfig.cmake" -B "$out" > "$out/cpack.log" 2>&1; then
  cat "$out/cpack.log"
  exit 1
fi
debs=("$out"/sslstream_"$version"_*.deb)
deb=${debs[0]}
test -f "$deb" || { echo "cpack made no sslstream_${version}_*.deb in $out" >&2; exit 1; }
echo "made $deb ($(du -k "$deb" | cut -f1) KiB)"

# Contents: the tool with its man page and completion, the library for developers, the licence.
contents=$(dpkg-deb -c "$deb" | awk '{print $6}')
for f in ./usr/bin/sslstream ./usr/lib/libsslstream.a ./usr/include/sslstream/sslstream.hpp \
  ./usr/lib/cmake/sslstream/sslstreamConfig.cmake ./usr/lib/pkgconfig/sslstream.pc \
  ./usr/share/man/man1/sslstream.1 ./usr/share/bash-completion/completions/sslstream \
  ./usr/share/doc/sslstream/copyright; do
  grep -qx -- "$f" <<< "$contents" || { echo "the package lacks $f" >&2; exit 1; }
done
# Dependencies: the tool's libraries (from dpkg-shlibdeps), and OpenSSL's headers for programs
# built against the library.
depends=$(dpkg-deb -f "$deb" Depends)
for d in libssl3 libssl-dev libc6 libstdc++6; do
  grep -q "\b$d\b" <<< "$depends" || { echo "Depends lacks $d: $depends" >&2; exit 1; }
done
echo "Depends: $depends"

if [ "$(id -u)" -ne 0 ]; then
  echo "not installing the package: apt-get install needs root (CI runs as root)"
  exit 0
fi
if dpkg -s sslstream > /dev/null 2>&1; then
  echo "not installing the package: a sslstream package is already installed here" \
    "(apt-get remove sslstream first)" >&2
  exit 1
fi

installed=no
remove_package() {
  if [ "$installed" = yes ]; then
    DEBIAN_FRONTEND=noninteractive apt-get remove -y -qq sslstream > /dev/null
    installed=no
  fi
}
trap remove_package EXIT
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$deb" > /dev/null
installed=yes
files=$(dpkg -L sslstream)

# The tool, from PATH, with its man page and bash completion where the system looks for them.
command -v sslstream | grep -qx /usr/bin/sslstream
sslstream --version | grep -qx "sslstream $version"
if command -v man > /dev/null; then
  man -w sslstream | grep -qx /usr/share/man/man1/sslstream.1
else
  test -f /usr/share/man/man1/sslstream.1
fi
bash --norc -c 'source /usr/share/bash-completion/completions/sslstream
COMP_WORDS=(sslstream li); COMP_CWORD=1; _sslstream; [ "${COMPREPLY[*]}" = listen ]'

# The consumer, against the installed package only.
rm -rf build/consumer-deb build/consumer-deb-pkgconfig
cmake -S tests/consumer -B build/consumer-deb > /dev/null
grep -qx 'sslstream_DIR:PATH=/usr/lib/cmake/sslstream' build/consumer-deb/CMakeCache.txt
cmake --build build/consumer-deb > /dev/null
build/consumer-deb/consumer
c++ tests/consumer/consumer.cpp $(pkg-config --cflags --libs sslstream) -o build/consumer-deb-pkgconfig
build/consumer-deb-pkgconfig

# Removed cleanly: the package is gone and so is every file it brought.
remove_package
if dpkg -s sslstream 2> /dev/null | grep -q '^Status: install'; then
  echo "sslstream is still installed after apt-get remove" >&2
  exit 1
fi
left=""
while IFS= read -r f; do
  if [ -f "$f" ] || [ -L "$f" ]; then left+=" $f"; fi
done <<< "$files"
test -z "$left" || { echo "left behind by apt-get remove:$left" >&2; exit 1; }
echo "package installed, consumed (find_package and pkg-config) and removed cleanly"
