// The server engine: event loops, handshakes without blocking, handlers, limits and stop.
#include "engine.hpp"

#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <span>
#include <system_error>

#include "hello_peek.hpp"

namespace sslstream::detail {

namespace {

// epoll data for the two descriptors every loop has besides its connections.
void* const listener_tag = reinterpret_cast<void*>(1);
void* const wake_tag = reinterpret_cast<void*>(2);

clock::time_point after(std::chrono::milliseconds t) {
  return t.count() > 0 ? clock::now() + t : clock::time_point::max();
}

}  // namespace

// --- engine ---------------------------------------------------------------------------------

engine::engine(passive_socket l, ssl_context ctx, server::blocking_handler b,
               server::coroutine_handler c, server_options o)
    : opts(o),
      listener(std::move(l)),
      blocking(std::move(b)),
      coroutine(std::move(c)),
      port_(listener.local_port()),
      ctx_(std::move(ctx)),
      pool_(o.max_workers) {
  if (!ctx_.is_server()) throw std::invalid_argument("sslstream::server needs a server context");
  if (!listener.is_open()) throw std::invalid_argument("sslstream::server needs an open listener");
  unsigned n = o.threads ? o.threads : std::max(1u, std::thread::hardware_concurrency());
  for (unsigned i = 0; i < n; ++i) loops_.push_back(std::make_unique<event_loop>(*this));
}

engine::~engine() { stop(); }

void engine::start() {
  std::lock_guard lk(run_m_);
  if (started_) throw std::logic_error("sslstream::server: already started");
  started_ = true;
  for (auto& l : loops_) {
    try {
      threads_.emplace_back([loop = l.get()] { loop->run(); });
    } catch (const std::system_error&) {
      // Serve with the loops that started; with none there is no server.
      if (threads_.empty()) throw;
      break;
    }
  }
}

void engine::run() {
  start();
  std::unique_lock lk(run_m_);
  stopped_cv_.wait(lk, [&] { return stopping.load(); });
  lk.unlock();
  join_all();
}

void engine::join_all() {
  std::lock_guard lk(run_m_);
  if (joined_) return;
  for (auto& t : threads_) t.join();
  pool_.stop();
  joined_ = true;
}

void engine::stop() {
  {
    std::lock_guard lk(run_m_);
    stopping = true;
  }
  stopped_cv_.notify_all();
  for (auto& l : loops_) l->wake();
  {
    // Blocking handlers see their input end (a read blocked in another thread returns 0).
    std::lock_guard lk(busy_m_);
    for (auto* s : busy_) try {
        s->shutdown(direction::input);
      } catch (...) {
      }
  }
  join_all();
}

void engine::stop_accepting() {
  draining = true;
  // A loop that read `draining` as false just before may still be accepting: wait until its
  // batch is over, so that once we return every new client waits in the backlog.
  for (auto& l : loops_) std::lock_guard lk(l->accept_m);
  for (auto& l : loops_) l->wake();
}

void engine::stop(std::chrono::milliseconds drain) {
  stop_accepting();
  auto until = clock::now() + drain;
  while (active.load() > 0 && clock::now() < until)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  stop();
}

void engine::reload(ssl_context ctx) {
  if (!ctx.is_server())
    throw std::invalid_argument("sslstream::server::reload: not a server context");
  std::lock_guard lk(ctx_m_);
  ctx_ = std::move(ctx);
}

ssl_context engine::context() {
  std::lock_guard lk(ctx_m_);
  return ctx_;
}

server_stats engine::stats() const noexcept {
  return {accepted.load(), handshakes.load(), handshake_failures.load(),
          active.load(),   rejected.load(),   timed_out.load(),
          evicted.load()};
}

bool engine::accepting() const noexcept {
  return !stopping && !draining && active.load() < opts.max_connections;
}

bool engine::full_and_open() const noexcept {
  return !stopping && !draining && active.load() >= opts.max_connections;
}

void engine::hand_to_worker(std::unique_ptr<engine_connection> c) {
  auto shared = std::shared_ptr<engine_connection>(std::move(c));
  pool_.submit([this, shared] {
    ssl_stream& s = shared->stream;
    {
      std::lock_guard lk(busy_m_);
      busy_.insert(&s);
    }
    if (stopping) s.shutdown(direction::input);  // stop() may have passed already
    try {
      s.set_read_timeout(opts.idle_timeout);
      s.set_write_timeout(opts.write_timeout);
      blocking(s);
    } catch (const socket_error& e) {
      if (e.identifier() == "timeout") ++timed_out;
    } catch (...) {
      // The handler's failure ends its connection, never the server.
    }
    {
      std::lock_guard lk(busy_m_);
      busy_.erase(&s);
    }
    try {
      s.close();
    } catch (...) {
    }
    connection_ended();
  });
}

void engine::connection_ended() {
  bool was_full = active.fetch_sub(1) >= opts.max_connections;
  if (was_full)
    for (auto& l : loops_) l->wake();  // accept again
}

// --- event loop -----------------------------------------------------------------------------

event_loop::event_loop(engine& e) : e_(e) {
  ep_.reset(::epoll_create1(EPOLL_CLOEXEC));
  wake_fd_.reset(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (!ep_ || !wake_fd_) throw_socket_error(errno, "sslstream::server: epoll");
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = wake_tag;
  ::epoll_ctl(ep_.get(), EPOLL_CTL_ADD, wake_fd_.get(), &ev);
}

event_loop::~event_loop() = default;

void event_loop::wake() noexcept {
  std::uint64_t one = 1;
  (void)!::write(wake_fd_.get(), &one, sizeof one);
}

// A handshake on a real network takes well under a second; one that has lasted this long while
// the server is full gives its place to a new client. Without this, max_connections stalled
// ClientHellos would keep every legitimate client in the backlog until handshake_timeout.
constexpr auto evict_after = std::chrono::seconds(1);

bool event_loop::can_evict() const {
  return !handshakes_.empty() && e_.full_and_open() &&
         clock::now() - handshakes_.front()->accepted_at >= evict_after;
}

void event_loop::left_handshake(engine_connection& c) {
  if (c.state != engine_connection::phase::handshake) return;
  handshakes_.erase(c.in_handshake);
  c.in_handshake = {};
}

void event_loop::manage_listening() {
  bool want = (e_.accepting() || can_evict()) && clock::now() >= accept_paused_until_;
  if (want == listening_) return;
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLEXCLUSIVE;  // one loop wakes per connection, not all
  ev.data.ptr = listener_tag;
  ::epoll_ctl(ep_.get(), want ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, e_.listener.native_handle(), &ev);
  listening_ = want;
}

void event_loop::run() {
  epoll_event evs[64];
  auto next_sweep = clock::now();
  while (!e_.stopping) {
    manage_listening();
    int n = ::epoll_wait(ep_.get(), evs, 64, ready_now_.empty() ? 100 : 0);
    for (int i = 0; i < n; ++i) {
      void* p = evs[i].data.ptr;
      if (p == wake_tag) {
        std::uint64_t v;
        (void)!::read(wake_fd_.get(), &v, sizeof v);
      } else if (p == listener_tag) {
        accept_some();
      } else {
        auto* c = static_cast<engine_connection*>(p);
        if (conns_.contains(c)) on_ready(*c);
      }
    }
    auto now_ready = std::move(ready_now_);
    ready_now_.clear();
    for (auto* c : now_ready)
      if (conns_.contains(c)) on_ready(*c);
    // Timeouts are milliseconds to seconds: a sweep every 100 ms notices them in time.
    if (clock::now() >= next_sweep) {
      sweep();
      next_sweep = clock::now() + std::chrono::milliseconds(100);
    }
  }
  // Stopping: coroutine frames first (they refer to their streams), then the streams.
  for (auto& [p, c] : conns_) c->root.reset();
  while (!conns_.empty()) end(*conns_.begin()->second);
}

void event_loop::accept_some() {
  std::lock_guard lk(accept_m);
  for (int i = 0; i < 64; ++i) {
    bool evict = false;
    if (!e_.accepting()) {
      if (!can_evict()) return;
      evict = true;
    }
    std::optional<socket_stream> sock;
    try {
      sock = e_.listener.accept_connection(std::chrono::milliseconds(0));
    } catch (const socket_error&) {
      // Out of descriptors, say. Stalled handshakes holding them all would keep clients out as
      // a full server would: the oldest that has lasted a second gives its descriptor to the
      // next client in the queue (as many as this batch takes; only old handshakes go).
      if (!handshakes_.empty() && !e_.stopping && !e_.draining &&
          clock::now() - handshakes_.front()->accepted_at >= evict_after) {
        ++e_.evicted;
        end(*handshakes_.front());
        continue;
      }
      // The connection stays queued; stop listening for a moment, since a level-triggered
      // listener would otherwise wake us at once, again and again.
      ++e_.rejected;
      accept_paused_until_ = clock::now() + std::chrono::milliseconds(100);
      return;
    }
    if (!sock) return;
    if (evict) {  // only once there is a client to take the place
      ++e_.evicted;
      end(*handshakes_.front());
    }
    ++e_.accepted;
    ++e_.active;
    try {
      auto c = std::make_unique<engine_connection>(
          make_ssl_server_stream(std::move(*sock), e_.context()), *this);
      c->deadline = after(e_.opts.handshake_timeout);
      auto* raw = c.get();
      auto place = handshakes_.insert(handshakes_.end(), raw);
      try {
        conns_.emplace(raw, std::move(c));
      } catch (...) {
        handshakes_.erase(place);
        throw;
      }
      raw->in_handshake = place;
      ready_now_.push_back(raw);  // the ClientHello has usually come with the connection
    } catch (...) {
      ++e_.handshake_failures;
      e_.connection_ended();
    }
  }
}

void event_loop::arm(engine_connection& c, short events) {
  if (events == POLLIN && c.stream.input_pending()) {  // OpenSSL holds a record already
    ready_now_.push_back(&c);
    return;
  }
  epoll_event ev{};
  ev.events = (events == POLLIN ? EPOLLIN : EPOLLOUT) | EPOLLONESHOT;
  ev.data.ptr = &c;
  int fd = c.stream.native_handle();
  if (::epoll_ctl(ep_.get(), c.registered ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, &ev) == 0)
    c.registered = true;
}

void event_loop::on_ready(engine_connection& c) {
  switch (c.state) {
    case engine_connection::phase::handshake: return advance_handshake(c);
    case engine_connection::phase::coroutine: return resume(c);
    case engine_connection::phase::worker: return;
  }
}

// OpenSSL, given a first record, sets up its whole handshake state at once: 10 KiB for a
// connection becomes 74 KiB of heap, 48 KiB resident (measured with OpenSSL 3.0). So a client
// that stalls before its ClientHello is whole costs only the stream until it is (see
// hello_peek.hpp). The wait is edge-triggered: level-triggered, the bytes already there would
// wake us at once, again and again; edge-triggered, only new bytes do.
bool event_loop::first_record_complete(engine_connection& c) {
  int fd = c.stream.native_handle();
  std::array<unsigned char, hello_peek_size> head;
  auto got = ::recv(fd, head.data(), head.size(), MSG_PEEK | MSG_DONTWAIT);
  bool complete = true;  // an error or the peer's end: let the handshake see it (and fail)
  if (got > 0) complete = client_hello_whole(std::span(head).first(static_cast<std::size_t>(got)));
  if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) complete = false;
  if (!complete) {  // a peer that has closed will send no more: the handshake fails at once
    pollfd p{fd, POLLRDHUP, 0};
    complete = ::poll(&p, 1, 0) == 1 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
  }
  if (complete) return true;
  if (!c.registered) {
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP | EPOLLET;
    ev.data.ptr = &c;
    if (::epoll_ctl(ep_.get(), EPOLL_CTL_ADD, fd, &ev) != 0) return true;
    c.registered = true;
  }
  return false;
}

void event_loop::advance_handshake(engine_connection& c) {
  if (!c.hello_started) {
    if (!first_record_complete(c)) return;  // the deadline still runs: handshake_timeout
    c.hello_started = true;
  }
  io_result r;
  try {
    r = c.stream.try_handshake();
  } catch (const std::exception& e) {
    ++e_.handshake_failures;
    report_failure(c, e.what(), false);
    return end(c);
  } catch (...) {
    ++e_.handshake_failures;
    report_failure(c, "unknown error", false);
    return end(c);
  }
  if (r.status == io_status::done) {
    ++e_.handshakes;
    return start_handler(c);
  }
  arm(c, r.status == io_status::want_write ? POLLOUT : POLLIN);
}

void event_loop::start_handler(engine_connection& c) {
  left_handshake(c);
  c.deadline = clock::time_point::max();
  if (e_.blocking) {
    if (c.registered) ::epoll_ctl(ep_.get(), EPOLL_CTL_DEL, c.stream.native_handle(), nullptr);
    c.registered = false;
    c.state = engine_connection::phase::worker;
    auto node = conns_.extract(&c);
    e_.hand_to_worker(std::move(node.mapped()));
    return;
  }
  c.state = engine_connection::phase::coroutine;
  try {
    c.root.emplace(e_.coroutine(c.facade));
  } catch (...) {
    return end(c);
  }
  c.waiter = c.root->handle();
  resume(c);
}

void event_loop::resume(engine_connection& c) {
  if (c.pending) {  // the socket is ready: try the pending operation again
    // A write woken by writability: the peer has taken data, so its limit starts again.
    // write_timeout is for a peer that stops reading; one that reads slowly but steadily gets
    // a large write_all whole (a wake for a peer that never reads never comes).
    if (c.pending->writing_) c.deadline = after(e_.opts.write_timeout);
    if (!c.pending->run_attempt()) return arm(c, c.pending->want_);
    c.pending = nullptr;
  }
  auto h = std::exchange(c.waiter, {});
  if (h) h.resume();  // runs the handler to its next co_await, or to its end
  if (c.root && c.root->handle().done()) end(c);
}

void event_loop::sweep() {
  auto now = clock::now();
  std::vector<engine_connection*> late;
  for (auto& [p, c] : conns_)
    if (c->deadline <= now) late.push_back(p);
  for (auto* c : late) {
    if (!conns_.contains(c)) continue;
    ++e_.timed_out;
    if (c->state == engine_connection::phase::coroutine && c->pending) {
      // The handler sees the timeout as an exception from its co_await, and decides.
      c->pending->fail_with(std::make_exception_ptr(socket_error(
          std::error_code(ETIMEDOUT, std::system_category()), "timeout",
          c->pending->writing_ ? "the peer stopped reading (server_options::write_timeout)"
                               : "the peer sent nothing (server_options::idle_timeout)")));
      c->pending = nullptr;
      c->deadline = clock::time_point::max();
      resume(*c);
    } else {
      if (c->state == engine_connection::phase::handshake) {
        std::string why = "the handshake timed out (server_options::handshake_timeout, ";
        why += std::to_string(e_.opts.handshake_timeout.count());
        why += " ms)";
        report_failure(*c, std::move(why), true);
      }
      end(*c);
    }
  }
  if (!e_.stopping) e_.retry_workers();
}

void event_loop::report_failure(engine_connection& c, std::string reason, bool timed_out) {
  if (!e_.opts.on_handshake_failure) return;
  try {
    handshake_failure f;
    auto host = c.stream.remote_host();
    bool v6 = host.find(':') != std::string::npos;
    if (v6) f.peer.push_back('[');
    f.peer.append(host);
    if (v6) f.peer.push_back(']');
    f.peer.push_back(':');
    f.peer.append(std::to_string(c.stream.remote_port()));
    f.reason = std::move(reason);
    f.timed_out = timed_out;
    e_.opts.on_handshake_failure(f);
  } catch (...) {
    // The caller's hook failing must not end the loop.
  }
}

void event_loop::end(engine_connection& c) {
  left_handshake(c);
  if (c.registered) ::epoll_ctl(ep_.get(), EPOLL_CTL_DEL, c.stream.native_handle(), nullptr);
  auto node = conns_.extract(&c);
  // The destructor sends close_notify if it can without waiting, and closes.
  node.mapped()->root.reset();
  node.mapped().reset();
  e_.connection_ended();
}

}  // namespace sslstream::detail
