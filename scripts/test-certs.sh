#!/usr/bin/env bash
# Writes throwaway TLS material for the backend TLS tests into DIR (created): a test CA
# (ca.pem), a server certificate it signed for localhost and 127.0.0.1 (server.pem, server.key),
# and an unrelated CA (other-ca.pem) that must not be trusted. Nothing here is secret.
set -euo pipefail
dir=${1:?usage: scripts/test-certs.sh DIR}
command -v openssl >/dev/null || { echo "test-certs: openssl is required (apt-get install openssl)" >&2; exit 1; }
mkdir -p "$dir"
cd "$dir"
quiet() { "$@" >/dev/null 2>&1 || { echo "test-certs: $* failed" >&2; exit 1; }; }
for ca in ca other-ca; do
  quiet openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=prodex test $ca" \
    -keyout "$ca.key" -out "$ca.pem" -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
done
quiet openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout server.key -out server.csr
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n' > server.ext
quiet openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -out server.pem -extfile server.ext
chmod 644 ca.pem other-ca.pem server.pem
chmod 600 server.key ca.key other-ca.key
