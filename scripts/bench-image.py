#!/usr/bin/env python3
"""Builds the OCI layouts bench.sh imports, from the real-layer corpus.

  bench-image.py CORPUS OUT

OUT/two-gzip   debian-minbase + layer2 (the apt layer), gzip blobs
OUT/two-zstd   the same layers, zstd blobs
OUT/eight      debian-minbase cut into 8 consecutive slices (a directory
               always lands in the same or an earlier slice than what it
               holds), gzip blobs
Each layout has one image, referenced as `bench`, and a layers.txt listing
its layer blobs' hex digests; blobs are reused from the corpus's .gz/.zst
files where it has them.
"""
import gzip, hashlib, io, json, os, shutil, subprocess, sys, tarfile

corpus, out = sys.argv[1], sys.argv[2]


def sha(b):
    return "sha256:" + hashlib.sha256(b).hexdigest()


def file_sha(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest(), os.path.getsize(path)


def compress(raw_path, kind, dest):
    with open(dest, "wb") as f:
        if kind == "gzip":
            subprocess.run(["gzip", "-c", "-n", "-6", raw_path], stdout=f, check=True)
        else:
            subprocess.run(["zstd", "-q", "-c", "-3", raw_path], stdout=f, check=True)


def layout(name, raws, kind):
    d = os.path.join(out, name)
    blobs = os.path.join(d, "blobs", "sha256")
    os.makedirs(blobs, exist_ok=True)
    layers, diff_ids = [], []
    for raw in raws:
        diff_ids.append(file_sha(raw)[0])
        ext = ".gz" if kind == "gzip" else ".zst"
        tmp = os.path.join(d, "tmp")
        if os.path.exists(raw + ext):
            shutil.copyfile(raw + ext, tmp)
        else:
            compress(raw, kind, tmp)
        digest, size = file_sha(tmp)
        os.rename(tmp, os.path.join(blobs, digest[7:]))
        mt = "application/vnd.oci.image.layer.v1.tar+" + kind
        layers.append({"mediaType": mt, "digest": digest, "size": size})

    def blob(b):
        open(os.path.join(blobs, sha(b)[7:]), "wb").write(b)
        return sha(b)

    config = json.dumps({"created": "2024-01-01T00:00:00Z", "architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                      "digest": blob(config), "size": len(config)},
                           "layers": layers}).encode()
    index = {"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
             "digest": blob(manifest), "size": len(manifest),
             "annotations": {"org.opencontainers.image.ref.name": "bench"}}]}
    open(os.path.join(d, "index.json"), "w").write(json.dumps(index))
    open(os.path.join(d, "oci-layout"), "w").write('{"imageLayoutVersion":"1.0.0"}')
    # For the plain import-layer sequence.
    open(os.path.join(d, "layers.txt"), "w").write("".join(l["digest"][7:] + "\n" for l in layers))


def slices(src, n, prefix):
    with tarfile.open(src) as t:
        members = t.getmembers()
        paths = []
        for i in range(n):
            part = members[i * len(members) // n:(i + 1) * len(members) // n]
            p = f"{prefix}{i}.tar"
            with tarfile.open(p, "w", format=tarfile.PAX_FORMAT) as o:
                for m in part:
                    o.addfile(m, t.extractfile(m) if m.isreg() else None)
            paths.append(p)
        return paths


os.makedirs(out, exist_ok=True)
base, apt = os.path.join(corpus, "debian-minbase.tar"), os.path.join(corpus, "layer2.tar")
layout("two-gzip", [base, apt], "gzip")
layout("two-zstd", [base, apt], "zstd")
layout("eight", slices(base, 8, os.path.join(out, "slice")), "gzip")
