#!/usr/bin/env bash
# The Debian 13 (trixie) prebuilt: built against Debian 13's own libtorch-dev 2.6 with its gcc 14, inside a Debian 13
# root (debootstrap --variant=minbase from this machine's Debian mirror; needs root), so it links exactly the sonames
# Debian 13 users have. The binaries land in prebuilds/linux-x64/system-<version>/ with build.json; `npm pack` then
# carries them next to this machine's own builds (scripts/prebuild.mjs).
# TRIXIE_ROOT: the build root (default /srv/trixie-build; made when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
R="${TRIXIE_ROOT:-/srv/trixie-build}"
MIRROR="$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || echo http://deb.debian.org/debian)"
PKGS="ca-certificates nodejs npm libtorch-dev libopenblas0-pthread build-essential cmake ninja-build pkg-config libturbojpeg0-dev libjpeg62-turbo-dev libpng-dev nlohmann-json3-dev libgloo-dev"
if [ ! -x "$R/usr/bin/apt-get" ]; then
  command -v debootstrap >/dev/null || apt-get install -y -qq debootstrap
  echo "[debian13] debootstrap trixie into $R from $MIRROR"
  debootstrap --variant=minbase trixie "$R" "$MIRROR" >/dev/null
fi
for d in proc sys dev; do mountpoint -q "$R/$d" || mount --bind "/$d" "$R/$d"; done
trap 'for d in proc sys dev; do umount "$R/$d" 2>/dev/null || true; done' EXIT
mkdir -p "$R/usr/local/share/ca-certificates"
cp /usr/local/share/ca-certificates/* "$R/usr/local/share/ca-certificates/" 2>/dev/null || true
cp /etc/resolv.conf "$R/etc/resolv.conf"
chroot "$R" bash -c "dpkg-query -W libtorch-dev nlohmann-json3-dev nodejs >/dev/null 2>&1 || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $PKGS && update-ca-certificates)"
# the sources as committed plus the working tree's changes (git ls-files), and the locked npm dependencies
# (the build folder and node_modules are kept between runs: an incremental build; mtimes preserved)
mkdir -p "$R/src"
find "$R/src" -mindepth 1 -maxdepth 1 ! -name build ! -name node_modules ! -name .lock -exec rm -rf {} +
git ls-files -co --exclude-standard -z | xargs -0 cp -p --parents -t "$R/src"
chroot "$R" bash -c 'cd /src && { cmp -s package-lock.json .lock || { ONNXRUNTIME_NODE_INSTALL=skip npm ci --omit=dev --ignore-scripts --no-audit --no-fund >/dev/null && cp package-lock.json .lock; }; } && node node_modules/cmake-js/bin/cmake-js compile --CDCMAKE_BUILD_TYPE=Release -- -j$(nproc) 2>&1 | tee /src/build.log | grep -E "warning|error|Error" || true'
ver="$(chroot "$R" bash -c "/sbin/ldconfig -p | sed -n 's/.*libtorch_cpu\.so\.\([0-9]*\.[0-9]*\) .*/\1/p' | head -1")"
[ -f "$R/src/build/Release/torch_resnet_tl.node" ] || { echo "[debian13] build failed: $R/src/build.log"; exit 1; }
dst="prebuilds/linux-x64/system-$ver"
rm -rf "$dst" && mkdir -p "$dst"
for f in torch_resnet_tl.node tl_preload.node; do strip --strip-unneeded -o "$dst/$f" "$R/src/build/Release/$f"; done
hash="$(node scripts/sources-hash.mjs)"
printf '{\n "libtorch": "%s",\n "kind": "system",\n "libDir": "/usr/lib/x86_64-linux-gnu",\n "builtOn": "Debian GNU/Linux 13 (trixie) root",\n "sources": "%s"\n}\n' "$ver" "$hash" > "$dst/build.json"
echo "[debian13] $dst: $(du -h "$dst/torch_resnet_tl.node" | cut -f1); warnings in the build: $(grep -c 'warning:' "$R/src/build.log" || true)"
