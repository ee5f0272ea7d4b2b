// Test support: measuring how long something took, and how much CPU the thread spent on it
// (a busy loop shows as CPU time close to the wall time of a wait).
#pragma once

#include <time.h>

#include <chrono>

namespace testing_support {

inline double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

/// CPU time of the calling thread, in milliseconds.
inline double thread_cpu_ms() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) / 1e6;
}

}  // namespace testing_support
