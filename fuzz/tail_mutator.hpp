// A libFuzzer custom mutator for the byte-replay targets (fuzz_server, fuzz_client). Mutating
// a recorded seed anywhere almost always breaks its handshake (a changed byte changes the
// transcript, so the Finished no longer verifies), and the stream code after it is never run.
// So for an input whose handshake completed, 15 of 16 mutations leave the bytes the handshake
// consumed alone and change only what follows (records, alerts, truncation, garbage); the rest
// mutate the whole input, which keeps the handshake itself fuzzed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <random>
#include <string_view>
#include <unordered_map>

extern "C" std::size_t LLVMFuzzerMutate(std::uint8_t* data, std::size_t size, std::size_t max_size);

namespace fuzzing {

class tail_mutator {
 public:
  /// Remembers that `input`'s handshake consumed its first `prefix` bytes.
  void remember(std::string_view input, std::size_t prefix) {
    std::lock_guard lk(m_);
    if (prefixes_.size() >= max_remembered) prefixes_.clear();  // bounded memory
    prefixes_[std::hash<std::string_view>{}(input)] = prefix;
  }

  std::size_t mutate(std::uint8_t* data, std::size_t size, std::size_t max_size, unsigned seed) {
    std::minstd_rand rng(seed);
    std::size_t prefix = 0;
    {
      std::lock_guard lk(m_);
      auto it = prefixes_.find(
          std::hash<std::string_view>{}({reinterpret_cast<const char*>(data), size}));
      if (it != prefixes_.end()) prefix = it->second;
    }
    if (prefix > 0 && prefix < size && rng() % 16 != 0)
      return prefix + LLVMFuzzerMutate(data + prefix, size - prefix, max_size - prefix);
    return LLVMFuzzerMutate(data, size, max_size);
  }

 private:
  static constexpr std::size_t max_remembered = 1 << 16;
  std::mutex m_;
  std::unordered_map<std::size_t, std::size_t> prefixes_;
};

}  // namespace fuzzing
