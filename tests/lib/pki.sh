#!/bin/bash
# Test PKI: a throw-away CA and one server certificate for 127.0.0.1 /
# localhost (subjectAltName), made with the openssl CLI. Keys are 0600.
#
#   tests/lib/pki.sh DIR        writes DIR/ca.key DIR/ca.pem DIR/server.key DIR/server.pem
# or, sourced:  bz_pki DIR
# Existing files are kept (idempotent), so a sandbox can be brought up twice.

bz_pki() {
	local dir=$1 days=${BZ_PKI_DAYS:-30}
	[ -n "$dir" ] || { echo "bz_pki: usage: bz_pki DIR" >&2; return 2; }
	mkdir -p "$dir" && chmod 700 "$dir" || return 1
	if [ -s "$dir/ca.pem" ] && [ -s "$dir/server.pem" ] && [ -s "$dir/server.key" ]; then
		return 0
	fi
	(
		set -e
		umask 077
		cd "$dir"
		openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ca.key 2>/dev/null
		openssl req -x509 -new -key ca.key -sha256 -days "$days" \
			-subj "/CN=bastion test CA" \
			-addext "basicConstraints=critical,CA:TRUE" \
			-addext "keyUsage=critical,keyCertSign,cRLSign" \
			-addext "subjectKeyIdentifier=hash" \
			-out ca.pem
		openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out server.key 2>/dev/null
		openssl req -new -key server.key -sha256 -subj "/CN=127.0.0.1" -out server.csr
		cat > server.ext <<-'EOF'
			basicConstraints=critical,CA:FALSE
			keyUsage=critical,digitalSignature,keyEncipherment
			extendedKeyUsage=serverAuth
			subjectAltName=IP:127.0.0.1,DNS:localhost
			subjectKeyIdentifier=hash
			authorityKeyIdentifier=keyid
		EOF
		openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
			-days "$days" -sha256 -extfile server.ext -out server.pem 2>/dev/null
		rm -f server.csr server.ext ca.srl
		chmod 600 ca.key server.key
		chmod 644 ca.pem server.pem
		openssl verify -CAfile ca.pem server.pem >/dev/null
	) || { echo "bz_pki: could not create the test PKI in $dir" >&2; return 1; }
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	bz_pki "$@"
fi
