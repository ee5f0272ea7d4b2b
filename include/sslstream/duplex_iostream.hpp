// sslstream/duplex_iostream.hpp — the std::iostream both stream kinds are: output that still
// works after input reached its end.
//
// A std::iostream has one state for both directions, so once `>>` or std::getline meet the
// peer's end of stream (eofbit, failbit), every later `<<` and flush() would do nothing and say
// nothing, and close() would then end the conversation cleanly without the reply. On a
// connection the two directions are independent (half close), so these members (which hide
// std::ostream's) set the input-side flags aside for the output and restore them after: the
// bytes go out, or the output throws. Code that writes through a plain std::ostream& still
// meets std::ostream's rule: clear() the stream first.
#pragma once

#include <ios>
#include <istream>
#include <ostream>
#include <utility>

namespace sslstream {

class duplex_iostream : public std::iostream {
 public:
  using std::iostream::iostream;

  template <class T>
  requires requires(std::ostream& os, const T& v) { os << v; }
  duplex_iostream& operator<<(const T& value) {
    return output([&](std::ostream& os) { os << value; });
  }
  duplex_iostream& operator<<(std::ostream& (*manip)(std::ostream&)) {
    return output([&](std::ostream& os) { manip(os); });
  }
  duplex_iostream& operator<<(std::ios_base& (*manip)(std::ios_base&)) {
    return output([&](std::ostream& os) { manip(os); });
  }
  duplex_iostream& operator<<(std::ios& (*manip)(std::ios&)) {
    return output([&](std::ostream& os) { manip(os); });
  }
  duplex_iostream& put(char c) {
    return output([&](std::ostream& os) { os.put(c); });
  }
  duplex_iostream& write(const char* s, std::streamsize n) {
    return output([&](std::ostream& os) { os.write(s, n); });
  }
  duplex_iostream& flush() {
    return output([](std::ostream& os) { os.flush(); });
  }

 protected:
  // Written out: std::basic_ios, the virtual base, cannot be moved (a defaulted one would be
  // deleted); std::iostream's own moves leave it to the most derived class, as here.
  duplex_iostream(duplex_iostream&& o) : std::iostream(std::move(o)) {}
  duplex_iostream& operator=(duplex_iostream&& o) {
    std::iostream::operator=(std::move(o));
    return *this;
  }
  ~duplex_iostream() override = default;

 private:
  /// Runs `f` with the input-side flags (eofbit, failbit) cleared, then puts them back. A bad
  /// stream stays bad: std::ostream's sentry refuses it and badbit's exception says why. If `f`
  /// throws, the stream is bad from then on and the input flags no longer matter.
  template <class F>
  duplex_iostream& output(F&& f) {
    const iostate input = rdstate() & (eofbit | failbit);
    if (bad() || !input) {
      std::forward<F>(f)(static_cast<std::ostream&>(*this));
      return *this;
    }
    clear(rdstate() & ~input);
    std::forward<F>(f)(static_cast<std::ostream&>(*this));
    clear(rdstate() | input);
    return *this;
  }
};

}  // namespace sslstream
