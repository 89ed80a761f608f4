#!/usr/bin/env bash
# The Debian packages Sijill needs besides Python: WeasyPrint's Pango, HarfBuzz's subsetter (small,
# fast PDFs) and a font with Arabic glyphs. Installed when missing (as root), else said.
set -euo pipefail
PACKAGES=(libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 fonts-dejavu-core)
if dpkg -s "${PACKAGES[@]}" >/dev/null 2>&1; then exit 0; fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "==> Missing system packages for PDF letters: ${PACKAGES[*]} (install them with your package manager)" >&2
  exit 0
fi
echo "==> Installing system packages for PDF letters: ${PACKAGES[*]}"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${PACKAGES[@]}" >/dev/null
