#!/usr/bin/env bash
# Screenshot a raycv report in a real headless browser (Debian's chromium), to check that
# report.html renders its tables and embedded figures from disk, with no server.
#
#   docs/screenshot.sh RUN_DIR [OUT.png] [HEIGHT]
#
# Needs chromium (Debian: apt-get install -y chromium). Builds the report first if the
# run folder has none. The README's docs/report.png was made with:
#   .venv/bin/raycv run experiments/quickstart.yaml --executor sequential --output /tmp/qs \
#       --set "report.subgroups=[age,sex]"
#   docs/screenshot.sh /tmp/qs docs/report.png
set -euo pipefail
run_dir=${1:?usage: docs/screenshot.sh RUN_DIR [OUT.png] [HEIGHT]}
out=${2:-report.png}
height=${3:-3000}
here=$(cd "$(dirname "$0")/.." && pwd)
raycv=${RAYCV:-$here/.venv/bin/raycv}
browser=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
if [ -z "$browser" ]; then
  echo "docs/screenshot.sh: no chromium found; install it with: apt-get install -y chromium" >&2
  exit 1
fi
[ -f "$run_dir/report.html" ] || "$raycv" report "$run_dir" > /dev/null
page=$(cd "$run_dir" && pwd)/report.html
# --no-sandbox: root in a container has no user namespace for chromium's sandbox. The
# background-networking, component-update, sync and QUIC flags keep a browser on a closed
# network (CI) from trying Google's hosts at start; a fresh profile keeps runs apart.
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
"$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync --disable-quic \
  --user-data-dir="$profile" \
  --window-size=1280,"$height" --screenshot="$(realpath -m "$out")" "file://$page" 2> /dev/null
echo "$out"
