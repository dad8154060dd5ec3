#!/usr/bin/env bash
# Fetches Xen's own migration-stream verifier, verify-stream-v2 (xen-project/xen tools/python/scripts/verify-stream-v2
# with tools/python/xen/migration/*.py), from Debian bookworm's xen-utils-4.17 package: `apt-get download` into a
# cache directory (default <repo>/.cache/xen-verifier, or $1, or $XEN_VERIFIER_CACHE), `dpkg -x` it, and print the
# extracted root on stdout. Run the verifier as:
#   PYTHONPATH=<root>/usr/lib/xen-4.17/lib/python python3 <root>/usr/lib/xen-4.17/bin/verify-stream-v2 -f xl|libxc -i FILE
# `apt-get update` is run only when the download fails (stale package lists). Progress goes to stderr.
set -euo pipefail

PKG=xen-utils-4.17
REL_BIN=usr/lib/xen-4.17/bin/verify-stream-v2
REL_PY=usr/lib/xen-4.17/lib/python/xen/migration/libxc.py

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${1:-${XEN_VERIFIER_CACHE:-$repo_root/.cache/xen-verifier}}
root="$cache/root"

if [ -f "$root/$REL_BIN" ] && [ -f "$root/$REL_PY" ]; then
  echo "$root"
  exit 0
fi

mkdir -p "$cache"
cd "$cache"
if ! compgen -G "${PKG}_*.deb" >/dev/null; then
  if ! apt-get download "$PKG" >&2; then
    echo "get-xen-verifier: apt-get download $PKG failed; running apt-get update and retrying" >&2
    apt-get update >&2
    apt-get download "$PKG" >&2
  fi
fi
deb=$(ls -t "${PKG}"_*.deb | head -n 1)
rm -rf root.tmp
mkdir root.tmp
dpkg -x "$deb" root.tmp
rm -rf root
mv root.tmp root
if [ ! -f "$root/$REL_BIN" ] || [ ! -f "$root/$REL_PY" ]; then
  echo "get-xen-verifier: $deb does not contain $REL_BIN and $REL_PY" >&2
  exit 1
fi
echo "$root"
