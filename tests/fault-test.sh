#!/bin/bash
# The long fault suite (make fault-test): tests/e2e/test_zz_faults.py with
# 1 GiB transfers, 20 s stops and 50 sessions across a bzproxy restart,
# then a table of what the user saw, time to recovery, the audit records
# and `audit verify`'s verdict per fault (also kept as JSON lines); then
# the Ansible stress test (20 pings and 5 copies of 10 MiB over 10 hosts).
#
# usage: tests/fault-test.sh [BUILDDIR]   (environment overrides:
# BZ_FAULT_BYTES, BZ_FAULT_STOP_S, BZ_FAULT_SESSIONS, BZ_FAULT_REPORT)
set -u
SRCDIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export BZ_SRCDIR=$SRCDIR
export BZ_BUILDDIR=${1:-${BZ_BUILDDIR:-$SRCDIR}}
export BZ_FAULT_BYTES=${BZ_FAULT_BYTES:-1073741824}
export BZ_FAULT_STOP_S=${BZ_FAULT_STOP_S:-20}
export BZ_FAULT_SESSIONS=${BZ_FAULT_SESSIONS:-50}
export BZ_FAULT_REPORT=${BZ_FAULT_REPORT:-$BZ_BUILDDIR/fault-report.jsonl}
export PYTHONDONTWRITEBYTECODE=1
rm -f "$BZ_FAULT_REPORT"
/usr/bin/pytest-3 -v -p no:cacheprovider "$SRCDIR/tests/e2e/test_zz_faults.py"
rc=$?
BZ_ANSIBLE_STRESS=1 /usr/bin/pytest-3 -v -s -p no:cacheprovider \
	"$SRCDIR/tests/e2e/test_ansible.py::test_stress" || rc=1
[ -s "$BZ_FAULT_REPORT" ] && python3 - "$BZ_FAULT_REPORT" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print("\n%-42s %-5s %-4s %8s %9s  %s" % ("fault", "dir", "rc", "exit_s",
      "recover_s", "user saw / audit / verify"))
for r in rows:
    audit = r.get("audit")
    if isinstance(audit, list):
        audit = " ".join(audit)
    print("%-42s %-5s %-4s %8s %9s  %s" % (
        r["fault"], r.get("direction", ""), r.get("rc", ""),
        r.get("exit_s", r.get("after_cont_s", "")), r.get("recovery_s", ""),
        r.get("user_saw", "") or "(nothing)"))
    print("%71s audit: %s" % ("", audit))
    print("%71s verify: %s" % ("", " ".join(r.get("verify", []))[-90:]))
print("\nfigures: %s" % sys.argv[1])
PY
exit $rc
