#include "ossl.hpp"

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace sslstream::detail {

std::string drain_errors() {
  std::string out;
  const char *file, *func, *data;
  int line, flags;
  while (unsigned long e = ERR_get_error_all(&file, &line, &func, &data, &flags)) {
    if (!out.empty()) out += "; ";
    const char* reason = ERR_reason_error_string(e);
    out += reason ? reason : ("error " + std::to_string(ERR_GET_REASON(e)));
    if ((flags & ERR_TXT_STRING) && data && *data) out += std::string(" (") + data + ")";
  }
  return out;
}

std::string bio_to_string(BIO* b) {
  char* p = nullptr;
  long n = BIO_get_mem_data(b, &p);
  return n > 0 ? std::string(p, static_cast<std::size_t>(n)) : std::string();
}

namespace {

socket_bio_state& state_of(BIO* b) { return *static_cast<socket_bio_state*>(BIO_get_data(b)); }

int bio_read(BIO* b, char* buf, int len) {
  auto& s = state_of(b);
  BIO_clear_retry_flags(b);
  if (s.preread_pos < s.preread.size()) {
    auto n = std::min(static_cast<std::size_t>(len), s.preread.size() - s.preread_pos);
    std::memcpy(buf, s.preread.data() + s.preread_pos, n);
    s.preread_pos += n;
    if (s.preread_pos == s.preread.size()) std::string().swap(s.preread);
    return static_cast<int>(n);
  }
  for (;;) {
    auto n = ::recv(s.fd, buf, static_cast<std::size_t>(len), 0);
    if (n >= 0) {
      s.read_socket = true;
      ++s.recvs;
      return static_cast<int>(n);
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      BIO_set_retry_read(b);
    } else {
      s.last_errno = errno;
    }
    return -1;
  }
}

int bio_write(BIO* b, const char* buf, int len) {
  auto& s = state_of(b);
  BIO_clear_retry_flags(b);
  for (;;) {
    auto n =
        ::send(s.fd, buf, static_cast<std::size_t>(len), MSG_NOSIGNAL | (s.more ? MSG_MORE : 0));
    if (n >= 0) return static_cast<int>(n);
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      BIO_set_retry_write(b);
    } else {
      s.last_errno = errno;
    }
    return -1;
  }
}

long bio_ctrl(BIO*, int cmd, long, void*) {
  return cmd == BIO_CTRL_FLUSH ? 1 : 0;  // nothing is buffered here
}

int bio_create(BIO* b) {
  BIO_set_init(b, 1);
  return 1;
}

const BIO_METHOD* socket_bio_method() {
  static const BIO_METHOD* m = [] {
    BIO_METHOD* bm = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "sslstream socket");
    BIO_meth_set_read(bm, bio_read);
    BIO_meth_set_write(bm, bio_write);
    BIO_meth_set_ctrl(bm, bio_ctrl);
    BIO_meth_set_create(bm, bio_create);
    return bm;
  }();
  return m;
}

}  // namespace

BIO* new_socket_bio(socket_bio_state* state) {
  BIO* b = BIO_new(socket_bio_method());
  if (b) BIO_set_data(b, state);
  return b;
}

}  // namespace sslstream::detail
