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
  containers-storage skopeo podman buildah fuse-overlayfs fuse3 btrfs-progs xfsprogs e2fsprogs attr \
  acl libcap2-bin uidmap passwd util-linux mount kmod zstd xz-utils bzip2 gzip tar mmdebstrap \
  hyperfine time ca-certificates >/dev/null
# The machine's Node.js (NodeSource) ships its own npm and conflicts with Debian's npm
# package; take Debian's only where no npm is present.
if ! command -v npm >/dev/null 2>&1; then
  apt-get install -y -qq --no-install-recommends npm >/dev/null
fi
for m in overlay btrfs fuse loop; do modprobe "$m" 2>/dev/null || true; done
# The rootless tests (crates/cli/tests/idmap_rootless.rs) run strata as this unprivileged
# user inside a user namespace made by newuidmap/newgidmap from its subordinate ranges.
# Two ranges, listed out of order: `--subuidmap strata-test` must order them as the
# reference does.
TEST_USER=strata-test
id "$TEST_USER" >/dev/null 2>&1 ||
  useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$TEST_USER"
for f in /etc/subuid /etc/subgid; do
  touch "$f"
  if ! grep -q "^$TEST_USER:" "$f"; then
    printf '%s:1100000:65536\n%s:1000000:65536\n' "$TEST_USER" "$TEST_USER" >> "$f"
  fi
done
