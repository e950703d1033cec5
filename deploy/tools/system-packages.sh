#!/usr/bin/env bash
# Installs the system tools the test suite drives for real, where the machine allows it:
#   chromium  - the browser tests/browser runs (Playwright uses it by path, downloads none)
#   promtool  - checks deploy/prometheus alert rules
# Debian and Ubuntu through apt-get, as root or with sudo. Anywhere else it says what is
# missing and carries on: the tests that need a tool then fail naming it.
set -euo pipefail

declare -A PACKAGE=([chromium]=chromium [promtool]=prometheus)
missing=()
for tool in "${!PACKAGE[@]}"; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("${PACKAGE[$tool]}")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo="sudo -n"; fi
fi
if command -v apt-get >/dev/null 2>&1 && { [ "$(id -u)" -eq 0 ] || [ -n "$sudo" ]; }; then
  echo "installing system packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
else
  echo "warning: cannot install ${missing[*]} here (needs apt-get as root or sudo);" \
       "install them by hand, or the tests that use them fail saying so" >&2
fi
