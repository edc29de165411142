"""Container health check of THIS instance: ``python -m shared.healthcheck <service>``.

Every service process writes a heartbeat file (``shared.liveness``) from a green thread that
checks its own broker connection and consumers and its database; this command reads the file of
its own instance, not "any instance answering on the service's queue":

    python -m shared.healthcheck orders              # readiness of the orders process here
    python -m shared.healthcheck orders --live       # liveness only (running, not hung)
    python -m shared.healthcheck orders --pid 4242   # one instance among several on a host
    python -m shared.healthcheck orders --instance web-2:17

Without ``--pid``/``--instance`` every running instance of the service found in
``XIAOPU_STATE_DIR`` is checked (in a container: the container's own process). The gateway is
also asked over HTTP on its own address (``WEB_SERVER_ADDRESS``). Exit 0 healthy, 1 not (the
reason on stderr).
"""

from __future__ import annotations

import argparse
import sys
import urllib.request


def check(service: str, pid: int | None, instance: str | None, live_only: bool) -> list[str]:
    """The problems of the selected instance(s); empty when healthy."""
    from shared.config import load_config
    from shared.instance import state_dir
    from shared.liveness import pid_running, read_states, verdict

    config = load_config(service)
    problems: list[str] = []
    states = read_states(state_dir(config), service)
    if pid is not None:
        chosen = [s for s in states if s.get("pid") == pid]
    elif instance is not None:
        chosen = [s for s in states if s.get("instance") == instance]
    else:
        chosen = [s for s in states if pid_running(int(s.get("pid", 0)))]
    if not chosen:
        which = f"pid {pid}" if pid else f"instance {instance}" if instance else "any instance"
        problems.append(f"no heartbeat of {which} in {state_dir(config)}")
    for state in chosen:
        why = verdict(state, need_ready=not live_only)
        if why:
            problems.append(f"{state.get('instance')}: {why}")
    if service == "gateway" and not live_only and not problems:
        address = config["WEB_SERVER_ADDRESS"].replace("0.0.0.0", "127.0.0.1")
        try:
            with urllib.request.urlopen(f"http://{address}/api/v1/openapi.json", timeout=5):
                pass
        except Exception as exc:
            problems.append(f"the gateway does not answer on {address}: {exc}")
    return problems


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("service", nargs="?", default="gateway")
    who = parser.add_mutually_exclusive_group()
    who.add_argument("--pid", type=int)
    who.add_argument("--instance")
    parser.add_argument("--live", action="store_true", help="liveness only, not readiness")
    args = parser.parse_args(argv)
    try:
        problems = check(args.service, args.pid, args.instance, args.live)
    except Exception as exc:  # any failure means unhealthy; say why
        problems = [str(exc)]
    if problems:
        print(f"{args.service} unhealthy: " + "; ".join(problems), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
