#!/usr/bin/env bash
# Exact resume (--resume, --checkpoint-every), SIGKILL at random steps and during writes, a full
# disk, contradicting flags, divergence and out-of-range labels, end to end: see resume_check.py.
#
# Usage: bash test_resume.sh NORMNET_BINARY SOURCE_DIR WORKDIR
set -euo pipefail
exec python3 "$2/tests/cli/resume_check.py" "$1" "$2" "$3"
