// How far the inputs of a fuzz target get, printed when the process exits:
//   fuzz_server: 5120 inputs, 3100 (60.5%) past the handshake, 2900 reached application data
// fuzz/run prints this line for each target: it shows whether the fuzzer reaches the stream
// code after the handshake at all, which a crash-free run alone does not.
#pragma once

#include <cstdio>

namespace fuzzing {

class tally {
 public:
  explicit tally(const char* target) : target_(target) {}
  tally(const tally&) = delete;
  tally& operator=(const tally&) = delete;
  ~tally() {
    std::fprintf(stderr,
                 "%s: %lu inputs, %lu (%.1f%%) past the handshake, %lu reached application data\n",
                 target_, inputs_, handshakes_,
                 inputs_ ? 100.0 * double(handshakes_) / double(inputs_) : 0.0, data_);
  }
  void count(bool handshake, bool data) {
    ++inputs_;
    handshakes_ += handshake;
    data_ += data;
  }

 private:
  const char* target_;
  unsigned long inputs_ = 0, handshakes_ = 0, data_ = 0;
};

}  // namespace fuzzing
