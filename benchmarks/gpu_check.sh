#!/bin/sh
# The GPU machine's side of `make gpu-check` (it needs no make and no virtualenv): install the
# wheels carried in .whl/ (`make gpu-wheels` here) into /tmp/site, then run the check with the
# repository root and /tmp/site on PYTHONPATH. Arguments go to `python3 -m benchmarks.gpu_check`
# (benchmarks/gpu_check/; `--help` lists them).
cd "$(dirname "$0")/.." || exit 1
PY=${GPU_PYTHON:-python3}
SITE=${GPU_SITE:-/tmp/site}
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
if ls .whl/*.whl >/dev/null 2>&1; then
  echo "gpu_check.sh: installing $(ls .whl/*.whl | wc -l) wheels from .whl/ into $SITE"
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" .whl/*.whl \
    || echo "gpu_check.sh: installing the wheels failed; going on (the env step shows what imports)" >&2
else
  echo "gpu_check.sh: no wheels in .whl/ (run make gpu-wheels where pip reaches PyPI, carry .whl)" >&2
fi
PYTHONPATH="$(pwd):$SITE${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 exec "$PY" -m benchmarks.gpu_check "$@"
