#!/usr/bin/env bash
# Writes the web console's screenshots in docs/images (console-*.png), as docs/operations.md shows them: the test
# Screenshots_of_each_page_with_traffic_flowing (tests/Sluice.Console.Tests) starts a server with streams, a cursor and a
# lagging consumer group, publishes while it captures each page in Debian's chromium, and writes where
# SLUICE_CONSOLE_SCREENSHOTS points. Needs /usr/bin/chromium (apt-get install -y chromium).
#
# Usage: scripts/console-screenshots.sh [--no-build]
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" != "--no-build" ]; then
  dotnet build tests/Sluice.Console.Tests -c Release -nologo -clp:ErrorsOnly
fi
mkdir -p docs/images
SLUICE_CONSOLE_SCREENSHOTS="$PWD/docs/images" dotnet test tests/Sluice.Console.Tests -c Release --no-build -nologo \
  --filter "FullyQualifiedName~Screenshots_of_each_page_with_traffic_flowing"
ls -l docs/images/console-*.png
