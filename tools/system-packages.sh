#!/usr/bin/env bash
# The Debian packages Sijill needs besides Python: WeasyPrint's Pango, HarfBuzz's subsetter (small,
# fast PDFs), a font with Arabic glyphs, and wrk (the benches' HTTP load generator, also driven by
# a test of the bench floor). Installed when missing (as root), else said.
set -euo pipefail
PACKAGES=(libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 fonts-dejavu-core wrk)
if dpkg -s "${PACKAGES[@]}" >/dev/null 2>&1; then exit 0; fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "==> Missing system packages: ${PACKAGES[*]} (install them with your package manager)" >&2
  exit 0
fi
echo "==> Installing system packages: ${PACKAGES[*]}"
if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${PACKAGES[@]}" >/dev/null; }; then
  # No package mirror reachable: the PDF tests and the bench floor test then say what is missing.
  echo "==> Could not install ${PACKAGES[*]} (no package mirror?)" >&2
fi
