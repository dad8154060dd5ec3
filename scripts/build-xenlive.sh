#!/usr/bin/env bash
# npm run build:live: build the optional xenlive addon (native/xenlive) with node-gyp against the installed
# node's own headers (<node prefix>/include/node: nothing is downloaded) and Xen's headers and libraries from
# Debian's libxen-dev. Everything else in p2m-audit works without it; only --domain needs it.
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=$(node -p "require('path').resolve(process.execPath, '../..')")
if [ ! -f "$prefix/include/node/node_api.h" ]; then
  echo "build:live: $prefix/include/node/node_api.h is missing: install the node headers that match $(node --version)" >&2
  exit 2
fi
if [ ! -f /usr/include/xenctrl.h ] || [ ! -f /usr/include/xenforeignmemory.h ]; then
  echo "build:live: Xen's headers are missing: apt-get install libxen-dev" >&2
  exit 2
fi
npx --no-install node-gyp rebuild --nodedir="$prefix" -C native/xenlive
ls -l native/xenlive/build/Release/xenlive.node
