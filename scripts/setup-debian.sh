#!/usr/bin/env bash
# Installs everything lookalike needs on Debian 12 (bookworm), from Debian's own packages only.
# Run as root (or with sudo). Safe to re-run.
set -euo pipefail
if [ "$(id -u)" != 0 ]; then exec sudo "$0" "$@"; fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
  build-essential cmake pkg-config bc \
  postgresql-15 postgresql-server-dev-15 postgresql-contrib libpq-dev libipc-run-perl \
  libtorch-dev libopenblas0-openmp libopencv-dev libwebp-dev libjpeg62-turbo-dev libpng-dev libssl-dev \
  googletest libgtest-dev \
  clang clang-format libclang-rt-14-dev \
  python3 python3-numpy python3-opencv python3-torch python3-torchvision \
  python3-psycopg2 python3-psycopg \
  chromium >/dev/null
# libopenblas0-openmp: LibTorch's matrix products (the embedding projection, the trained layers'
# backward passes) go to the system's libblas.so.3; OpenBLAS runs them about 13 times faster than
# Debian's reference BLAS. Its OpenMP build shares LibTorch's OpenMP pool, which lookalike.threads
# sizes, and starts no thread when it loads (the pthread build starts one per CPU, in every
# backend that loads lookalike; where that one is installed, lookalike holds it to one thread:
# src/model/runtime.cpp, size_openblas_threads; docs/model.md, "BLAS").
# pgvector (for the companion extension lookalike_pgvector) is not packaged for Debian 12; where
# it is installed, the tests use it, otherwise a stand-in (docs/pgvector.md).
# clang + libclang-rt-14-dev: libFuzzer and the sanitizer runtimes of test/fuzz/ (scripts/fuzz.sh);
# clang-format: the formatting check of test/check_layout.sh.
# The Debian postgresql-15 package starts a cluster of its own; lookalike's tests and demo use
# throwaway clusters and do not need it.
echo "lookalike: dependencies installed"
