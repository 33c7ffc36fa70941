#!/usr/bin/env bash
# Installs moto's server (an independent AWS-compatible endpoint: EC2, Auto Scaling, EC2 Instance
# Connect, S3, ...) pinned, into a Python venv of its own, and prints the path of its `moto_server`
# on stdout (everything else goes to stderr). A venv that already holds the pinned version is
# reused, so a second run costs well under a second.
#
#   RUNFLEET_MOTO_SERVER=$(scripts/ci/install-moto.sh) && export RUNFLEET_MOTO_SERVER
#
# Tests find the binary through RUNFLEET_MOTO_SERVER, else at the default location below (see
# test/helpers/moto.ts). Location: $RUNFLEET_MOTO_HOME, default /opt/runfleet-moto/<version>.
# Needs python3 with venv/ensurepip; on a clean Debian machine python3-venv is installed first.
set -euo pipefail
MOTO_VERSION=5.2.5
home=${RUNFLEET_MOTO_HOME:-/opt/runfleet-moto/$MOTO_VERSION}
server=$home/bin/moto_server
# Written last: a venv without it is an interrupted install and is rebuilt.
marker=$home/.runfleet-installed

if [ "$(cat "$marker" 2>/dev/null)" != "moto[server]==$MOTO_VERSION" ] || [ ! -x "$server" ]; then
  if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
    echo "install-moto: installing python3-venv" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends python3 python3-venv >&2
  fi
  echo "install-moto: moto[server]==$MOTO_VERSION into $home" >&2
  rm -rf "$home"
  python3 -m venv "$home" >&2
  "$home/bin/pip" install --quiet --disable-pip-version-check --no-input "moto[server]==$MOTO_VERSION" >&2
  "$home/bin/python" -c 'import importlib.metadata as m, sys; sys.exit(m.version("moto") != sys.argv[1])' \
    "$MOTO_VERSION" || {
    echo "install-moto: $home does not hold moto $MOTO_VERSION" >&2
    exit 1
  }
  echo "moto[server]==$MOTO_VERSION" >"$marker"
fi
echo "$server"
