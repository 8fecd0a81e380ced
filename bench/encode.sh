#!/usr/bin/env bash
# bench/encode.sh BUILD_DIR - base64 and quoted-printable throughput (MB/s) beside OpenSSL's
# EVP_EncodeBlock on the same data, in the same process (bench_encode).
set -eu
build=${1:?usage: bench/encode.sh BUILD_DIR}
exec "$build/bench_encode"
