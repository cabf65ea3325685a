#!/usr/bin/env bash
# Side-by-side benchmarks: strata vs Debian's containers-storage (and GNU tar for
# applies), on the real layers built by ../shared/bench/make-corpus.sh.
#
#   usage: [STRATA_BIN=path] scripts/bench.sh [--runs N] [--drivers "overlay vfs"] [--only REGEX] [--fs ext4|btrfs|host] [CORPUSDIR]
#   (the btrfs driver needs --fs btrfs: a fresh btrfs on a loop device instead of ext4)
#
# Needs root. Builds strata in release mode, then for each driver times, with
# hyperfine (median of N runs, each in a fresh store prepared outside the timing):
#   apply-<file>      import-layer of each corpus file (vs containers-storage, vs tar -xpf)
#   diff-imported     diff of an imported layer (tar-split replay)
#   diff-edited       diff of a layer edited through its mount (driver diff)
#   changes-layer2    changes of layer2
#   diffsize-layer2   diffsize of layer2
#   child-copy        create-layer child of the minbase+layer2 stack (vfs: a full copy)
#   chain-120         create a 120-layer chain and mount the deepest
#   chain-1000        (overlay) create a 1000-layer chain and mount the deepest
#   mapped-<file>     create-layer with --uidmap/--gidmap 0:100000:65536 on a host-owned layer
#                     holding <file> (debian-minbase.tar, layer-npm.tar), then mount it
#   unmapped-<file>   the same create + mount without maps (what a mapped one is compared to)
#   image-<layout>    import-image of an OCI layout built from the corpus (scripts/bench-image.py:
#                     minbase + layer2 in gzip and zstd, minbase cut into 8 layers), against
#                     `skopeo copy oci:… containers-storage:[driver@graph+run]…`
#   layers-<layout>   the same blobs as a plain import-layer sequence (vs containers-storage)
#   export-<gzip|zstd> export-image of the two-layer image to an OCI layout with that layer
#                     compression, against `skopeo copy containers-storage:… oci:…`
#   records: a store of 250, then 1,000 images of 5 layers each (and 200 containers), built
#   once with strata and copied for the reference, so both work on the same files:
#     images-N, layers-N, containers-200   list them (N images, 5N layers: linear in N?)
#     image-one                            image NAME (walks its layers for the size)
#     create-container, delete-container   one container on an image of the big store
#     delete-image                         an image of 5 layers of its own, with them
#   check-full        check of a store holding minbase and layer2 (replays both tar-split
#                     records), against reading those layers' files once (find | xargs cat),
#                     caches dropped before every run; containers-storage 1.43 has no check
#   check-quick       check --quick of the same store (no content read)
# and measures each command's peak RSS once with /usr/bin/time.
# Prints one markdown table per driver; ratios are of medians from the same run.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=5; DRIVERS="overlay vfs"; ONLY="."; FS=ext4
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) RUNS=$2; shift 2 ;;
    --fs) FS=$2; shift 2 ;;
    --drivers) DRIVERS=$2; shift 2 ;;
    --only) ONLY=$2; shift 2 ;;
    *) break ;;
  esac
done
CORPUS=${1:-/var/tmp/strata-corpus}
[ "$(id -u)" = 0 ] || { echo "bench.sh needs root" >&2; exit 1; }
for t in hyperfine containers-storage /usr/bin/time; do
  command -v "$t" >/dev/null || { apt-get update -qq; apt-get install -y -qq hyperfine containers-storage time >/dev/null; }
done
[ -s "$CORPUS/debian-minbase.tar" ] || bash ../shared/bench/make-corpus.sh "$CORPUS"
# STRATA_BIN times another strata build (an earlier commit's, to check for regressions).
if [ -n "${STRATA_BIN:-}" ]; then
  BIN=$(readlink -f "$STRATA_BIN")
else
  cargo build --release --quiet -p strata
  BIN=$(readlink -f target/release/strata)
fi
REF=$(command -v containers-storage)
HOSTW=$(mktemp -d /var/tmp/strata-bench.XXXXXX)
LOOP=""
# By default every store and tar target lives on a fresh ext4 (with a journal) on a loop
# device with direct I/O, made for this run: the same filesystem state for every tool, and
# none of the host filesystem's history (on a journal-less ext4 that has just deleted big
# trees, inode allocation skips recently freed inodes one by one and whichever tool runs next
# pays for it). Inode tables and journal are initialised by mkfs, and the script waits for
# the kernel's ext4lazyinit thread, which works for some seconds after a fresh mount
# (prefetching block bitmaps), before timing anything. `--fs host` uses the filesystem under
# /var/tmp instead.
if [ "$FS" = ext4 ] || [ "$FS" = btrfs ]; then
  truncate -s 24G "$HOSTW/fs.img"
  if [ "$FS" = btrfs ]; then
    mkfs.btrfs -q -f "$HOSTW/fs.img"
  else
    mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "$HOSTW/fs.img"
  fi
  LOOP=$(losetup --direct-io=on --show -f "$HOSTW/fs.img")
  mkdir "$HOSTW/fs"; mount "$LOOP" "$HOSTW/fs"
  for _ in $(seq 60); do pgrep -x ext4lazyinit >/dev/null || break; sleep 1; done
  W=$HOSTW/fs/work; mkdir "$W"
else
  W=$HOSTW
fi
RESULTS="$HOSTW/results.tsv"; : > "$RESULTS"

# Unmount what is mounted under one store dir (only paths under our own work dir), then wipe it.
reset_store() {
  local s
  s=$(readlink -m "$1")
  case "$s" in "$W"/*) ;; *) echo "refusing to reset $s" >&2; return 1 ;; esac
  { grep -o " $s/[^ ]*" /proc/mounts || true; } | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
  rm -rf "$s"; mkdir -p "$s/root" "$s/run"
}
cleanup() {
  set +e
  reset_store "$W/s"; reset_store "$W/p"; rm -rf "$W"
  if [ -n "$LOOP" ]; then
    umount "$HOSTW/fs" 2>/dev/null || umount -l "$HOSTW/fs"
    losetup -d "$LOOP"
  fi
  rm -rf "$HOSTW"
}
trap cleanup EXIT

# sub TOOL TEXT: fill the placeholders $X (the tool), $G/$R (its own graph and run roots; strata
# and containers-storage each get their own store so one's state never helps the other).
sub() {
  local t=$1 x=$2 d
  if [ "$t" = strata ]; then d=$W/s; x=${x//\$X/$BIN}; else d=$W/p; x=${x//\$X/$REF}; fi
  # $I: import an image (strata import-image; skopeo copy into the same kind of store, in a
  # private mount namespace so its blob-info cache stays out of /var/lib).
  if [ "$t" = strata ]; then x=${x//\$I/$BIN -g \$G -R \$R -s \$D import-image -n bench}
  else x=${x//\$I/skopeo_import \$D \$G \$R}; fi
  # $E COMPRESSION DEST: export that image (strata export-image; skopeo copy out of the store).
  if [ "$t" = strata ]; then x=${x//\$E/$BIN -g \$G -R \$R -s \$D export-image bench --compress}
  else x=${x//\$E/skopeo_export \$D \$G \$R}; fi
  x=${x//\$D/${DRV:-vfs}}
  x=${x//\$G/$d/root}; x=${x//\$R/$d/run}; printf '%s' "$x"
}
# skopeo_import DRIVER GRAPH RUN SOURCE
skopeo_import() {
  unshare -m --propagation private sh -c 'mount -t tmpfs tmpfs /var/lib && exec skopeo copy -q "$1" "containers-storage:[$2@$3+$4]bench"' \
    sh "$4" "$1" "$2" "$3"
}
# skopeo_export DRIVER GRAPH RUN COMPRESSION DEST
skopeo_export() {
  unshare -m --propagation private sh -c 'mount -t tmpfs tmpfs /var/lib && exec skopeo copy -q --dest-compress-format "$4" "containers-storage:[$1@$2+$3]bench" "$5"' \
    sh "$1" "$2" "$3" "$4" "$5"
}
reset_tar() { rm -rf "$W/t"; mkdir -p "$W/t"; }
# settle [FILE...]: write back and drop the caches, then read the tools' executables and the
# FILEs (the input) back into the page cache. Without this, a run that follows the deletion of
# a big tree pays for ext4 skipping the just-freed inodes (recently_deleted() scans inode
# tables that are still cached), which penalises whichever tool happens to run next; the input
# is warm for every tool alike, and so is each tool's program, as for a user running it again
# (read from disk, strata's 9 MB of code cost ~15 ms of a cold start, GNU tar's 0.5 MB ~1 ms).
settle() {
  sync; echo 3 > /proc/sys/vm/drop_caches
  printf '%s\n' "$TOOLS" | xargs -d '\n' cat > /dev/null
  [ $# -eq 0 ] || cat "$@" > /dev/null
}
# layer_seq "TOOL ARGS" LAYOUT: import-layer each layer blob of LAYOUT's image on the previous.
layer_seq() {
  local p="" b
  for b in $(cat "$2/layers.txt"); do p=$($1 import-layer $p < "$2/blobs/sha256/$b" | tail -1); done
}
TOOLS=$(for t in "$BIN" "$REF" "$(command -v tar)" "$(command -v skopeo || true)"; do [ -n "$t" ] && printf '%s\n' "$t"; done)
export -f reset_store reset_tar settle skopeo_import skopeo_export layer_seq; export W TOOLS

# time_one NAME DRIVER PREPARE CMD [TAR_CMD]: PREPARE runs before every timed run ("" for none).
# One untimed run of each tool comes first: it warms up, measures the peak RSS, and finds a tool
# that cannot do the job at all (then reported as "fails", not timed).
# NOSHELL=1: CMD is one plain command (its "> /dev/null" dropped) timed without a shell
# (hyperfine -N), for commands of a few milliseconds, where subtracting a shell's start-up
# cost leaves more noise than the command takes.
time_one() {
  local name=$1 drv=$2 prep=$3 cmd=$4 ct=${5:-} shell=(--shell bash) timed=$4
  if [ -n "${NOSHELL:-}" ]; then shell=(-N); timed=${cmd% > /dev/null}; fi
  echo "$name" | grep -Eq "$ONLY" || return 0
  echo "== $drv $name" >&2
  local cmds=() rss=() ref=()
  for t in strata containers-storage; do
    [ -n "$prep" ] && bash -c "$(sub $t "$prep")" >/dev/null 2>&1
    if /usr/bin/time -o "$W/rss" -f '%M' bash -c "$(sub $t "$cmd")" >/dev/null 2>"$W/err"; then
      rss+=("$(tail -1 "$W/rss")")
      local c=()
      [ -n "$prep" ] && c+=(--prepare "$(sub $t "$prep")")
      c+=(-n "$t" "$(sub $t "$timed")")
      if [ $t = strata ]; then cmds+=("${c[@]}"); else ref=("${c[@]}"); fi
    else
      echo "   $t fails: $(grep -v 'exit status' "$W/err" | tail -2 | tr '\n' ' ')" >&2
      rss+=(fails)
    fi
  done
  # hyperfine runs one command's runs, then the next's: GNU tar comes right after strata, so
  # that a drift of the machine's speed during the benchmark hits both alike.
  if [ -n "$ct" ]; then
    cmds+=(--prepare "reset_tar; settle ${SETTLE:-}" -n gnu-tar "${ct//\$T/$W/t}")
  fi
  if [ -n "$ct" ] || [ -n "${SYNCED:-}" ]; then
    # What writes layers also runs with sync=filesystem: layer data durable before the layer
    # counts as complete, which neither tar nor the reference (by default) wait for.
    [ -n "$prep" ] && cmds+=(--prepare "$(sub strata "$prep")")
    cmds+=(-n strata-synced "$(sub strata "${cmd//\$X/\$X --storage-opt $drv.sync=filesystem}")")
  fi
  cmds+=("${ref[@]}")
  hyperfine "${shell[@]}" --style none --runs "$RUNS" --export-json "$W/$drv-$name.json" "${cmds[@]}" >/dev/null
  python3 - "$W/$drv-$name.json" "$drv" "$name" "${rss[0]}" "${rss[1]}" >> "$RESULTS" <<'PY'
import json, sys
res = {r["command"]: r["median"] for r in json.load(open(sys.argv[1]))["results"]}
s, r, t, n = res.get("strata"), res.get("containers-storage"), res.get("gnu-tar"), res.get("strata-synced")
f = lambda v: f"{v:.3f}" if v else "-"
q = lambda a, b: f"{a/b:.2f}" if a and b else "-"
m = lambda v: v if v == "fails" else str(int(v) // 1024)
print("\t".join([sys.argv[2], sys.argv[3], f(s), f(n), f(r) if r else ("fails" if sys.argv[5] == "fails" else "-"),
                 f(t), q(s, r), q(n, r), q(s, t), q(n, t), m(sys.argv[4]), m(sys.argv[5])]))
PY
  # Keep what was measured so far visible, even if a later benchmark aborts the script.
  tail -1 "$RESULTS" >&2
}

# records DRIVER: the image and container benchmarks (see the header).
records() {
  local drv=$1 st="\$X -g \$G -R \$R -s $1" n=0
  local S="$BIN -g $W/s/root -R $W/s/run -s $drv"
  reset_store "$W/s"
  # grow N: images n+1..N, each on a chain of 5 layers of its own.
  grow() {
    for i in $(seq $((n + 1)) "$1"); do
      $S create-layer --id "l$i-1" >/dev/null
      for j in 2 3 4 5; do $S create-layer --id "l$i-$j" "l$i-$((j - 1))" >/dev/null; done
      $S create-image -i "img$i" -n "localhost/img:$i" "l$i-5" >/dev/null
    done
    n=$1
  }
  same_store() { reset_store "$W/p"; cp -a "$W/s/." "$W/p/"; }
  grow 250; same_store
  NOSHELL=1 time_one images-250 "$drv" "" "$st images > /dev/null"
  NOSHELL=1 time_one layers-1250 "$drv" "" "$st layers > /dev/null"
  grow 1000
  for i in $(seq 1 200); do $S create-container -i "c$i" "img$i" >/dev/null; done
  same_store
  NOSHELL=1 time_one images-1000 "$drv" "" "$st images > /dev/null"
  NOSHELL=1 time_one layers-5000 "$drv" "" "$st layers > /dev/null"
  NOSHELL=1 time_one containers-200 "$drv" "" "$st containers > /dev/null"
  NOSHELL=1 time_one image-one "$drv" "" "$st image localhost/img:500 > /dev/null"
  time_one create-container "$drv" "$st delete-container bc >/dev/null 2>&1 || true" \
    "$st create-container -i bc img600 > /dev/null"
  time_one delete-container "$drv" "$st create-container -i bd img601 >/dev/null 2>&1 || true" \
    "$st delete-container bd > /dev/null"
  local chain="$st create-layer --id d1 >/dev/null 2>&1 || true; \
for j in 2 3 4 5; do $st create-layer --id d\$j d\$((j - 1)) >/dev/null 2>&1 || true; done; \
$st create-image -i bi d5 >/dev/null 2>&1 || true"
  time_one delete-image "$drv" "$chain" "$st delete-image bi 2> /dev/null"
}

for DRV in $DRIVERS; do
  st="\$X -g \$G -R \$R -s $DRV"
  fresh='reset_store $G/..'
  for f in debian-minbase.tar debian-minbase.tar.gz debian-minbase.tar.zst layer-npm.tar layer2.tar; do
    [ -s "$CORPUS/$f" ] || continue
    SETTLE=$CORPUS/$f time_one "apply-$f" "$DRV" "$fresh; settle $CORPUS/$f" "$st import-layer < $CORPUS/$f" "tar --numeric-owner -xpf $CORPUS/$f -C \$T"
  done
  # A store per tool holding minbase, layer2 (imported, with tar-split) and an edited child.
  stack="reset_store \$G/..; b=\$($st import-layer < $CORPUS/debian-minbase.tar | tail -1) && \
$st import-layer --id layer2 \$b < $CORPUS/layer2.tar >/dev/null && \
$st create-layer --id edited layer2 >/dev/null && m=\$($st mount edited) && \
rm -rf \$m/usr/share/locale \$m/etc/apt && cp -a \$m/usr/lib/python3 \$m/opt/py && \
$st unmount edited >/dev/null"
  if echo "diff-imported diff-edited changes-layer2 diffsize-layer2 child-copy" | grep -Eq "$ONLY"; then
    for t in strata containers-storage; do bash -c "$(sub $t "$stack")" >/dev/null; done
  fi
  time_one diff-imported "$DRV" "" "$st diff layer2 > /dev/null"
  time_one diff-edited "$DRV" "" "$st diff edited > /dev/null"
  time_one changes-layer2 "$DRV" "" "$st changes layer2 > /dev/null"
  time_one diffsize-layer2 "$DRV" "" "$st diffsize layer2 > /dev/null"
  SYNCED=1 time_one child-copy "$DRV" "$st delete-layer child >/dev/null 2>&1 || true; settle" "$st create-layer --id child layer2 > /dev/null"
  if echo "check-full check-quick" | grep -Eq "$ONLY"; then
    bash -c "$(sub strata "reset_store \$G/..; $st import-layer --id base < $CORPUS/debian-minbase.tar >/dev/null && $st import-layer --id layer2 base < $CORPUS/layer2.tar >/dev/null")"
    case $DRV in overlay) own="overlay/base/diff overlay/layer2/diff" ;; *) own="$DRV/dir/base $DRV/dir/layer2" ;; esac
    read_once="cd $W/s/root && find $own -type f -print0 | xargs -0 cat > /dev/null"
    SETTLE="" time_one check-full "$DRV" "settle" "$st check" "$read_once"
    SETTLE="" time_one check-quick "$DRV" "settle" "$st check --quick" "$read_once"
  fi
  chain() { echo "p=\$($st create-layer | tail -1); for i in \$(seq 2 $1); do p=\$($st create-layer \$p | tail -1); done; $st mount \$p > /dev/null"; }
  SYNCED=1 time_one chain-120 "$DRV" "$fresh; settle" "$(chain 120)"
  # ID-mapped children (issue 12): the reference re-owns a copy (vfs) or a snapshot (btrfs)
  # through a re-executed chown walk; on overlay with idmapped mounts it drops the maps.
  for f in debian-minbase.tar layer-npm.tar; do
    [ -s "$CORPUS/$f" ] || continue
    echo "mapped-$f unmapped-$f" | grep -Eq "$ONLY" || continue
    base="reset_store \$G/..; $st import-layer --id base --hostuidmap --hostgidmap < $CORPUS/$f > /dev/null"
    for t in strata containers-storage; do bash -c "$(sub $t "$base")" >/dev/null; done
    drop="$st unmount -f child >/dev/null 2>&1; $st delete-layer child >/dev/null 2>&1 || true; settle"
    time_one "mapped-$f" "$DRV" "$drop" "$st create-layer --id child --uidmap 0:100000:65536 --gidmap 0:100000:65536 base > /dev/null && $st mount child > /dev/null"
    time_one "unmapped-$f" "$DRV" "$drop" "$st create-layer --id child base > /dev/null && $st mount child > /dev/null"
  done
  if echo "image-" | grep -Eq "$ONLY" || echo "layers-" | grep -Eq "$ONLY"; then
    [ -d "$HOSTW/images/eight" ] || python3 scripts/bench-image.py "$CORPUS" "$HOSTW/images" >&2
    for img in two-gzip two-zstd eight; do
      L=$HOSTW/images/$img
      # The blobs are read back after the caches are dropped, as every input is.
      time_one "image-$img" "$DRV" "$fresh; settle $L/blobs/sha256/*" "\$I oci:$L:bench > /dev/null"
      seq="layer_seq \"$st\" $L"
      time_one "layers-$img" "$DRV" "$fresh; settle $L/blobs/sha256/*" "$seq"
    done
  fi
  if echo "export-" | grep -Eq "$ONLY"; then
    [ -d "$HOSTW/images/eight" ] || python3 scripts/bench-image.py "$CORPUS" "$HOSTW/images" >&2
    # The two-layer image, imported once into each tool's store, exported to a fresh layout.
    for t in strata containers-storage; do
      bash -c "$(sub $t "$fresh; \$I oci:$HOSTW/images/two-zstd:bench")" >/dev/null
    done
    for c in gzip zstd; do
      time_one "export-$c" "$DRV" "rm -rf $W/out; settle" "\$E $c oci:$W/out:bench > /dev/null"
    done
  fi
  if [ "$DRV" = overlay ]; then
    SYNCED=1 time_one chain-1000 "$DRV" "$fresh; settle" "$(chain 1000)"
  fi
  if echo "images- layers- containers- image-one create-container delete-container delete-image" | grep -Eq "$ONLY"; then
    records "$DRV"
  fi
done

echo
echo "| driver | benchmark | strata s | strata sync=filesystem s | containers-storage s | GNU tar s | strata/ref | synced/ref | strata/tar | synced/tar | strata RSS MiB | ref RSS MiB |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
sed 's/\t/ | /g; s/^/| /; s/$/ |/' "$RESULTS"
