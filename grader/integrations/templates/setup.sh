#!/usr/bin/env bash
# hwgrader's Gradescope autograder, build step. Gradescope runs this once, as root, when it builds
# the autograder image (Ubuntu). It installs Python, bubblewrap and hwgrader into a virtual
# environment; run_autograder then grades each submission with it.
#
# Every path comes from HWGRADER_AUTOGRADER_ROOT (default /autograder), so the bundle can be tried
# outside Gradescope's container. Knobs (environment; documented in docs/gradescope.md):
#   HWGRADER_SETUP_APT=0                    skip apt-get (the machine already has python3-venv, bubblewrap)
#   HWGRADER_PYTHON=python3                 the interpreter the virtual environment is made from
#   HWGRADER_VENV=$ROOT/hwgrader-venv       where hwgrader is installed
#   HWGRADER_VENV_SYSTEM_SITE_PACKAGES=1    let the environment see the interpreter's packages
#                                           (a local trial on a machine that has numpy & co.)
set -euo pipefail
ROOT="${HWGRADER_AUTOGRADER_ROOT:-/autograder}"
SOURCE="$ROOT/source"
VENV="${HWGRADER_VENV:-$ROOT/hwgrader-venv}"
PYTHON="${HWGRADER_PYTHON:-python3}"

if [ "${HWGRADER_SETUP_APT:-1}" = 1 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # python3-venv: the environment; bubblewrap: the sandbox (it may not start inside Gradescope's
  # container, then run_autograder uses the strongest level that does); util-linux: setpriv, unshare
  apt-get install -y -qq python3 python3-venv bubblewrap util-linux
fi

venv_flags=()
if [ "${HWGRADER_VENV_SYSTEM_SITE_PACKAGES:-0}" = 1 ]; then venv_flags+=(--system-site-packages); fi
"$PYTHON" -m venv "${venv_flags[@]}" "$VENV"

# Dependencies: from the wheels inside the bundle when it has them (no package index needed at
# build time), otherwise from PyPI. hwgrader itself always comes from the bundle.
pip_index=()
if [ -d "$SOURCE/wheels" ]; then pip_index=(--no-index --find-links "$SOURCE/wheels"); fi
"$VENV/bin/python" -m pip install --disable-pip-version-check -q "${pip_index[@]}" -r "$SOURCE/requirements.txt"
"$VENV/bin/python" -m pip install --disable-pip-version-check -q --no-index --no-deps --force-reinstall \
  "$SOURCE"/dist/hwgrader-*.whl

# The sandbox's unprivileged workers must be able to run this Python; nobody but root may read the
# rubric, the references and the hidden cases in $SOURCE.
chmod -R go+rX "$VENV"
chmod 0700 "$SOURCE"
"$VENV/bin/python" -I -m grader --version
echo "hwgrader installed in $VENV"
