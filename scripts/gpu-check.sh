#!/usr/bin/env bash
# The prepared GPU check (see scripts/gpu/check.sh and README "The GPU check"): `bash scripts/gpu/prepare.sh` here,
# then on the lent machine (device tool, carry .gpu): `bash scripts/gpu-check.sh`.
exec bash "$(dirname "$0")/gpu/check.sh" "$@"
