"""`make test-scale`: docker-compose.scale.yml (replicas of every program, a three-node RabbitMQ
cluster with quorum queues) built and run for real, with faults under traffic.

    python -m scripts.scale_test [pytest args...]

The first four phases are the deploy test's (scripts/deploy_test.py), with their caches: Docker,
the debootstrapped base image, the stand-ins, and the Dockerfile's images, tagged
avatarchat-scaletest/* so that the two tests never run each other's code. Then pytest
tests/scale, which starts the stack, kills and restarts parts of it under traffic, and removes
everything it started (also on failure). Cached images stay.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time

from scripts import deploy_test
from scripts.deploy_test import DOCKER, ROOT, phase

WORK = ROOT / ".data" / "scale"
IMAGE_PREFIX = "avatarchat-scaletest"


def _remove_leftovers() -> None:
    """The suite tears down after itself; this covers a pytest that was itself killed."""
    from tests.scale.conftest import ScaleDeployment, scale_variables

    ScaleDeployment(scale_variables()).remove_everything()


def main() -> int:
    WORK.mkdir(parents=True, exist_ok=True)
    deploy_test.WORK.mkdir(parents=True, exist_ok=True)
    measured = WORK / "measured.json"
    measured.unlink(missing_ok=True)
    started = time.monotonic()
    status = 1
    try:
        with phase("docker engine"):
            deploy_test.ensure_docker()
        with phase("base image (debootstrap, cached)"):
            deploy_test.ensure_base_image()
        with phase("stand-in images"):
            deploy_test.build_standins()
        with phase("images from the Dockerfile"):
            deploy_test.build_images(IMAGE_PREFIX)
        with phase("scale suite (pytest tests/scale)"):
            env = {**os.environ, "AVATARCHAT_SCALE_WORK": str(WORK), "DOCKER_BIN": DOCKER}
            try:
                status = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "tests/scale",
                                         *sys.argv[1:]], cwd=ROOT, env=env).returncode
            finally:
                _remove_leftovers()
    finally:
        deploy_test.report_timings(started, measured)
    return status


if __name__ == "__main__":
    sys.exit(main())
