#!/usr/bin/env bash
# System packages the test suite uses, installed when absent (Debian/Ubuntu; root or sudo -n):
#   chromium    opens report.html headless (tests/test_report_html.py)
#   postgresql  the multi-worker storage (tests/test_postgres.py starts its own server from
#               the binaries; the cluster Debian starts on install is stopped again)
# Without root, sudo or apt-get this only says what is missing; those tests then skip.
set -u
missing=()
# on GitHub's Ubuntu runners chromium is a snap; the report test uses their Google Chrome
if [ -z "${GITHUB_ACTIONS:-}" ]; then
  command -v chromium >/dev/null 2>&1 || missing+=(chromium)
fi
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
[ ${#missing[@]} -eq 0 ] && exit 0
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo -n"
if ! command -v apt-get >/dev/null 2>&1 || ! $SUDO true 2>/dev/null; then
  echo "note: ${missing[*]} not installed (needs apt-get and root); the tests that use them skip"
  exit 0
fi
echo "installing ${missing[*]} (Debian packages)"
install() { DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null; }
install || { $SUDO apt-get update -qq && install; } || {
  echo "error: apt-get install ${missing[*]} failed" >&2
  exit 1
}
if [[ " ${missing[*]} " == *" postgresql "* ]]; then
  $SUDO pg_ctlcluster --force "$(ls /usr/lib/postgresql | sort -V | tail -1)" main stop \
    2>/dev/null || true
fi
