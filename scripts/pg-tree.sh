#!/usr/bin/env bash
# Builds a private PostgreSQL installation tree under $1 (default build/pg) that runs the
# system's PostgreSQL 15 binaries with this checkout's lookalike installed into it, without
# touching the system directories. PostgreSQL finds its share/ and lib/ directories relative to
# the postgres executable, so the binaries are copied (not linked) and everything else is linked.
# Prints the private bindir.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dest=${1:-$root/build/pg}
pg_config=${PG_CONFIG:-pg_config}
bindir=$($pg_config --bindir)
pkglibdir=$($pg_config --pkglibdir)
sharedir=$($pg_config --sharedir)

rm -rf "$dest"
mkdir -p "$dest$bindir" "$dest$pkglibdir" "$dest$sharedir/extension"
cp -p "$bindir"/* "$dest$bindir/"
for f in "$pkglibdir"/*; do ln -s "$f" "$dest$pkglibdir/"; done
for f in "$sharedir"/*; do
  [ "$(basename "$f")" = extension ] || ln -s "$f" "$dest$sharedir/"
done
for f in "$sharedir"/extension/*; do ln -s "$f" "$dest$sharedir/extension/"; done
# Install this checkout into the private tree (DESTDIR staging, then overlay).
make -C "$root" -s install DESTDIR="$dest/stage" >/dev/null
cp -p "$dest/stage$pkglibdir"/* "$dest$pkglibdir/"
for f in "$dest/stage$sharedir"/extension/*; do
  rm -f "$dest$sharedir/extension/$(basename "$f")"
  cp -p "$f" "$dest$sharedir/extension/"
done
rm -rf "$dest/stage"
echo "$dest$bindir"
