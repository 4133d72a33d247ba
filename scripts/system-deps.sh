#!/usr/bin/env bash
# System packages the test suite uses, installed when absent (Debian/Ubuntu, as root):
#   chromium    opens report.html headless (tests/test_report_html.py)
#   postgresql  the multi-worker storage (tests/test_postgres.py starts its own server)
# Without root or apt-get this only says what is missing; those tests then skip with a reason.
set -u
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing ${missing[*]} (Debian packages)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null \
    || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null; }
else
  echo "note: ${missing[*]} not installed (needs root and apt-get); the tests that use them will skip"
fi
exit 0
