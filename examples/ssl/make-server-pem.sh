#!/bin/sh
# Regenerates examples/ssl/server.pem: the tutorial's sample certificate, an RSA-2048
# self-signed certificate for localhost, 127.0.0.1 and ::1, followed by its unencrypted key.
# Its key is public (it is in this repository): never trust it for anything but tests.
set -eu
out=${1:-$(dirname "$0")/server.pem}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 36500 \
  -subj "/O=sslstream sample (public key, do not trust)/CN=localhost" \
  -addext "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1" \
  -addext "basicConstraints=critical,CA:FALSE" \
  -addext "keyUsage=critical,digitalSignature,keyEncipherment" \
  -addext "extendedKeyUsage=serverAuth,clientAuth" \
  -keyout "$tmp/key.pem" -out "$tmp/cert.pem" 2>/dev/null
cat "$tmp/cert.pem" "$tmp/key.pem" > "$out"
echo "wrote $out"
