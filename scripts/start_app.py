"""Start supervisord with supervisord.conf: the container's command, and what `make run` uses.

    python -m scripts.start_app [--daemon]

``AVATARCHAT_PROGRAMS`` (comma-separated, default all six) picks which programs this
instance runs, so one image scales out: e.g. ``gateway`` on two machines, ``ai,knowledge`` on
a third.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROGRAMS = ("gateway", "conversation", "ai", "knowledge", "avatar", "analytics")


def supervisor_env(base: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
    env.setdefault("LOG_DIR", str(ROOT / "var" / "log"))
    env.setdefault("SUPERVISOR_RUN_DIR", str(ROOT / "var" / "run"))
    chosen = [p.strip() for p in env.get("AVATARCHAT_PROGRAMS", ",".join(PROGRAMS)).split(",") if p.strip()]
    unknown = set(chosen) - set(PROGRAMS)
    if unknown:
        raise SystemExit(f"AVATARCHAT_PROGRAMS names unknown programs: {sorted(unknown)}")
    for program in PROGRAMS:
        env[f"START_{program.upper()}"] = "true" if program in chosen else "false"
    # supervisord runs `python`: make it this interpreter (the venv's, or the image's)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    Path(env["LOG_DIR"]).mkdir(parents=True, exist_ok=True)
    Path(env["SUPERVISOR_RUN_DIR"]).mkdir(parents=True, exist_ok=True)
    return env


def main() -> None:
    env = supervisor_env()
    args = ["supervisord", "-c", str(ROOT / "supervisord.conf")]
    if "--daemon" not in sys.argv:
        args.append("-n")
    supervisord = Path(sys.executable).parent / "supervisord"
    os.execve(str(supervisord), args, env)


if __name__ == "__main__":
    main()
