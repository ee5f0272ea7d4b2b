// sslstream — Allegro Common Lisp's socket and SSL-stream model for C++20, on OpenSSL 3.
// The one header to include.
#pragma once

#include <sslstream/duplex_iostream.hpp>
#include <sslstream/error.hpp>
#include <sslstream/server.hpp>
#include <sslstream/socket.hpp>
#include <sslstream/ssl_context.hpp>
#include <sslstream/ssl_stream.hpp>
#include <sslstream/x509.hpp>
