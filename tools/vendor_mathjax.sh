#!/usr/bin/env bash
# Vendor MathJax 3 into _vendor/mathjax/ so that the book renders its equations offline.
#
# Source: the npm package mathjax@3.2.2 (Apache-2.0), fetched with the ordinary npm client.
# Only the files the book needs are kept: the tex-chtml component, the TeX extensions it
# autoloads (e.g. boldsymbol for \vomega) and the CHTML web fonts. _config.yml serves the folder
# _vendor/ as a Sphinx static path (html_static_path), so the files end up in
# _build/html/_static/mathjax/, and points Sphinx at the script with
# `mathjax_path: mathjax/tex-chtml.js` (Sphinx resolves it relative to _static/).
# Not in a top-level _static/ folder: Jupyter Book adds every .js file found there as a <script>
# to every page, which would load all the MathJax extensions at once and break MathJax.
#
# Usage (from the repository root): bash tools/vendor_mathjax.sh
set -euo pipefail
VERSION=3.2.2
SHA256=1b9c0a1c44df864e915690558e72adb9cc5203360daefd385084ced3b6c64c09  # mathjax-3.2.2.tgz
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DEST="$ROOT/_vendor/mathjax"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

(cd "$TMP" && npm pack --silent "mathjax@$VERSION" >/dev/null)
echo "$SHA256  $TMP/mathjax-$VERSION.tgz" | sha256sum -c -
tar -xzf "$TMP/mathjax-$VERSION.tgz" -C "$TMP"
SRC="$TMP/package"

rm -rf "$DEST/tex-chtml.js" "$DEST/input" "$DEST/output" "$DEST/LICENSE" "$DEST/package.json"
mkdir -p "$DEST/input/tex" "$DEST/output/chtml/fonts"
cp "$SRC/LICENSE" "$SRC/package.json" "$DEST/"
cp "$SRC/es5/tex-chtml.js" "$DEST/"
cp -r "$SRC/es5/input/tex/extensions" "$DEST/input/tex/"
cp -r "$SRC/es5/output/chtml/fonts/woff-v2" "$DEST/output/chtml/fonts/"
(cd "$DEST" && find . -type f ! -name README.md ! -name SHA256SUMS | LC_ALL=C sort | xargs sha256sum > SHA256SUMS)
echo "vendored mathjax@$VERSION into ${DEST#$ROOT/}: $(find "$DEST" -type f | wc -l) files, $(du -sh "$DEST" | cut -f1)"
