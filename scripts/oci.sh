#!/usr/bin/env bash
# `make oci`: packages target/meshwake.wasm as an OCI image layout in target/oci/ (no Docker),
# in the *compat* variant of the Wasm image spec that Istio's WasmPlugin fetcher reads
# (solo-io/wasm spec-compat.md; istio pkg/wasm/imagefetcher.go `extractOCIStandardImage`):
#   one layer, media type application/vnd.oci.image.layer.v1.tar+gzip, holding `plugin.wasm`;
#   config application/vnd.oci.image.config.v1+json; manifest annotation
#   module.wasm.image/variant=compat-smart.
# The image is reproducible (fixed tar metadata, gzip -n): the same module gives the same
# manifest digest, which is what an Istio WasmPlugin's `sha256` must be for an oci:// url.
# Then pins the build everywhere (deploy/gen.py pin): WasmPlugin sha256 + url, the module
# sha256 in envoy-config/wasm-remote.yaml; the replaced pins go to the rollback overlay.
#
# Usage: scripts/oci.sh [--no-pin] [--push docker://REGISTRY/REPO:TAG [--insecure]]
#   MESHWAKE_OCI_REPO (default registry.example.com/meshwake/meshwake): the url written into
#   the WasmPlugins, tagged with the workspace version.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
pin=1 push="" tls=true
while [ $# -gt 0 ]; do
  case "$1" in
    --no-pin) pin=0 ;;
    --push) push="${2:?--push needs docker://REGISTRY/REPO:TAG}"; shift ;;
    --insecure) tls=false ;;
    *) die "unknown argument $1 (see the header of scripts/oci.sh)" ;;
  esac
  shift
done
wasm="$ROOT/target/meshwake.wasm"
[ -f "$wasm" ] || die "$wasm missing: run make build first"
version=$(sed -nE 's/^version = "([^"]+)"/\1/p' Cargo.toml | head -1)
repo="${MESHWAKE_OCI_REPO:-registry.example.com/meshwake/meshwake}"
out="$ROOT/target/oci"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

rm -rf "$out"; mkdir -p "$out/blobs/sha256" "$work/layer"
cp "$wasm" "$work/layer/plugin.wasm"
chmod 0644 "$work/layer/plugin.wasm"
tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner --format=ustar \
  -C "$work/layer" -cf "$work/layer.tar" plugin.wasm
gzip -n -9 <"$work/layer.tar" >"$work/layer.tar.gz"

python3 - "$out" "$work" "$version" <<'EOF'
import hashlib, json, os, sys
out, work, version = sys.argv[1:4]

def blob(data):
    d = hashlib.sha256(data).hexdigest()
    with open(os.path.join(out, "blobs/sha256", d), "wb") as f:
        f.write(data)
    return {"digest": "sha256:" + d, "size": len(data)}

def canon(obj):
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()

tar = open(os.path.join(work, "layer.tar"), "rb").read()
layer = blob(open(os.path.join(work, "layer.tar.gz"), "rb").read())
config = blob(canon({
    "architecture": "wasm", "os": "wasip1",
    "config": {"Labels": {"org.opencontainers.image.title": "meshwake"}},
    "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(tar).hexdigest()]},
}))
manifest_obj = {
    "schemaVersion": 2,
    "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **config},
    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **layer,
                "annotations": {"org.opencontainers.image.title": "plugin.wasm"}}],
    "annotations": {"module.wasm.image/variant": "compat-smart",
                    "org.opencontainers.image.title": "meshwake",
                    "org.opencontainers.image.version": version},
}
manifest = blob(canon(manifest_obj))
refs = ["latest", version]
index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
         "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", **manifest,
                        "annotations": {"org.opencontainers.image.ref.name": r}} for r in refs]}
open(os.path.join(out, "index.json"), "wb").write(canon(index))
open(os.path.join(out, "oci-layout"), "wb").write(canon({"imageLayoutVersion": "1.0.0"}))
open(os.path.join(out, "manifest-digest"), "w").write(manifest["digest"] + "\n")
EOF
digest=$(cat "$out/manifest-digest")
module_sha=$(sha256sum "$wasm" | cut -d' ' -f1)
say "OCI image layout target/oci (tags latest, $version): manifest $digest, plugin.wasm sha256:$module_sha"
if [ "$pin" = 1 ]; then
  python3 deploy/gen.py pin "${digest#sha256:}" "$module_sha" "oci://$repo:$version" >&2
fi
if [ -n "$push" ]; then
  command -v skopeo >/dev/null || bash scripts/setup.sh oci
  skopeo copy -q --dest-tls-verify="$tls" "oci:$out:latest" "$push"
  say "pushed $push"
fi
