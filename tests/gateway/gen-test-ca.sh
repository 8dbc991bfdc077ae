#!/usr/bin/env bash
# Generates a throwaway test CA and a server certificate for localhost/127.0.0.1/::1, signed by
# it, for bwgw-sim's wss:// and https:// port (platform-notes §5).
#
#   gen-test-ca.sh DIR     writes DIR/ca.pem DIR/ca.key DIR/server.pem DIR/server.key
#
# Clients trust DIR/ca.pem only (never turn verification off); GTlsFileDatabase needs the
# absolute path. Keys are unencrypted and for tests only.
set -euo pipefail

if [ $# -ne 1 ]; then
        echo "usage: $0 DIR" >&2
        exit 2
fi
dir=$1
mkdir -p "$dir"
cd "$dir"
umask 077

openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 3650 \
        -subj "/CN=bwcall test CA" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj "/CN=localhost" 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n' > server.ext
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 3650 \
        -extfile server.ext 2>/dev/null
rm -f server.csr server.ext ca.srl
chmod 0644 ca.pem server.pem
