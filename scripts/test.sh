#!/usr/bin/env bash
# The whole test suite: a warnings-as-errors build and its tests, valgrind of the CLI, the
# install check (find_package, add_subdirectory, pkg-config, man page, bash completion), the
# Debian package (built, installed, consumed, removed), an ASan+UBSan build of the tests, a TSan
# build of the threaded tests and of the CLI's keep-open server, a smoke run of each fuzz
# target, the benchmarks' smoke runs, and the clang-format check. Run from anywhere; builds
# under build/.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
jobs=$(nproc)

step() { printf '\n=== %s\n' "$*"; }

step "build and test (RelWithDebInfo, -Werror)"
cmake -S . -B build/release -DCMAKE_BUILD_TYPE=RelWithDebInfo > /dev/null
cmake --build build/release -j "$jobs"
ctest --test-dir build/release -j "$jobs" --output-on-failure

step "API reference (Doxygen from the public headers, warnings as errors)"
cmake --build build/release --target docs

step "valgrind (memcheck) of the command-line tool's main paths"
scripts/valgrind-cli.sh build/release

step "install, then consume with find_package, add_subdirectory and pkg-config"
rm -rf build/prefix build/consumer-*
cmake --install build/release --prefix "$root/build/prefix" > /dev/null
cmake -S tests/consumer -B build/consumer-find -DCMAKE_PREFIX_PATH="$root/build/prefix" > /dev/null
cmake --build build/consumer-find -j "$jobs" > /dev/null
build/consumer-find/consumer
cmake -S tests/consumer -B build/consumer-sub -DSSLSTREAM_SOURCE_DIR="$root" > /dev/null
cmake --build build/consumer-sub -j "$jobs" > /dev/null
build/consumer-sub/consumer
PKG_CONFIG_PATH="$root/build/prefix/lib/pkgconfig" \
  c++ tests/consumer/consumer.cpp $(PKG_CONFIG_PATH="$root/build/prefix/lib/pkgconfig" pkg-config --cflags --libs sslstream) \
  -o build/consumer-pkgconfig
build/consumer-pkgconfig
# What cmake --install puts beside the library: the tool's man page and bash completion.
test -f build/prefix/share/man/man1/sslstream.1
test -f build/prefix/share/bash-completion/completions/sslstream

step "Debian package: cpack, apt-get install, consume, remove"
scripts/test-deb.sh build/release

step "ASan + UBSan build of every test"
# Each test's limit is the TIMEOUT property the build sets (ctest --timeout does not override
# it): the sanitizer builds run several times slower, so they get five times the default.
cmake -S . -B build/asan -DCMAKE_BUILD_TYPE=Debug -DSSLSTREAM_SANITIZE=address,undefined \
  -DSSLSTREAM_TEST_TIMEOUT=600 -DSSLSTREAM_TEST_TIMEOUT_LONG=1800 > /dev/null
cmake --build build/asan -j "$jobs"
# LeakSanitizer on for every test, the CLI's subprocesses included (they inherit ASAN_OPTIONS):
# a leak makes the tool exit non-zero, which every test that runs it to its end checks.
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build/asan -j "$jobs" --output-on-failure

step "TSan build of the threaded tests, and of the CLI's concurrent listen --keep-open"
cmake -S . -B build/tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSSLSTREAM_SANITIZE=thread \
  -DSSLSTREAM_TEST_TIMEOUT=600 -DSSLSTREAM_TEST_TIMEOUT_LONG=1800 > /dev/null
cmake --build build/tsan -j "$jobs" --target test_threads test_stream_semantics test_tls_matrix \
  test_integrity test_library test_nonblocking test_server sslstream_cli test_cli test_load \
  test_timeouts test_cli_keepopen test_server_limits limits_peer test_certificates test_tickets \
  test_cli_tunnel
# A race report goes to a file as well as failing the process (halt_on_error): the keep-open
# servers of these tests end by a signal, so no exit status would show a report of theirs.
races="$root/build/tsan/races"
rm -rf "$races" && mkdir -p "$races"
tsan_report() {
  if ls "$races"/report.* > /dev/null 2>&1; then
    cat "$races"/report.*
    echo "ThreadSanitizer reported the races above" >&2
    exit 1
  fi
}
trap tsan_report EXIT
export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:log_path=$races/report"
ctest --test-dir build/tsan -j "$jobs" --output-on-failure \
  -L '^(threads|stream_semantics|tls_matrix|integrity|library|nonblocking|server|server_limits|certificates|tickets)$'
# listen --keep-open as a process, built with TSan: 1,000 concurrent clients and 500 idle ones
# (the server engine's loops and coroutine handlers, its handshake-timeout sweep), pins, client
# certificates, the handshake and idle timeouts, and the signals (drain, reload) with the thread
# that reads them. About two minutes; the 200-process CLI test is left out: 200
# TSan processes at once would need gigabytes.
keep_open='Load\.(ThousandClientsAtOnceAllEchoedExactly|FiveHundredIdleClientsNeitherBlockOthersNorStay)'
keep_open+='|Cli\.(KeepOpenIsNotHeldUpBySilentClients|MutualTls|PinningTheSelfSignedCertificateOfListen'
keep_open+='|InfoDescribesTheConnection)|Timeouts\.CliListen.*|CliKeepOpen\..*|Cli/KeepOpenSignals\..*'
# --forward and --exec relay on the engine's workers.
keep_open+='|CliTunnel\.KeepOpen(ExecServesManyAtOnce|ForwardDrainsThenCutsBothSides)'
ctest --test-dir build/tsan -j "$jobs" --output-on-failure -R "^($keep_open)\$"
unset TSAN_OPTIONS
trap - EXIT
tsan_report

step "fuzz targets (libFuzzer, clang, ASan+UBSan), smoke run from the committed seeds"
FUZZ_JOBS=$jobs fuzz/run 30

step "benchmarks, smoke run (they must run and report; their figures are not checked here)"
build/release/tools/sslstream bench --quick
build/release/bench/bench_small_writes 8
SSLSTREAM=build/release/tools/sslstream bench/compare --quick

step "clang-format"
files=$(git ls-files '*.cpp' '*.hpp')
clang-format --dry-run --Werror $files

echo
echo "all test stages passed"
