# Sourced by scripts/demo and scripts/test: a project virtual environment with
# the package installed (editable), created on first use.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-python3}"
command -v "$PYTHON" >/dev/null || { echo "python3 not found: install Python 3.11+" >&2; exit 1; }
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || { echo "Python 3.11 or newer is needed, found $("$PYTHON" --version)" >&2; exit 1; }
if [[ ! -x .venv/bin/python ]]; then
  "$PYTHON" -m venv .venv
fi
install_package() {  # $1: extras, e.g. "[test]" or ""
  local stamp=".venv/.installed$1"
  if [[ ! -f "$stamp" || pyproject.toml -nt "$stamp" ]]; then
    echo "installing social-streams$1 into .venv ..." >&2
    .venv/bin/pip install -q --disable-pip-version-check -e ".$1"
    touch "$stamp"
  fi
}
