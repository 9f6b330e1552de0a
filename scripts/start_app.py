"""Start supervisord with supervisord.conf: the container's command, and what `make run` uses.

    python -m scripts.start_app [--daemon]

``AVATARCHAT_PROGRAMS`` (comma-separated, default all six) picks which programs this
instance runs, so one image scales out: e.g. ``gateway`` on two machines, ``ai,knowledge`` on
a third. Programs split across containers reach each other's /internal/ routes over the
network, so a split layout needs ``INTERNAL_API_KEY``.

With ``AVATARCHAT_ENV=production`` (the image sets it) nothing starts while a secret the chosen
programs need is missing, a development default or too short; the message names the variable.
``LOG_TO_STDOUT=true`` (the image sets it) sends every program's log to the container's output.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROGRAMS = ("gateway", "conversation", "ai", "knowledge", "avatar", "analytics")
MIN_SECRET_CHARS = 16
# values that ship in examples and development defaults; never acceptable in production
KNOWN_DEFAULTS = {"dev-insecure-secret-key", "changeme", "change-me", "secret", "password", "guest"}
# what each program refuses to start without, in production
NEEDS = {
    "gateway": ("ADMIN_API_KEY", "VISITOR_TOKEN_SECRET"),
    "ai": ("SECRET_KEY",),
}


def chosen_programs(env: dict[str, str]) -> list[str]:
    chosen = [p.strip() for p in env.get("AVATARCHAT_PROGRAMS", ",".join(PROGRAMS)).split(",") if p.strip()]
    unknown = set(chosen) - set(PROGRAMS)
    if unknown:
        raise SystemExit(f"AVATARCHAT_PROGRAMS names unknown programs: {sorted(unknown)}")
    return chosen


def config_problems(env: dict[str, str]) -> list[str]:
    """What stops this container from starting, one line per variable."""
    chosen = chosen_programs(env)
    problems = []
    split = set(chosen) != set(PROGRAMS)
    production = env.get("AVATARCHAT_ENV") == "production"
    secrets = ["INTERNAL_API_KEY"] if (production or split) else []
    if production:
        secrets += [name for program in chosen for name in NEEDS.get(program, ())]
    for name in secrets:
        value = env.get(name, "")
        if not value:
            why = "programs split across containers need it" if name == "INTERNAL_API_KEY" and split else "it is required"
            problems.append(f"{name} is not set ({why})")
        elif value.lower() in KNOWN_DEFAULTS:
            problems.append(f"{name} is a well-known default value; generate a random one")
        elif len(value) < MIN_SECRET_CHARS:
            problems.append(f"{name} is shorter than {MIN_SECRET_CHARS} characters")
    if production:
        for name in ["AMQP_URL", *(f"{program.upper()}_DATABASE_URL" for program in chosen)]:
            if not env.get(name):
                problems.append(f"{name} is not set (it is required)")
    return problems


def supervisor_env(base: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
    env.setdefault("LOG_DIR", str(ROOT / "var" / "log"))
    env.setdefault("SUPERVISOR_RUN_DIR", str(ROOT / "var" / "run"))
    chosen = chosen_programs(env)
    to_stdout = env.get("LOG_TO_STDOUT", "").lower() in ("1", "true", "yes")
    for program in PROGRAMS:
        env[f"START_{program.upper()}"] = "true" if program in chosen else "false"
        env[f"LOG_FILE_{program.upper()}"] = "/dev/stdout" if to_stdout else f"{env['LOG_DIR']}/{program}.log"
    # /dev/stdout cannot be rotated; files rotate at 20 MB
    env["LOG_MAXBYTES"] = "0" if to_stdout else "20MB"
    # supervisord runs `python`: make it this interpreter (the venv's, or the image's)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    Path(env["LOG_DIR"]).mkdir(parents=True, exist_ok=True)
    Path(env["SUPERVISOR_RUN_DIR"]).mkdir(parents=True, exist_ok=True)
    return env


def main() -> None:
    problems = config_problems(dict(os.environ))
    if problems:
        for problem in problems:
            print(f"avatarchat: refusing to start: {problem}", file=sys.stderr, flush=True)
        raise SystemExit(78)  # EX_CONFIG
    env = supervisor_env()
    args = ["supervisord", "-c", str(ROOT / "supervisord.conf")]
    if "--daemon" not in sys.argv:
        args.append("-n")
    supervisord = Path(sys.executable).parent / "supervisord"
    os.execve(str(supervisord), args, env)


if __name__ == "__main__":
    main()
