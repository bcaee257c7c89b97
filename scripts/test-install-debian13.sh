#!/usr/bin/env bash
# (b) of the install check: Debian 13 as a new user has it. A fresh Debian 13 root (debootstrap --variant=minbase
# trixie from this machine's mirror; needs root) with only Debian's nodejs + npm installed; the packed tarball
# (which must carry the Debian 13 binary: npm run prebuilds:debian13 first) installed into an empty project, then
# `npx torch-resnet-tl setup` (installs the runtime packages as root and checks itself), then a prediction with the
# shared squeezenet weights. Prints the time of each step.
# USER_ROOT: the root to use (default /srv/trixie-user; made fresh unless KEEP_ROOT=1 and it exists).
set -euo pipefail
cd "$(dirname "$0")/.."
R="${USER_ROOT:-/srv/trixie-user}"
SHARED="$(cd "${TORCH_RESNET_TL_SHARED:-../shared}" && pwd)"
MIRROR="$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || echo http://deb.debian.org/debian)"
umount_all() { for d in shared proc sys dev; do umount "$R/$d" 2>/dev/null || true; done; }
if [ "${KEEP_ROOT:-0}" != 1 ] || [ ! -x "$R/usr/bin/npm" ]; then
  umount_all; rm -rf "$R"
  t0=$(date +%s)
  debootstrap --variant=minbase trixie "$R" "$MIRROR" >/dev/null
  mkdir -p "$R/usr/local/share/ca-certificates"; cp /usr/local/share/ca-certificates/* "$R/usr/local/share/ca-certificates/" 2>/dev/null || true
  cp /etc/resolv.conf "$R/etc/resolv.conf"
  for d in proc sys dev; do mount --bind "/$d" "$R/$d"; done
  chroot "$R" bash -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ca-certificates nodejs npm >/dev/null && update-ca-certificates >/dev/null'
  echo "[debian13] fresh root with nodejs $(chroot "$R" node --version) + npm $(chroot "$R" npm --version): $(( $(date +%s) - t0 )) s"
else
  for d in proc sys dev; do mountpoint -q "$R/$d" || mount --bind "/$d" "$R/$d"; done
fi
trap umount_all EXIT
mkdir -p "$R/shared"; mountpoint -q "$R/shared" || mount --bind -o ro "$SHARED" "$R/shared"
tgz="$(npm pack --silent --pack-destination /tmp | tail -1)"
ls -l "/tmp/$tgz" | awk '{print "[debian13] tarball " $5/1e6 " MB"}'
tar tzf "/tmp/$tgz" | grep 'torch_resnet_tl.node' | sed 's/^/[debian13]   /'
cp "/tmp/$tgz" "$R/tmp/pkg.tgz"
rm -rf "$R/app" && mkdir -p "$R/app"
cat > "$R/app/predict.cjs" <<'JS'
const { Model, version } = require('torch-resnet-tl');
(async () => {
  const m = await Model.create({ arch: 'squeezenet1_1', weights: '/shared/weights/squeezenet1_1-imagenet.pth' });
  const [p] = await m.predict(['/shared/data/imagenet-samples/n01443537_goldfish.JPEG'], { topk: 1 });
  console.log(JSON.stringify({ libtorch: version().libtorch, top: p[0], binary: require('torch-resnet-tl').loadedBinary().path }));
})().catch((e) => { console.error(e); process.exit(1); });
JS
chroot "$R" bash -c '
set -e
cd /app && npm init -y >/dev/null
t0=$(date +%s.%N); npm install --no-audit --no-fund /tmp/pkg.tgz >/dev/null; t1=$(date +%s.%N)
echo "[debian13] npm install: $(node -e "console.log(($t1 - $t0).toFixed(1))") s"
node predict.cjs 2>&1 | head -3 | sed "s/^/[debian13] before setup: /" || true
t0=$(date +%s); npx torch-resnet-tl setup; echo "[debian13] npx torch-resnet-tl setup: $(( $(date +%s) - t0 )) s"
t0=$(date +%s); node predict.cjs | sed "s/^/[debian13] prediction: /"; echo "[debian13] prediction run: $(( $(date +%s) - t0 )) s"
'
