#!/usr/bin/env bash
# Install the OHIF viewer (the built app that the @ohif/app package ships in dist/) for dicomsvc to serve
# at /ohif/ (ohif/ app). Idempotent and quick when done: nothing is downloaded once the pinned version is
# in place.
#   scripts/ohif.sh            install OHIF_VERSION into $OHIF_DIR/<version> (default var/ohif/3.13.2)
#   scripts/ohif.sh --check    exit 0 when installed, 1 when not (no download)
#
# Only npm talks to the registry (`npm pack`: the package tarball, none of its dependencies, which the
# built dist/ does not need). The tarball's sha512 is pinned below; npm checks it against the registry's
# and we check it again against ours. Nothing else is fetched, at install time or when OHIF runs: the
# build loads every file from its own origin.
#
# Two edits to the build, which expects to sit at the root of a site: webpack's public path is compiled
# in as "/"; it becomes window.PUBLIC_URL, which the index.html we serve sets to the mount point, so the
# app loads its chunks, workers and codecs from /ohif/; and the stylesheets' url(/...) become relative.
set -euo pipefail
cd "$(dirname "$0")/.."
OHIF_VERSION=3.13.2
OHIF_SHA512=WZdxmpmG7rqFgW9ZJLcbgr3XCtLi1KDNPoMaeY5PPe6j4G4fjEjjkycZM6C6Zk2F87BKxFfpq+jd5xXZB9E8EA==
# Not under DICOMSVC_VAR_DIR: one read-only install for every copy that runs from this tree.
root=${OHIF_DIR:-$PWD/var/ohif}
dest=$root/$OHIF_VERSION
stamp=$dest/.dicomsvc-installed-2  # -2: with the .gz copies

if [ -f "$stamp" ]; then
    exit 0
fi
if [ "${1:-}" = "--check" ]; then
    exit 1
fi
if ! command -v npm >/dev/null 2>&1; then
    echo "scripts/ohif.sh: npm is not installed; OHIF is not available (the built-in viewer still is)" >&2
    exit 1
fi

mkdir -p "$root"
# One install at a time (two copies of the service starting together): the second finds it done.
exec 8>"$root/.install.lock"
flock 8
if [ -f "$stamp" ]; then
    exit 0
fi
work=$(mktemp -d "$root/.install.XXXXXX")
trap 'rm -rf "$work"' EXIT
echo "scripts/ohif.sh: npm pack @ohif/app@$OHIF_VERSION (about 50 MB)" >&2
tarball=$(cd "$work" && npm pack --silent "@ohif/app@$OHIF_VERSION" | tail -n 1)
# The digest by node, which npm brings: nothing else is needed beside npm (the Docker image's Node stage).
got=$(node -e 'const c = require("crypto"), fs = require("fs");
process.stdout.write(c.createHash("sha512").update(fs.readFileSync(process.argv[1])).digest("base64"))' "$work/$tarball")
if [ "$got" != "$OHIF_SHA512" ]; then
    echo "scripts/ohif.sh: $tarball has sha512-$got, expected sha512-$OHIF_SHA512" >&2
    exit 1
fi
tar -xzf "$work/$tarball" -C "$work" package/dist package/package.json package/LICENSE

# The webpack runtimes' public path: "/" -> window.PUBLIC_URL in the page, the directory of the worker's
# own script in a web worker (see above). Stylesheets name their fonts and images from "/": relative
# names resolve from the stylesheet's own address, in the same directory.
FROM='__webpack_require__.p = "/";' \
TO='__webpack_require__.p = (typeof window !== "undefined" && window.PUBLIC_URL) || self.location.pathname.replace(/[^\/]*$/, "");' \
    perl -0pi -e 's/\Q$ENV{FROM}\E/$ENV{TO}/g' "$work"/package/dist/*.js
bundle=$(find "$work/package/dist" -maxdepth 1 -name 'app.bundle.*.js' | head -n 1)
if [ -z "$bundle" ] || ! grep -qF 'window.PUBLIC_URL) || self.location' "$bundle" \
    || grep -lF '__webpack_require__.p = "/";' "$work"/package/dist/*.js >/dev/null; then
    echo "scripts/ohif.sh: the build does not have its public path where expected; not installed" >&2
    exit 1
fi
perl -pi -e 's{url\(/(?!/)}{url(}g' "$work"/package/dist/*.css

# gzip copies beside the text and wasm files, which /ohif/ sends to browsers that accept gzip (the app
# bundle: 17 MB, 3.4 MB gzipped).
find "$work/package/dist" -type f \( -name '*.js' -o -name '*.css' -o -name '*.wasm' -o -name '*.json' \
    -o -name '*.svg' -o -name '*.mjs' \) -size +1k -exec gzip -k -6 {} +

rm -rf "$dest"
mv "$work/package/dist" "$dest"
cp "$work/package/LICENSE" "$work/package/package.json" "$dest/"
touch "$stamp"
echo "scripts/ohif.sh: OHIF $OHIF_VERSION installed in $dest" >&2
