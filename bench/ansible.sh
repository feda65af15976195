#!/bin/bash
# Ansible over 10 hosts: `ansible fleet -m ping` and examples/ansible/site.yml
# (with become) through the chain, and through an OpenSSH jump sshd the way
# ProxyJump goes (`ssh -W`), alternated in one run; medians and ratios.
# Needs root (it adds the fleet's users and a sudoers rule, as the test
# does), ansible-core and sudo. The fleet is tests/e2e/test_ansible.py's.
#
# usage: bench/ansible.sh [BUILDDIR]   (BZ_BENCH_ROUNDS, default 3)
set -eu
SRCDIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export BZ_SRCDIR=$SRCDIR BZ_BUILDDIR=${1:-${BZ_BUILDDIR:-$SRCDIR}}
export BZ_ANSIBLE_BENCH=1 PYTHONDONTWRITEBYTECODE=1
exec /usr/bin/pytest-3 -q -s -p no:cacheprovider \
	"$SRCDIR/tests/e2e/test_ansible.py::test_bench_vs_proxyjump"
