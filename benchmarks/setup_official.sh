#!/usr/bin/env bash
# A separate environment for the official scorers that benchmarks/official_protocols.py runs
# (their own code, from checkouts the user provides; nothing of it is vendored into cellbench).
# Usage: bash benchmarks/setup_official.sh [ENV_DIR]   (default .venv-official)
set -euo pipefail
ENV=${1:-.venv-official}
python3 -m venv "$ENV"
"$ENV/bin/pip" install -q --upgrade pip
# PanNuke-metrics run.py: docopt, numpy, pandas, scipy; CoNIC compute_stats.py: + tqdm,
# scikit-learn; the MoNuSAC notebook's Panoptic_quality: numpy
"$ENV/bin/pip" install -q docopt==0.6.2 numpy pandas scipy scikit-learn tqdm
echo "official scorers' environment: $ENV/bin/python"
