#!/usr/bin/env bash
# strata's main job on a fresh machine: import a small layer stack, create a
# container layer on it, mount it, change files, and show `changes` and `diff`.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
S=target/release/strata
W=$(mktemp -d /tmp/strata-demo.XXXXXX)
cleanup() { "$S" -g "$W/root" -R "$W/run" shutdown >/dev/null 2>&1 || true; rm -rf "$W"; }
trap cleanup EXIT
st() { "$S" -g "$W/root" -R "$W/run" "$@"; }

# A base layer and a second layer, built with GNU tar from small trees.
mkdir -p "$W/base/etc" "$W/base/usr/bin" "$W/l2/etc"
echo "hello from the base layer" > "$W/base/etc/motd"
echo "root:x:0:0:root:/root:/bin/sh" > "$W/base/etc/passwd"
printf '#!/bin/sh\necho hi\n' > "$W/base/usr/bin/hi"; chmod 755 "$W/base/usr/bin/hi"
echo "version 2" > "$W/l2/etc/motd"
touch "$W/l2/etc/.wh.passwd"
tar --numeric-owner -C "$W/base" -czf "$W/base.tar.gz" .
tar --numeric-owner -C "$W/l2" -cf "$W/l2.tar" .

base=$(st import-layer < "$W/base.tar.gz")
echo "imported base layer:   $base"
top=$(st import-layer "$base" < "$W/l2.tar")
echo "imported second layer: $top"
ctr=$(st create-layer "$top")
echo "container layer:       $ctr"
mnt=$(st mount "$ctr")
echo "mounted at $mnt:"; (cd "$mnt" && find . | sort | sed 's/^/  /')
echo "etc/motd says: $(cat "$mnt/etc/motd")"
echo "new file" > "$mnt/etc/new"; rm "$mnt/usr/bin/hi"
st unmount "$ctr" >/dev/null
echo "changes in the container layer:"; st changes "$ctr" | sed 's/^/  /'
echo "its diff as a tar:"; st diff "$ctr" | tar -tvf - | sed 's/^/  /'
echo "layers:"; st layers | sed 's/^/  /'
