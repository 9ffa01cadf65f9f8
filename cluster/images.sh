#!/usr/bin/env bash
# Builds the images the chart names from the repository's Dockerfiles, with
# buildah and no Docker engine, and keeps each as an OCI archive under
# $EQUIGUARD_CACHE/images.
#
#   ghcr.io/equiguard/operator:<appVersion>       operator/Dockerfile
#   ghcr.io/equiguard/sidecar:<appVersion>        sidecar/Dockerfile
#   ghcr.io/equiguard/model-runtime:<appVersion>  runtime/Dockerfile (also the recalibration Jobs)
#   localhost/equiguard/pause:<hash>              the node's sandbox image (cluster/pause)
#
# Each Dockerfile's base is its build argument PYTHON_IMAGE, a pinned public
# python:3.11-slim image by default. Image registries are not reachable from
# the machines this is built on, so the base is made first from Debian's
# packages with mmdebstrap (bookworm's python3.11 with pip and venv, shaped
# like python:3.11-slim) and passed as that argument. An image is rebuilt only
# when the hash of its inputs changes (the base's recipe, the Dockerfile and
# the files of the build context). The build stages are the same in the
# three images up to `pip install .`, so buildah's layer cache builds that
# once; the wheels pip needs are downloaded once into the cache and offered
# to every build (a folder mounted into the build and named by
# `find-links`), so a change of the sources does not download them again.
#
# Prints one line per image: name, archive, size, and whether it was built.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
cache="${EQUIGUARD_CACHE:-$HOME/.cache/equiguard}"
out="$cache/images"
store="$cache/containers"
version="$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' "$repo/charts/equiguard/Chart.yaml")"
suite=bookworm
base_packages=(python3 python3-venv python3-pip python-is-python3 ca-certificates tzdata)
MMDEBSTRAP_ARGS=(
  --quiet --variant=minbase --mode=root
  --aptopt='APT::Install-Recommends "false"'
  --include="$(IFS=,; echo "${base_packages[*]}")"
  --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/* "$1"/usr/share/doc/* "$1"/usr/share/man/* "$1"/usr/share/info/*'
)
BASE_RECIPE="$suite ${MMDEBSTRAP_ARGS[*]} LANG=C.UTF-8 CMD=python3"

log() { printf '[images %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# buildah with its storage under the cache; the kernel's overlay where it
# works, vfs where it does not.
driver="${EQUIGUARD_STORAGE_DRIVER:-}"
if [[ -z "$driver" ]]; then
  driver=overlay
  probe="$(mktemp -d)"
  mkdir -p "$probe"/{l,u,w,m}
  if mount -t overlay overlay -o "lowerdir=$probe/l,upperdir=$probe/u,workdir=$probe/w" "$probe/m" 2>/dev/null; then
    umount "$probe/m"
  else
    driver=vfs
  fi
  rm -rf "$probe"
fi
bh() { buildah --root "$store/storage-$driver" --runroot "$store/run-$driver" --storage-driver "$driver" "$@"; }

sha() { sha256sum | cut -c1-16; }

# context_hash: the files a build context sends (git's view of the work tree,
# less what .dockerignore leaves out), by path and content.
context_hash() {
  (
    cd "$repo"
    git ls-files -z --cached --others --exclude-standard \
      | python3 -c '
import fnmatch, hashlib, os, sys
patterns = [p.strip() for p in open(".dockerignore") if p.strip() and not p.startswith("#")]
def ignored(path):
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    verdict = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        if any(fnmatch.fnmatch(prefix, pattern) for prefix in prefixes):
            verdict = not negate
    return verdict
h = hashlib.sha256()
for path in sorted(p for p in sys.stdin.read().split("\0") if p):
    if ignored(path) or not os.path.isfile(path):
        continue
    h.update(path.encode() + b"\0")
    with open(path, "rb") as f:
        h.update(hashlib.sha256(f.read()).digest())
print(h.hexdigest())'
  )
}

# archive NAME REF HASH: pushes REF to $out/NAME.oci.tar and records its hash.
archive() {
  local name="$1" ref="$2" hash="$3"
  rm -f "$out/$name.oci.tar"
  bh push --quiet "$ref" "oci-archive:$out/$name.oci.tar:$ref" >/dev/null
  echo "$ref $hash" >"$out/$name.inputs"
}

# fresh NAME REF HASH: the archive exists and was made from these inputs.
fresh() {
  [[ -f "$out/$1.oci.tar" && "$(cat "$out/$1.inputs" 2>/dev/null)" == "$2 $3" ]]
}

report() {
  local size
  size="$(bh inspect --type image --format '{{.Size}}' "$2" 2>/dev/null || echo 0)"
  printf '%-46s %8s MB  %s  (%s)\n' "$2" "$(( $(stat -c %s "$out/$1.oci.tar") / 1000000 ))" "$out/$1.oci.tar" "$3"
}

build_base() {
  local hash ref
  hash="$(echo "$BASE_RECIPE" | sha)"
  ref="localhost/equiguard/python-base:$hash"
  BASE_REF="$ref"
  if bh inspect --type image "$ref" >/dev/null 2>&1; then return; fi
  log "building the base $ref from Debian $suite with mmdebstrap"
  local tmp; tmp="$(mktemp -d)"
  mmdebstrap "${MMDEBSTRAP_ARGS[@]}" "$suite" "$tmp/rootfs.tar" >&2
  local ctr; ctr="$(bh from --quiet scratch)"
  bh add --quiet "$ctr" "$tmp/rootfs.tar" / >/dev/null
  bh config --env LANG=C.UTF-8 --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --cmd python3 --label "org.opencontainers.image.description=Debian $suite python3 (mmdebstrap)" "$ctr"
  bh commit --quiet --rm "$ctr" "$ref" >/dev/null
  rm -rf "$tmp"
}

BUD_OPTIONS=(--quiet --isolation chroot --layers --pull=never)

# build_image NAME DOCKERFILE: ghcr.io/equiguard/NAME:<version>.
build_image() {
  local name="$1" dockerfile="$2" hash ref="ghcr.io/equiguard/$1:$version"
  hash="$( { echo "$BASE_REF ${BUD_OPTIONS[*]}"; cat "$repo/$dockerfile" "$repo/.dockerignore"; echo "$CONTEXT"; } | sha)"
  if fresh "$name" "$ref" "$hash"; then report "$name" "$ref" cached; return; fi
  log "building $ref from $dockerfile"
  local started=$SECONDS
  (cd "$repo" && bh bud "${BUD_OPTIONS[@]}" \
    --build-arg "PYTHON_IMAGE=$BASE_REF" "${PIP_MOUNTS[@]}" \
    -f "$dockerfile" -t "$ref" . >&2)
  archive "$name" "$ref" "$hash"
  report "$name" "$ref" "built in $((SECONDS - started)) s"
}

# The sandbox ("pause") image: a static Go program that reaps children and
# waits for a signal, alone in an image FROM scratch.
build_pause() {
  local hash ref
  hash="$(cat "$here/pause/go.mod" "$here/pause/main.go" | sha)"
  ref="localhost/equiguard/pause:$hash"
  if fresh pause "$ref" "$hash"; then report pause "$ref" cached; return; fi
  log "building $ref"
  local tmp; tmp="$(mktemp -d)"
  (cd "$here/pause" && CGO_ENABLED=0 GOFLAGS=-buildvcs=false go build -trimpath -ldflags "-s -w" -o "$tmp/pause" .)
  local ctr; ctr="$(bh from --quiet scratch)"
  bh copy --quiet "$ctr" "$tmp/pause" /pause
  bh config --entrypoint '["/pause"]' --user 65535:65535 "$ctr"
  bh commit --quiet --rm "$ctr" "$ref" >/dev/null
  rm -rf "$tmp"
  archive pause "$ref" "$hash"
  report pause "$ref" built
}

# The builder's own way to PyPI, for pip in the build stages (mounted, so
# nothing of it lands in a layer): the index it names and the CA bundle it
# trusts, for a network that reaches PyPI through a TLS-inspecting proxy.
pip_mounts() {
  PIP_MOUNTS=()
  local conf="$out/pip.conf" ca="${PIP_CERT:-${REQUESTS_CA_BUNDLE:-${SSL_CERT_FILE:-}}}"
  {
    echo "[global]"
    [[ -n "${PIP_INDEX_URL:-}" ]] && echo "index-url = $PIP_INDEX_URL"
    [[ -n "$ca" && -f "$ca" ]] && echo "cert = /etc/ssl/builder-ca.crt"
    echo "find-links = /wheels"
  } >"$conf"
  PIP_MOUNTS=(-v "$conf:/etc/pip.conf:ro" -v "$cache/wheels:/wheels:ro")
  [[ -n "$ca" && -f "$ca" ]] && PIP_MOUNTS+=(-v "$ca:/etc/ssl/builder-ca.crt:ro")
  return 0
}

# The wheels of the package's dependencies (and of its build backend), for
# the base's Python (3.11, manylinux x86_64), downloaded when pyproject.toml
# changes.
download_wheels() {
  local hash; hash="$(sha <"$repo/pyproject.toml")"
  [[ "$(cat "$cache/wheels/.inputs" 2>/dev/null)" == "$hash" ]] && return
  log "downloading the wheels the images install"
  local requirements
  mapfile -t requirements < <(python3 -c '
import sys, tomllib
print("\n".join(tomllib.load(open(sys.argv[1], "rb"))["project"]["dependencies"]))' "$repo/pyproject.toml")
  # Debian bookworm's glibc is 2.36.
  local platforms=() glibc
  for glibc in 5 12 17 24 27 28 31 34 35 36; do platforms+=(--platform "manylinux_2_${glibc}_x86_64"); done
  platforms+=(--platform manylinux2014_x86_64 --platform manylinux2010_x86_64 --platform manylinux1_x86_64)
  mkdir -p "$cache/wheels"
  python3 -m pip download --quiet --dest "$cache/wheels" --only-binary=:all: \
    --python-version 3.11 --implementation cp "${platforms[@]}" \
    setuptools wheel uv "${requirements[@]}" >&2 \
    || { log "could not download the wheels; each build downloads them"; return 0; }
  echo "$hash" >"$cache/wheels/.inputs"
}

main() {
  command -v buildah >/dev/null && command -v mmdebstrap >/dev/null \
    || { log "buildah and mmdebstrap are needed: run cluster/system-deps.sh"; exit 1; }
  mkdir -p "$out" "$store"
  local started=$SECONDS
  CONTEXT="$(context_hash)"
  download_wheels
  pip_mounts
  build_pause
  build_base
  build_image operator operator/Dockerfile
  build_image sidecar sidecar/Dockerfile
  build_image model-runtime runtime/Dockerfile
  log "images ready under $out in $((SECONDS - started)) s"
}

main "$@"
