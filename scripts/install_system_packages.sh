#!/usr/bin/env bash
# Debian/Ubuntu packages that hold the real image-text pairs the offline encoder is trained on (see
# unicorn_hf/lit/pairs.py): emoji images with their Unicode names, Open Clip Art drawings with their titles, and
# the SVG renderer for those drawings. Skipped, with a note, where apt-get is missing or we are not root.
set -euo pipefail
PACKAGES=(fonts-noto-color-emoji openclipart-svg librsvg2-bin)
missing=()
for package in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null || [ "$(id -u)" -ne 0 ]; then
  echo "Please install these system packages (the offline encoder's training pairs): ${missing[*]}" >&2
  echo "e.g. sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
  exit 0
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
