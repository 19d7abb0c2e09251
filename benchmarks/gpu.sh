#!/usr/bin/env bash
# One-shot GPU check (issue 15), finishing within 8 minutes:
#   bash benchmarks/gpu.sh OUTDIR                        # CUDA: writes OUTDIR/engine-cuda.json
#   bash benchmarks/gpu.sh OUTDIR --device cpu --quick   # the same code on the CPU (part of the tests)
# Needs python3 with torch, numpy and scipy, nothing else ($PYTHON picks another interpreter).
set -euo pipefail
if [ $# -lt 1 ] || [ "${1#-}" != "$1" ]; then
    echo "usage: bash benchmarks/gpu.sh OUTDIR [--device cpu] [--quick] [--precision fp32|bf16]" >&2
    exit 2
fi
mkdir -p "$1"
out="$(cd "$1" && pwd)"
shift
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
exec timeout 480 "${PYTHON:-python3}" benchmarks/gpu.py "$out" "$@"
