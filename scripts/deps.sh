#!/usr/bin/env bash
# Installs the system packages strata's tests and benchmarks use (Debian, as root):
# the reference containers-storage (differential and interop oracle), skopeo and podman
# (image import/export interop; the image benchmarks), fuse-overlayfs,
# btrfs/xfs tools for loop-backed filesystems, attr, compressors, mmdebstrap and npm
# for the real-layer corpus, hyperfine and time for benchmarks.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
  containers-storage skopeo podman fuse-overlayfs fuse3 btrfs-progs xfsprogs e2fsprogs attr \
  util-linux mount kmod zstd xz-utils bzip2 gzip tar mmdebstrap \
  hyperfine time ca-certificates >/dev/null
# The machine's Node.js (NodeSource) ships its own npm and conflicts with Debian's npm
# package; take Debian's only where no npm is present.
if ! command -v npm >/dev/null 2>&1; then
  apt-get install -y -qq --no-install-recommends npm >/dev/null
fi
for m in overlay btrfs fuse loop; do modprobe "$m" 2>/dev/null || true; done
