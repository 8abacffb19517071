#!/bin/sh
# Makes the TLS tests' certificates in DIR with the openssl command line
# (EC P-256 keys, fast to make).  Shared by tests/check_tls.c and
# tests/integration/check_tls.c, and usable by hand (docs/operations.md).
#   ca.pem ca.key            the CA both ends trust
#   other-ca.pem             a second CA nobody trusts
#   server.pem server.key    CN=localhost, SAN DNS:localhost, IP:127.0.0.1 (from ca)
#   server2.pem server2.key  the same names, O=rotated: the cert after a rotation
#   wrongname.pem .key       CN=wrong.example, SAN DNS:wrong.example (from ca)
#   client.pem client.key   CN=edge1, SAN DNS:edge1 (from ca)
#   intruder.pem .key        CN=intruder (from ca: trusted, but not an allowed name)
#   expired.pem expired.key  CN=edge1, valid 2020-01-01 .. 2020-01-02 (from ca)
#   otherca.pem otherca.key  CN=edge1 from other-ca
#   bad.pem                  not a certificate (for reload failures)
set -eu
dir=$1
mkdir -p "$dir"
cd "$dir"
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1.key" 2>/dev/null; }
ca() {
    key "$1"
    openssl req -x509 -new -key "$1.key" -out "$1.pem" -days 3650 -subj "/CN=$2" \
        -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
}
mkdir -p db-ca db-other-ca
for c in ca other-ca; do
    : >"db-$c/index.txt"
    echo 1000 >"db-$c/serial"
    cat >"db-$c/ca.cnf" <<CNF
[ca]
default_ca = d
[d]
database = db-$c/index.txt
serial = db-$c/serial
new_certs_dir = db-$c
certificate = $c.pem
private_key = $c.key
default_md = sha256
policy = p
copy_extensions = copy
unique_subject = no
[p]
commonName = supplied
organizationName = optional
CNF
done
ca ca "sluice test CA"
ca other-ca "sluice other CA"
# leaf NAME CA SUBJECT SAN [startdate enddate]
leaf() {
    key "$1"
    openssl req -new -key "$1.key" -out "$1.csr" -subj "$3" -addext "subjectAltName=$4"
    if [ $# -ge 6 ]; then
        dates="-startdate $5 -enddate $6"
    else
        dates="-days 825"
    fi
    # shellcheck disable=SC2086
    openssl ca -batch -notext -config "db-$2/ca.cnf" -in "$1.csr" -out "$1.pem" $dates 2>/dev/null
    rm -f "$1.csr"
}
leaf server ca "/CN=localhost" "DNS:localhost,IP:127.0.0.1"
leaf server2 ca "/O=rotated/CN=localhost" "DNS:localhost,IP:127.0.0.1"
leaf wrongname ca "/CN=wrong.example" "DNS:wrong.example"
leaf client ca "/CN=edge1" "DNS:edge1"
leaf intruder ca "/CN=intruder" "DNS:intruder"
leaf expired ca "/CN=edge1" "DNS:edge1" 20200101000000Z 20200102000000Z
leaf otherca other-ca "/CN=edge1" "DNS:edge1"
echo "not a certificate" >bad.pem
chmod 600 ./*.key
