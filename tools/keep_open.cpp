#include "keep_open.hpp"

#include <malloc.h>
#include <poll.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <iostream>
#include <list>
#include <mutex>
#include <thread>
#include <unordered_map>

namespace cli {

using namespace sslstream;
using clock_type = std::chrono::steady_clock;

namespace {

struct connection {
  ssl_stream s;
  bool handshaken = false;
  std::string peer;                                       // "host:port", for messages
  std::chrono::steady_clock::time_point handshake_until;  // from accept; max(): no limit
};

/// Threads made on demand and kept for reuse (a few idle ones at most), each serving one ready
/// connection at a time. If no worker is idle, a new thread starts, up to max_workers: beyond
/// that (or when the system refuses a thread) ready connections wait in a queue for the next
/// free worker, so no peer decides how many threads there are. Every thread is joined, never
/// detached: a thread's own state (OpenSSL's per-thread random generators among it) is freed
/// only when it has fully ended, and a process must not exit before that.
class worker_pool {
 public:
  using handler = std::function<void(std::unique_ptr<connection>)>;
  /// Enough for a burst of handshakes on 2 to 16 cores; a worker blocks at most a timeout.
  static constexpr std::size_t max_workers = 64;
  worker_pool(handler h, bool quiet) : handle_(std::move(h)), quiet_(quiet) {}
  /// Queues `c` for a worker. Returns it back when nothing can serve it: no worker runs and
  /// none could be started.
  std::unique_ptr<connection> submit(std::unique_ptr<connection> c) {
    std::vector<std::thread> retired;
    std::unique_ptr<connection> unserved;
    {
      std::lock_guard lk(m_);
      ready_.push_back(std::move(c));
      if (ready_.size() <= idle_) {
        work_.notify_one();
      } else if (threads_.size() < max_workers && !start_worker() && threads_.empty()) {
        unserved = std::move(ready_.back());
        ready_.pop_back();
      }
      retired.swap(retired_);
    }
    for (auto& t : retired) t.join();
    return unserved;
  }
  /// Ends the idle workers, waits for the busy ones to finish, and joins them all.
  ~worker_pool() {
    std::unique_lock lk(m_);
    stopping_ = true;
    work_.notify_all();
    gone_.wait(lk, [&] { return threads_.empty(); });
    for (auto& t : retired_) t.join();
  }

 private:
  static constexpr std::size_t max_idle = 8;
  /// Starts one more worker (m_ held); false when the system refuses (threads, memory).
  bool start_worker() {
    try {
      auto it = threads_.emplace(threads_.end());
      try {
        *it = std::thread([this, it] { loop(it); });  // it waits for m_ before using `it`
      } catch (...) {
        threads_.erase(it);  // an entry without a thread would never retire: never wait for it
        throw;
      }
      return true;
    } catch (const std::exception& e) {
      if (!quiet_ && !said_) {
        said_ = true;
        std::cerr << "sslstream listen: cannot start another worker thread (" << e.what()
                  << "): " << threads_.size() << " serve, other connections wait\n";
      }
      return false;
    }
  }
  void loop(std::list<std::thread>::iterator self) {
    std::unique_lock lk(m_);
    for (;;) {
      while (ready_.empty()) {
        if (stopping_ || idle_ >= max_idle) {
          // Retire: the next submit() or the destructor joins this thread.
          retired_.push_back(std::move(*self));
          threads_.erase(self);
          if (threads_.empty()) gone_.notify_all();
          return;
        }
        ++idle_;
        work_.wait(lk);
        --idle_;
      }
      auto c = std::move(ready_.front());
      ready_.pop_front();
      lk.unlock();
      handle_(std::move(c));
      lk.lock();
    }
  }
  handler handle_;
  bool quiet_;
  bool said_ = false;
  std::mutex m_;
  std::condition_variable work_, gone_;
  std::deque<std::unique_ptr<connection>> ready_;
  std::list<std::thread> threads_;    // running, idle or busy
  std::vector<std::thread> retired_;  // ended or ending, to be joined
  std::size_t idle_ = 0;
  bool stopping_ = false;
};

class server {
 public:
  server(const ssl_context& ctx, const keep_open_options& o) : ctx_(ctx), o_(o) {
    ep_ = ::epoll_create1(EPOLL_CLOEXEC);
    if (ep_ < 0) throw std::system_error(errno, std::generic_category(), "epoll_create1");
    parker_ = std::thread([this] { park_loop(); });
  }
  ~server() {
    {
      std::lock_guard lk(m_);
      stopping_ = true;
    }
    parker_.join();
    parked_.clear();
    ::close(ep_);
  }

  void accepted(socket_stream sock) {
    auto c =
        std::make_unique<connection>(connection{make_ssl_server_stream(std::move(sock), ctx_)});
    c->peer = c->s.remote_host() + ':' + std::to_string(c->s.remote_port());
    {
      std::lock_guard lk(m_);
      peak_ = std::max(peak_, ++live_);
    }
    c->handshake_until = limit_after(o_.handshake_timeout);
    // The ClientHello has usually arrived with the connection: then straight to a worker,
    // without a round through the epoll set.
    if (readable_now(c->s.native_handle())) return dispatch(std::move(c));
    auto until = c->handshake_until;
    park(std::move(c), until);
  }

  static bool readable_now(int fd) {
    pollfd p{fd, POLLIN, 0};
    return ::poll(&p, 1, 0) == 1;
  }

  /// True once stdout failed: every connection is then ended with an error, and no new one
  /// accepted.
  bool output_failed() const { return output_failed_; }
  /// The write error that made output_failed() true.
  std::exception_ptr output_error() {
    std::lock_guard lk(out_);
    return output_error_;
  }

  /// Waits until every connection has ended.
  void drain() {
    std::unique_lock lk(m_);
    ended_.wait(lk, [&] { return live_ == 0; });
  }

 private:
  struct parked {
    std::unique_ptr<connection> c;
    clock_type::time_point until;  // max(): no limit
  };

  /// When a connection parked now is dropped: never for a timeout of 0.
  static clock_type::time_point limit_after(std::chrono::milliseconds timeout) {
    return timeout.count() > 0 ? clock_type::now() + timeout : clock_type::time_point::max();
  }

  void park(std::unique_ptr<connection> c, clock_type::time_point until) {
    int fd = c->s.native_handle();
    std::lock_guard lk(m_);
    parked_[fd] = {std::move(c), until};
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLONESHOT;
    ev.data.fd = fd;
    if (::epoll_ctl(ep_, EPOLL_CTL_MOD, fd, &ev) != 0) ::epoll_ctl(ep_, EPOLL_CTL_ADD, fd, &ev);
  }

  /// Closes a connection (on the calling thread) and counts it out.
  void end(std::unique_ptr<connection> c) {
    ::epoll_ctl(ep_, EPOLL_CTL_DEL, c->s.native_handle(), nullptr);
    // A healthy stream says close_notify; one never handshaken, or abandoned, says nothing.
    c.reset();
    std::lock_guard lk(m_);
    if (--live_ == 0) {
      // Idle again after a burst: the parker hands the memory the connections used back to the
      // system once the burst's workers are gone too, so that a server between bursts is as
      // small as it started. Not after every lone client: a trim walks every arena.
      if (peak_ >= 64) trim_at_ = clock_type::now() + std::chrono::milliseconds(500);
      peak_ = 0;
      ended_.notify_all();
    }
  }

  /// The parker: hands readable connections to workers, drops those past their limit.
  void park_loop() {
    std::vector<epoll_event> events(256);
    for (;;) {
      {
        std::lock_guard lk(m_);
        if (stopping_) return;
      }
      // A short wait bounds how late a timeout is noticed; parking needs no wake-up.
      int n = ::epoll_wait(ep_, events.data(), static_cast<int>(events.size()), 100);
      std::vector<std::unique_ptr<connection>> ready, expired, aborted;
      {
        std::lock_guard lk(m_);
        for (int i = 0; i < n; ++i) {
          auto it = parked_.find(events[static_cast<std::size_t>(i)].data.fd);
          if (it == parked_.end()) continue;
          ready.push_back(std::move(it->second.c));
          parked_.erase(it);
        }
        auto now = clock_type::now();
        if (trim_at_ <= now && live_ == 0) {
          ::malloc_trim(0);
          trim_at_ = clock_type::time_point::max();
        }
        if (now >= next_sweep_) {  // timeouts are in seconds: a sweep every 100 ms is enough
          next_sweep_ = now + std::chrono::milliseconds(100);
          bool failed = output_failed();
          for (auto it = parked_.begin(); it != parked_.end();) {
            if (failed) {
              abort_connection(it->second.c->s);
              aborted.push_back(std::move(it->second.c));
              it = parked_.erase(it);
            } else if (it->second.until <= now) {
              expired.push_back(std::move(it->second.c));
              it = parked_.erase(it);
            } else {
              ++it;
            }
          }
        }
      }
      for (auto& c : expired) drop(std::move(c));
      for (auto& c : aborted) end(std::move(c));
      for (auto& c : ready) dispatch(std::move(c));
    }
  }

  /// To a worker, or dropped when no thread at all can serve it.
  void dispatch(std::unique_ptr<connection> c) {
    if (auto unserved = pool_.submit(std::move(c))) {
      if (!o_.tls->quiet)
        std::cerr << "sslstream listen: " << unserved->peer
                  << ": no thread could be started to serve it: connection dropped\n";
      end(std::move(unserved));
    }
  }

  void drop(std::unique_ptr<connection> c) {
    if (!o_.tls->quiet) {
      if (!c->handshaken)
        std::cerr << "sslstream listen: " << c->peer
                  << ": the TLS handshake timed out (--handshake-timeout): connection dropped\n";
      else
        std::cerr << "sslstream listen: " << c->peer
                  << ": idle past --idle-timeout, timed out: connection closed\n";
    }
    end(std::move(c));
  }

  /// On a worker: handshake or serve what arrived, then park again or end.
  void serve(std::unique_ptr<connection> c) {
    phase at = c->handshaken ? phase::transfer : phase::handshake;
    bool done = false;
    try {
      auto& s = c->s;
      // Woken for bytes on the socket; right after the handshake, only for what it buffered.
      bool must_read = c->handshaken;
      if (!c->handshaken) {
        // The handshake's limit runs from the accept, not from when a worker got to it: a
        // connection that waited in the queue has less left, and one with none is dropped.
        if (c->handshake_until != clock_type::time_point::max()) {
          auto left =
              std::chrono::ceil<std::chrono::milliseconds>(c->handshake_until - clock_type::now());
          if (left.count() <= 0) return drop(std::move(c));
          s.set_timeout(left);
        }
        s.do_handshake();
        c->handshaken = true;
        at = phase::transfer;
        if (o_.tls->verbose) print_handshake(s, "listen");
        // On a worker, a peer that stops reading our echo or stops inside a record must not
        // hold it for ever: --idle-timeout, or io_limit when none is set.
        s.set_timeout(o_.idle_timeout.count() > 0 ? o_.idle_timeout : io_limit);
      }
      // A buffer while serving, not per connection (nor per thread, which would outlive a
      // burst and keep its memory from the trim).
      constexpr std::size_t size = 1 << 16;
      std::unique_ptr<std::byte[]> mem(new std::byte[size]);
      std::span buf(mem.get(), size);
      // Serve while bytes are there, buffered or on the socket (asked without waiting): a
      // connection in the middle of a conversation stays on its worker, and only one that has
      // gone quiet is parked.
      while (!done && (must_read || s.input_pending() || readable_now(s.native_handle()))) {
        must_read = false;
        auto n = s.read_some(buf);
        if (n == 0) {  // the peer's close_notify
          if (o_.echo) s.close();
          done = true;
        } else if (o_.echo) {
          s.write_all(buf.first(n));
        } else if (!to_stdout(buf.first(n))) {
          abort_connection(s);  // its bytes were lost: the client must not see a clean end
          done = true;
        }
      }
    } catch (const std::exception& e) {
      if (!o_.tls->quiet) report("listen", at, e, o_.tls);
      done = true;
    }
    if (!done && output_failed()) {
      abort_connection(c->s);
      done = true;
    }
    if (done) return end(std::move(c));
    park(std::move(c), limit_after(o_.idle_timeout));
  }

  /// Copies a connection's bytes to stdout, whole reads at a time so that connections do not
  /// interleave. False once stdout has failed (now or before): then nothing more is written.
  bool to_stdout(std::span<const std::byte> data) {
    std::lock_guard lk(out_);
    if (output_error_) return false;
    try {
      write_stdout(data);
      return true;
    } catch (const std::system_error&) {
      output_error_ = std::current_exception();
      output_failed_ = true;
      return false;
    }
  }

  const ssl_context& ctx_;
  const keep_open_options& o_;
  std::mutex out_;
  std::exception_ptr output_error_;  // the first failed write to stdout
  std::atomic<bool> output_failed_{false};
  int ep_ = -1;
  std::mutex m_;
  std::condition_variable ended_;
  std::unordered_map<int, parked> parked_;
  std::size_t live_ = 0, peak_ = 0;  // connections now, and most at once since idle
  bool stopping_ = false;
  clock_type::time_point next_sweep_{};
  clock_type::time_point trim_at_ = clock_type::time_point::max();
  static constexpr std::chrono::milliseconds io_limit{30000};
  worker_pool pool_{[this](std::unique_ptr<connection> c) { serve(std::move(c)); }, o_.tls->quiet};
  std::thread parker_;
};

}  // namespace

void serve_keep_open(passive_socket& listener, const ssl_context& ctx, const keep_open_options& o,
                     const std::function<void()>& ready) {
  raise_descriptor_limit();
  server srv(ctx, o);
  ready();
  // Accepts wake up now and then to see whether stdout has failed.
  for (unsigned served = 0;
       (o.max_connections == 0 || served < o.max_connections) && !srv.output_failed();) {
    try {
      auto sock = listener.accept_connection(std::chrono::milliseconds(200));
      if (!sock) continue;
      srv.accepted(std::move(*sock));
      ++served;
    } catch (const socket_error& e) {
      // Out of descriptors or memory: pause and retry, so that a flood of clients slows the
      // server down instead of ending it.
      int err = e.code().value();
      if (err != EMFILE && err != ENFILE && err != ENOBUFS && err != ENOMEM) throw;
      static std::atomic<bool> said{false};
      if (!o.tls->quiet && !said.exchange(true))
        std::cerr << "sslstream listen: " << e.what()
                  << " (out of descriptors or memory: new connections wait until some close)\n";
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  if (srv.output_failed()) listener.close();  // waiting clients are refused, not left hanging
  srv.drain();
  if (auto e = srv.output_error()) {
    try {
      std::rethrow_exception(e);
    } catch (const std::system_error& err) {
      throw std::runtime_error(std::string(err.what()) +
                               ": every connection was ended with an error");
    }
  }
}

}  // namespace cli
