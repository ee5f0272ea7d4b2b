// sslstream demo: the Allegro CL SSL tutorial end to end on localhost — Lisp One (the server)
// and Lisp Two (the client) as two threads, printing each step and what each side reads.
#include <future>
#include <iostream>
#include <mutex>
#include <sstream>

#include "cli.hpp"
#include "sample_pem.hpp"

namespace cli {

using namespace sslstream;

namespace {

std::mutex print_mutex;

template <class... T>
void say(const char* who, const T&... parts) {
  std::ostringstream line;
  line << "[" << who << "] ";
  (line << ... << parts);
  std::lock_guard lk(print_mutex);
  std::cout << line.str() << std::endl;
}

template <class T>
std::string shown(const T& x) {
  std::ostringstream s;
  s << x;
  return s.str();
}

int run() {
  phase at = phase::setup;
  return guarded("demo", at, nullptr, [&] {
    std::cout << "sslstream demo: the Allegro CL SSL tutorial, end to end on localhost\n"
              << "  Lisp One is the SSL server, Lisp Two the SSL client; the certificate is the "
                 "sample examples/ssl/server.pem.\n\n";
    ssl_options server_opts;
    server_opts.certificate_pem = sample_pem;
    ssl_options client_opts;
    client_opts.ca_pem = sample_pem;  // the sample is self-signed: the client trusts it by name

    auto passv = make_socket(passive{});
    say("lisp one", "(setq passv (socket:make-socket :connect :passive))");
    say("lisp one", "  => ", shown(passv), "   ; port ", passv.local_port(), " assigned");

    std::promise<void> server_reading;
    auto server = std::async(std::launch::async, [&] {
      auto con = passv.accept_connection();
      say("lisp one", "(setq con (socket:accept-connection passv))");
      say("lisp one", "  => ", shown(con));
      auto ssl_serve = make_ssl_server_stream(std::move(con), server_opts);
      ssl_serve.set_timeout(std::chrono::seconds(30));
      say("lisp one",
          "(setq ssl-serve (socket:make-ssl-server-stream con :certificate \"server.pem\"))");
      say("lisp one", "  => ", shown(ssl_serve));
      say("lisp one", "(read ssl-serve)   ; waits: the handshake happens inside this read");
      server_reading.set_value();
      std::string first, second;
      ssl_serve >> first;
      say("lisp one", "  => ", first);
      say("lisp one", "(read ssl-serve)");
      ssl_serve >> second;
      say("lisp one", "  => ", second);
      say("lisp one", "(format ssl-serve \"got-it \") (force-output ssl-serve)");
      ssl_serve << "got-it " << std::flush;
      std::string rest;
      ssl_serve >> rest;  // the client's close: a clean end of stream
      say("lisp one", "(close ssl-serve)   ; ", shown(ssl_serve));
      ssl_serve.close();
      passv.close();
      say("lisp one", "(close passv)");
      say("lisp one", "  => ", shown(passv));
      return first + " " + second;
    });

    auto act = make_socket(active{.remote_host = "localhost", .remote_port = passv.local_port()});
    say("lisp two", "(setq act (socket:make-socket :remote-host \"localhost\" :remote-port ",
        act.remote_port(), "))");
    say("lisp two", "  => ", shown(act));
    server_reading.get_future().wait();
    auto ssl_client = make_ssl_client_stream(std::move(act), client_opts);
    ssl_client.set_timeout(std::chrono::seconds(30));
    say("lisp two", "(setq ssl-client (socket:make-ssl-client-stream act))");
    say("lisp two", "  => ", shown(ssl_client));
    say("lisp two",
        "(format ssl-client \"secret message \") (force-output ssl-client)   ; the handshake runs "
        "now");
    at = phase::handshake;
    ssl_client << "secret message " << std::flush;
    say("lisp two", "  handshake done: ", shown(ssl_client));
    at = phase::transfer;
    std::string reply;
    say("lisp two", "(read ssl-client)");
    ssl_client >> reply;
    say("lisp two", "  => ", reply);
    std::string protocol = ssl_client.protocol_version(), cipher = ssl_client.cipher();
    say("lisp two", "(close ssl-client)");
    ssl_client.close();
    std::string received = server.get();

    bool good = received == "secret message" && reply == "got-it";
    std::cout << '\n'
              << (good ? "demo succeeded: " : "demo FAILED: ") << "the server read \"" << received
              << "\", the client read \"" << reply << "\", over " << protocol << " (" << cipher
              << ")\n";
    return good ? ok : other;
  });
}

}  // namespace

void add_demo(CLI::App& app, command& chosen) {
  auto* sub = app.add_subcommand("demo", "run the Allegro CL SSL tutorial end to end on localhost");
  sub->callback([&chosen] { chosen = {[] { return run(); }}; });
}

}  // namespace cli
