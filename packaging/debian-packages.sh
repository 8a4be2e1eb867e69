#!/usr/bin/env bash
# Installs the Debian packages the messenger needs, skipping those already installed.
#   bash packaging/debian-packages.sh          the Qt runtime libraries the window needs
#   bash packaging/debian-packages.sh --test   those, plus the real peers the tests talk to
#                                              (OpenSSL, SIPp, Kamailio, baresip)
set -euo pipefail

debs=(libegl1 libgl1 libfontconfig1 libdbus-1-3 libxkbcommon0 libxkbcommon-x11-0
      libxcb-cursor0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0
      libxcb-render-util0 libxcb-shape0 libxcb-xinerama0 libxcb-xkb1 libglib2.0-0
      fonts-dejavu-core)
if [ "${1:-}" = "--test" ]; then
  debs+=(openssl sip-tester kamailio baresip-core)
fi

command -v dpkg-query >/dev/null || { echo "not a Debian system: install the equivalents of: ${debs[*]}" >&2; exit 0; }
missing=()
for deb in "${debs[@]}"; do
  dpkg-query -W -f='${Status}' "$deb" 2>/dev/null | grep -q "install ok installed" || missing+=("$deb")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" = 0 ]; then sudo=(); else sudo=(sudo); fi
echo "installing Debian packages: ${missing[*]}"
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
  "${missing[@]}" >/dev/null
