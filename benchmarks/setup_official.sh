#!/usr/bin/env bash
# A separate environment for the official scorers that benchmarks/official_protocols.py runs
# (their own code, from checkouts the user provides; nothing of it is vendored into cellbench).
# Usage: bash benchmarks/setup_official.sh [ENV_DIR]   (default .venv-official)
# Checkouts (for official_protocols.py / bench_metrics.py --official DIR): DIR/hover_net
# (vqdang/hover_net), DIR/PanNuke-metrics, DIR/CoNIC, DIR/MoNuSAC.
set -euo pipefail
ENV=${1:-.venv-official}
python3 -m venv "$ENV"
"$ENV/bin/pip" install -q --upgrade pip
# PanNuke-metrics run.py: docopt, numpy, pandas, scipy; CoNIC compute_stats.py: + tqdm,
# scikit-learn; the MoNuSAC notebook's Panoptic_quality: numpy; HoVer-Net's metrics/stats_utils.py
# (timed by bench_metrics.py): + opencv, matplotlib; StarDist's matching (bench_metrics.py)
"$ENV/bin/pip" install -q docopt==0.6.2 numpy pandas scipy scikit-learn tqdm \
    opencv-python-headless matplotlib stardist==0.9.2 csbdeep==0.8.2
echo "official scorers' environment: $ENV/bin/python"
