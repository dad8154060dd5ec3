#!/usr/bin/env bash
# Assemble the payload of the live integration test (test/live-xen.test.ts) for ../shared/xen-host/run.sh:
#   scripts/xen-payload.sh DIR
# DIR/app = the built project (dist/, package.json, the production node_modules and the xenlive addon built
# here, since dom0 has no compiler; the CLI and workers always esbuild-bundled into DIR/app/dist by
# scripts/bundle.mjs, whatever state dist/ is in: `npx tsc` alone leaves them unbundled, which costs seconds of
# module loading per command under qemu TCG), DIR/run.sh and helpers (test/xen-payload/), DIR/domu-modules/p2mlow.ko
# (built against Debian's linux-headers-6.1.0-56-amd64 with gcc-12), DIR/maps/System.map-* (the guest
# kernel's map from ../shared/real-xen, plus a decoy under another version for --system-map-dir).
set -euo pipefail
cd "$(dirname "$0")/.."
P=${1:?usage: scripts/xen-payload.sh DIR}
KVER=6.1.0-56-amd64
HDR=/usr/src/linux-headers-$KVER
MAPGZ=../shared/real-xen/guest-kernel/System.map-$KVER.gz
[ -d "$HDR" ] || { echo "xen-payload: $HDR is missing: apt-get install linux-headers-$KVER gcc-12 make" >&2; exit 2; }
[ -f "$MAPGZ" ] || { echo "xen-payload: $MAPGZ is missing" >&2; exit 2; }
[ -f dist/src/cli.js ] || { echo "xen-payload: dist/ is not built (npm run build)" >&2; exit 2; }
[ -f native/xenlive/build/Release/xenlive.node ] || bash scripts/build-xenlive.sh

mkdir -p "$P/app/native/xenlive/build/Release" "$P/app/node_modules" "$P/domu-modules" "$P/maps"
cp -a dist package.json "$P/app/"
node scripts/bundle.mjs "$P/app/dist"
head -c 300 "$P/app/dist/src/cli.js" | grep -q __p2mCreateRequire || { echo "xen-payload: $P/app/dist/src/cli.js is not the bundle" >&2; exit 2; }
cp native/xenlive/build/Release/xenlive.node "$P/app/native/xenlive/build/Release/"
# production dependencies only (the dev tools are most of node_modules)
npm ls --omit=dev --all --parseable 2>/dev/null | tail -n +2 | sed "s|^$PWD/||" | while read -r dir; do
  [ -d "$dir" ] && mkdir -p "$P/app/$(dirname "$dir")" && cp -a "$dir" "$P/app/$(dirname "$dir")/" 2>/dev/null || true
done

M=$(mktemp -d)
cp test/xen-payload/module/p2mlow.c test/xen-payload/module/Kbuild "$M/"
make -s -C "$HDR" M="$M" modules > "$M/build.log" 2>&1 || { cat "$M/build.log" >&2; exit 2; }
cp "$M/p2mlow.ko" "$P/domu-modules/"
rm -rf "$M"

gzip -dc "$MAPGZ" > "$P/maps/System.map-$KVER"
cp "$P/maps/System.map-$KVER" "$P/maps/System.map-5.10.0-99-amd64"   # a decoy: its version is not the guest's
cp test/xen-payload/run.sh test/xen-payload/xen_p2m_pfns.py "$P/"
chmod +x "$P/run.sh"
du -sh "$P"
