#!/usr/bin/env bash
# Make a private certificate authority and certificates for a TLS-secured Dask cluster.
#
#   cluster/tls/make-certs.sh DIR [HOST ...]
#
# writes into DIR (created, mode 700):
#   ca.pem, ca-key.pem             the authority: give ca.pem to every party, keep ca-key.pem offline
#   scheduler.pem, scheduler-key.pem
#   worker.pem, worker-key.pem
#   client.pem, client-key.pem     for smem-dask (--tls-ca ca.pem --tls-cert client.pem --tls-key client-key.pem)
# Every certificate is signed by the authority and valid for 365 days; the scheduler's names the
# hosts given (default: localhost and 127.0.0.1); the client's is for client authentication only.
# Dask's TLS checks both ends against ca.pem, so a party without a certificate from this authority
# cannot connect — but Dask does not check roles: anyone holding any of these keys is in. Needs openssl.
set -euo pipefail
if [[ $# -lt 1 ]]; then
    echo "usage: $0 DIR [HOST ...]" >&2
    exit 2
fi
dir=$1
shift
hosts=("$@")
[[ ${#hosts[@]} -gt 0 ]] || hosts=(localhost 127.0.0.1)
umask 077
mkdir -p "$dir"
chmod 700 "$dir"
cd "$dir"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
run() {  # quiet openssl, but its messages when it fails
    if ! "$@" >"$log" 2>&1; then
        echo "$0: failed: $*" >&2
        cat "$log" >&2
        exit 1
    fi
}
if [[ -e ca.pem ]]; then
    echo "$0: $dir already holds ca.pem; remove it or choose another directory" >&2
    exit 2
fi
san=""
for h in "${hosts[@]}"; do
    if [[ $h =~ ^[0-9.]+$ || $h == *:* ]]; then san+="IP:$h,"; else san+="DNS:$h,"; fi
done
san=${san%,}

run openssl req -x509 -newkey rsa:2048 -nodes -days 365 -subj "/CN=smem-dask cluster CA" \
    -keyout ca-key.pem -out ca.pem \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -addext "subjectKeyIdentifier=hash"
for who in scheduler worker client; do
    run openssl req -newkey rsa:2048 -nodes -subj "/CN=smem-dask $who" \
        -keyout "$who-key.pem" -out "$who.csr"
    {
        echo "basicConstraints=CA:FALSE"
        echo "keyUsage=digitalSignature,keyEncipherment"
        echo "subjectKeyIdentifier=hash"
        echo "authorityKeyIdentifier=keyid"
        if [[ $who == client ]]; then
            echo "extendedKeyUsage=clientAuth"        # a client only ever connects
        else
            echo "extendedKeyUsage=serverAuth,clientAuth"  # listens, and connects to its peers
            echo "subjectAltName=$san"
        fi
    } > "$who.ext"
    run openssl x509 -req -in "$who.csr" -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 365 \
        -extfile "$who.ext" -out "$who.pem"
    rm -f "$who.csr" "$who.ext"
done
rm -f ca.srl
echo "wrote ca.pem and scheduler/worker/client certificates and keys to $dir (names: ${hosts[*]})"
