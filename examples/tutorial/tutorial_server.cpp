// Lisp One of the Allegro SSL tutorial, in C++: the SSL server.
//
//   terminal 1: ./tutorial_server              (prints the port, e.g. */54505)
//   terminal 2: ./tutorial_client 54505
//
// Optional second argument: the certificate+key file (default: the sample examples/ssl/server.pem).
#include <iostream>
#include <sslstream/sslstream.hpp>

int main(int argc, char** argv) try {
  std::string pem = argc > 1 ? argv[1] : SSLSTREAM_SAMPLE_PEM;

  // (setq passv (socket:make-socket :connect :passive))
  auto passv = sslstream::make_socket(sslstream::passive{});
  std::cout << passv << std::endl;
  std::cout << ";; Note: port number " << passv.local_port()
            << " assigned. Use it in the client: tutorial_client " << passv.local_port()
            << std::endl;

  // (setq con (socket:accept-connection passv))
  auto con = passv.accept_connection();
  std::cout << con << std::endl;

  // (setq ssl-serve (socket:make-ssl-server-stream con :certificate "server.pem"))
  sslstream::ssl_options o;
  o.certificate = pem;
  auto ssl_serve = sslstream::make_ssl_server_stream(std::move(con), o);
  std::cout << ssl_serve << std::endl;

  // (read ssl-serve) twice: the handshake happens inside the first read.
  std::string first, second;
  ssl_serve >> first;
  std::cout << "read: " << first << std::endl;
  ssl_serve >> second;
  std::cout << "read: " << second << std::endl;

  // (format ssl-serve "got-it ") (force-output ssl-serve)
  ssl_serve << "got-it " << std::flush;
  std::cout << "wrote: got-it" << std::endl;

  // (close ssl-serve) (close passv)
  ssl_serve.close();
  passv.close();
  std::cout << passv << std::endl;
  return first == "secret" && second == "message" ? 0 : 1;
} catch (const std::exception& e) {
  std::cerr << "tutorial_server: " << e.what() << '\n';
  return 1;
}
