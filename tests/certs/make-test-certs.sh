#!/bin/sh
# Makes the test certificates in DIR (default: ./certs): a CA and leaves it signs, plus the
# hostile cases the tests need. Run by the build; nothing it makes is committed.
#
#   ca.pem ca.key             test root CA (RSA)            other-ca.pem  a CA nobody trusts
#   inter.pem                 intermediate CA signed by ca  chained.pem   leaf signed by inter
#   server-rsa.pem/.key       localhost, 127.0.0.1, ::1     server-ec.pem/.key  same, ECDSA P-256
#   client.pem/.key           client certificate (RSA)      client-ec.pem/.key  (ECDSA)
#   expired.pem/.key          validity in 2000              notyet.pem/.key     validity from 2090
#   wronghost.pem/.key        SAN wrong.example only        nosan.pem/.key      CN=localhost, no SAN
#   ipcn.pem/.key             CN=127.0.0.1, no SAN          unknown-ca.pem/.key leaf of other-ca
#   server-enc.key            server-rsa's key, AES-encrypted with password "secret"
#   revoked.pem/.key          revoked by ca                 crl.pem             ca's CRL
#   combined.pem              server-rsa.pem followed by its key (the tutorial's one-file form)
set -eu
dir=${1:-certs}
mkdir -p "$dir"
cd "$dir"
rm -rf db && mkdir db && : > db/index.txt && echo 1000 > db/serial && echo 1000 > db/crlnumber

ca_conf() {  # $1 = CA basename
  cat <<CONF
[ca]
default_ca = this
[this]
dir = db
database = db/index.txt
new_certs_dir = db
serial = db/serial
crlnumber = db/crlnumber
certificate = $1.pem
private_key = $1.key
default_md = sha256
default_crl_days = 36500
policy = anything
copy_extensions = none
unique_subject = no
[anything]
organizationName = optional
commonName = supplied
[leaf]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth,clientAuth
subjectAltName = \${ENV::SAN}
[leaf_nosan]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth,clientAuth
[ca_ext]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
CONF
}

key() {  # $1 = name, $2 = rsa|ec
  if [ "$2" = ec ]; then
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1.key" 2>/dev/null
  else
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$1.key" 2>/dev/null
  fi
}

root() {  # $1 = name, $2 = CN
  key "$1" rsa
  openssl req -x509 -new -key "$1.key" -sha256 -days 36500 -subj "/O=sslstream tests/CN=$2" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out "$1.pem" 2>/dev/null
}

# sign NAME CN CA EXT SAN [extra openssl-ca args...]
sign() {
  name=$1 cn=$2 ca=$3 ext=$4
  SAN=$5
  export SAN
  shift 5
  ca_conf "$ca" > db/ca.conf
  openssl req -new -key "$name.key" -subj "/O=sslstream tests/CN=$cn" -out db/req.pem 2>/dev/null
  openssl ca -batch -config db/ca.conf -extensions "$ext" -in db/req.pem -out "$name.pem" \
    -notext "$@" 2>/dev/null
  [ -s "$name.pem" ] || { echo "failed to make $name.pem" >&2; exit 1; }
}

local_san="DNS:localhost,IP:127.0.0.1,IP:::1"
root ca "sslstream test CA"
root other-ca "sslstream untrusted CA"

key inter rsa
sign inter "sslstream intermediate CA" ca ca_ext "DNS:unused" -days 36500
key chained rsa
sign chained localhost inter leaf "$local_san" -days 36500

for k in rsa ec; do
  key server-$k $k
  sign server-$k localhost ca leaf "$local_san" -days 36500
  key client-$k $k
  sign client-$k "sslstream test client" ca leaf "DNS:client.example" -days 36500
done
cp client-rsa.pem client.pem && cp client-rsa.key client.key

key expired rsa
sign expired localhost ca leaf "$local_san" -startdate 20000101000000Z -enddate 20010101000000Z
key notyet rsa
sign notyet localhost ca leaf "$local_san" -startdate 20900101000000Z -enddate 20910101000000Z
key wronghost rsa
sign wronghost wrong.example ca leaf "DNS:wrong.example" -days 36500
key nosan rsa
sign nosan localhost ca leaf_nosan "" -days 36500
key ipcn rsa
sign ipcn 127.0.0.1 ca leaf_nosan "" -days 36500
key unknown-ca rsa
sign unknown-ca localhost other-ca leaf "$local_san" -days 36500
key revoked rsa
sign revoked localhost ca leaf "$local_san" -days 36500

ca_conf ca > db/ca.conf
openssl ca -config db/ca.conf -revoke revoked.pem 2>/dev/null
openssl ca -config db/ca.conf -gencrl -out crl.pem 2>/dev/null

openssl pkey -in server-rsa.key -aes256 -passout pass:secret -out server-enc.key 2>/dev/null
cat server-rsa.pem server-rsa.key > combined.pem
# The CA as an OpenSSL hashed directory, for ca_directory.
rm -rf cadir && mkdir cadir && cp ca.pem cadir/ && openssl rehash cadir
rm -rf db
echo "test certificates in $(pwd)"
