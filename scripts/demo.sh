#!/usr/bin/env bash
# strata's main job on a fresh machine: import a small layer stack, create a
# container layer on it, mount it, change files, and show `changes` and `diff`;
# then make an image of the stack and a container from it.
#
# Runs as root (mounts). The driver is overlay unless STRATA_DRIVER says
# otherwise (vfs works everywhere). The store lives in a temporary directory
# with a storage.conf of its own, so the machine's configuration and stores
# are not touched.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet -p strata
S=$PWD/target/release/strata
DRIVER=${STRATA_DRIVER:-overlay}
W=$(mktemp -d /var/tmp/strata-demo.XXXXXX)
printf '[storage]\ndriver = "%s"\n' "$DRIVER" > "$W/storage.conf"
export CONTAINERS_STORAGE_CONF=$W/storage.conf
st() { "$S" -g "$W/root" -R "$W/run" -s "$DRIVER" "$@"; }
cleanup() {
  st shutdown --force >/dev/null 2>&1 || true
  # Detach anything still mounted under our own directory, deepest first.
  awk -v d="$W/" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -r |
    while read -r m; do umount -l "$m" 2>/dev/null || true; done
  rm -rf "$W"
}
trap cleanup EXIT

# A base layer and a second layer, built with GNU tar from small trees.
mkdir -p "$W/base/etc" "$W/base/usr/bin" "$W/l2/etc"
echo "hello from the base layer" > "$W/base/etc/motd"
echo "root:x:0:0:root:/root:/bin/sh" > "$W/base/etc/passwd"
printf '#!/bin/sh\necho hi\n' > "$W/base/usr/bin/hi"; chmod 755 "$W/base/usr/bin/hi"
echo "version 2" > "$W/l2/etc/motd"
touch "$W/l2/etc/.wh.passwd"
tar --numeric-owner -C "$W/base" -czf "$W/base.tar.gz" .
tar --numeric-owner -C "$W/l2" -cf "$W/l2.tar" .

echo "driver: $DRIVER, store: $W/root"
base=$(st import-layer -n demo-base < "$W/base.tar.gz" | head -n1)
echo "imported base layer:   $base"
top=$(st import-layer "$base" < "$W/l2.tar" | head -n1)
echo "imported second layer: $top"
ctr=$(st create-layer -n demo-container "$top" | head -n1)
echo "container layer:       $ctr"
mnt=$(st mount "$ctr")
echo "mounted at $mnt:"; (cd "$mnt" && find . | sort | sed 's/^/  /')
echo "etc/motd says: $(cat "$mnt/etc/motd")"
echo "new file" > "$mnt/etc/new"; rm "$mnt/usr/bin/hi"
st unmount "$ctr" >/dev/null
echo "changes in the container layer:"; st changes "$ctr" | sort | sed 's/^/  /'
echo "its diff as a tar:"; st diff "$ctr" | tar -tvf - | sed 's/^/  /'
if st diff -u "$base" | cmp -s - <(gzip -dc "$W/base.tar.gz"); then
  echo "diff of the base layer is byte-identical to the imported tar"
else
  echo "diff of the base layer differs from the imported tar" >&2; exit 1
fi
echo "layers:"; st layers -t | sed 's/^/  /'

# An image on the two layers, with the manifest and config engines look for,
# and a container made from it: a new layer on the image's top layer.
diff_ids=$(for l in "$base" "$top"; do printf '"sha256:%s",' "$(st diff -u "$l" | sha256sum | cut -c1-64)"; done)
printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[%s]}}' "${diff_ids%,}" > "$W/config.json"
cfg=sha256:$(sha256sum < "$W/config.json" | cut -c1-64)
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%d},"layers":[]}' \
  "$cfg" "$(stat -c %s "$W/config.json")" > "$W/manifest.json"
img=$(st create-image -n localhost/demo:1 "$top" | head -n1)
st set-image-data -f "$W/manifest.json" "$img" manifest
st set-image-data -f "$W/config.json" "$img" "$cfg"
echo "image:"; st image localhost/demo:1 | sed 's/^/  /'
st create-container -n web localhost/demo:1 >/dev/null
echo "container:"; st container web | sed 's/^/  /'
web=$(st mount web)
echo "the container sees etc/motd: $(cat "$web/etc/motd")"
st unmount web >/dev/null
st delete-container web
echo "images and containers after deleting the container:"; st images | sed 's/^/  /'; st containers | sed 's/^/  /'
