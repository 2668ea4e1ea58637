#!/bin/sh
# Debian packages some tests need beyond Python, installed where missing and where apt-get is
# usable (root, or sudo without a password); otherwise those tests skip with their reason.
#   postgresql        the PostgreSQL plan store tests (initdb, pg_ctl)
#   slurm-wlm munge   the Slurm agent tests (slurmctld, slurmd, munged)
need=""
if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    need="$need postgresql"
fi
if ! command -v slurmctld >/dev/null 2>&1 && [ ! -x /usr/sbin/slurmctld ]; then
    need="$need slurm-wlm"
fi
if ! command -v munged >/dev/null 2>&1 && [ ! -x /usr/sbin/munged ]; then
    need="$need munge"
fi
[ -z "$need" ] && exit 0
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    SUDO=
elif command -v apt-get >/dev/null 2>&1 && sudo -n true >/dev/null 2>&1; then
    SUDO="sudo -n"
else
    echo "apt-get unusable:$need not installed; the tests that need them will be skipped" >&2
    exit 0
fi
echo "installing Debian packages for the tests:$need" >&2
{ $SUDO apt-get update -qq && $SUDO env DEBIAN_FRONTEND=noninteractive \
      apt-get install -y -qq --no-install-recommends $need; } >/dev/null 2>&1 \
    || echo "could not install$need: the tests that need them will be skipped" >&2
# The packages start their own services; the tests run their own daemons on free ports.
for service in slurmctld slurmd munge postgresql; do
    $SUDO service "$service" stop >/dev/null 2>&1 || true
done
exit 0
