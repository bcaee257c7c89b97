#!/usr/bin/env bash
# Builds the libFuzzer harnesses (fuzz/, clang + ASan + UBSan, Debian's libtorch) and runs each one.
#   bash scripts/fuzz.sh [--runs N | --seconds N] [target ...]     (default --runs 10000, all four targets)
# Seeds come from $FX/fuzz-seeds (scripts/fixtures/make_fuzz_seeds.py, made here when missing); every target prints
# its execution count. A sanitizer report, crash, leak or timeout fails the run and its input is kept in
# fuzz-findings/<target>/; copied into test/fixtures/fuzz/<target>/ it is run first every time (a regression check).
set -euo pipefail
cd "$(dirname "$0")/.."
# --runs (what npm test uses) is reproducible: a fixed seed; --seconds explores with a fresh one each time
MODE=(-runs=10000 -seed=20261130)
TARGETS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) MODE=(-runs="$2" -seed=20261130); shift 2 ;;
    --seconds) MODE=(-max_total_time="$2"); shift 2 ;;
    -*) echo "usage: scripts/fuzz.sh [--runs N | --seconds N] [pickle|pth|safetensors|decode ...]" >&2; exit 2 ;;
    *) TARGETS+=("$1"); shift ;;
  esac
done
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(pickle pth safetensors decode)

# Debian 12 has clang 14, Debian 13 clang 19
. /etc/os-release
case "${VERSION_ID:-12}" in 12) V=14 ;; *) V=19 ;; esac
for p in "clang-$V" "libclang-rt-$V-dev"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    echo "[fuzz] installing clang-$V and libFuzzer"
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "clang-$V" "libclang-rt-$V-dev"
    break
  fi
done

if [ ! -f build-fuzz/build.ninja ]; then
  CC="clang-$V" CXX="clang++-$V" cmake -S fuzz -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo > build-fuzz.log 2>&1 || { cat build-fuzz.log; exit 1; }
fi
echo "[fuzz] building the harnesses (build-fuzz/)"
ninja -C build-fuzz > build-fuzz/ninja.log 2>&1 || { tail -50 build-fuzz/ninja.log; exit 1; }

SEEDS=.fixtures/fuzz-seeds
stamp="$(sha256sum scripts/fixtures/make_fuzz_seeds.py | cut -c1-16)"
if [ "$(cat $SEEDS/stamp 2>/dev/null)" != "$stamp" ]; then
  rm -rf $SEEDS
  /usr/bin/python3 scripts/fixtures/make_fuzz_seeds.py $SEEDS
  echo "$stamp" > $SEEDS/stamp
fi

declare -A MAXLEN=([pickle]=4096 [pth]=8192 [safetensors]=4096 [decode]=16384)
status=0
for t in "${TARGETS[@]}"; do
  work="$(mktemp -d)"
  mkdir -p "fuzz-findings/$t"
  log="$work/log"
  # ASan: a bad_alloc-style refusal is fine, an allocation over 2 GB is a finding; leaks are checked at exit.
  if ASAN_OPTIONS=allocator_may_return_null=1:detect_leaks=1 LSAN_OPTIONS=suppressions=fuzz/lsan.supp UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    "build-fuzz/${t}_fuzz" "${MODE[@]}" -max_len="${MAXLEN[$t]}" -timeout=10 -rss_limit_mb=3072 -malloc_limit_mb=2048 \
      -print_final_stats=1 -artifact_prefix="fuzz-findings/$t/" "$work" "$SEEDS/$t" $(ls -d "test/fixtures/fuzz/$t" 2>/dev/null) > "$log" 2>&1; then
    runs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)"
    cov="$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || echo 0)"
    echo "[fuzz] $t: $runs executions, coverage $cov edges, 0 sanitizer reports"
  else
    status=1
    echo "[fuzz] $t: FAILED"
    grep -E "ERROR|SUMMARY|runtime error|==[0-9]+==|Test unit written" "$log" | head -20
    tail -40 "$log"
  fi
  rm -rf "$work"
done
exit $status
