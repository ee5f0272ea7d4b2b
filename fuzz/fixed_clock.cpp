// A fixed wall clock for the fuzz targets and record_seeds only. OpenSSL reads time() for the
// session and ticket times and their expiry, and for certificate dates. With the clock fixed,
// a resumption seed (a ticket the recorded client sends back) is not expired months later, and
// the same input always takes the same path. Defining time() in the executable interposes it
// for libssl and libcrypto, which call it through the PLT; the library's own timeouts use
// std::chrono::steady_clock and are not affected.
#include <ctime>

extern "C" std::time_t time(std::time_t* t) noexcept {
  constexpr std::time_t fixed = 1796000000;  // 2026-11-30, inside the credentials' validity
  if (t) *t = fixed;
  return fixed;
}
