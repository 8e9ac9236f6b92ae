"""`python -m simulator`: run the simulated tenant until SIGINT/SIGTERM.

Prints one JSON line: base_url, ca_bundle, tenant_id, log_analytics_workspace_id and the
secret-mode settings_env. Serves Entra tokens, the Management Activity API (/api/v1.0/...),
Microsoft Graph (/v1.0/users/{upn}/messages, /v1.0/$batch,
/v1.0/admin/exchange/tracing/messageTraces) and the Log Analytics query API
(POST /v1/workspaces/{id}/query, OfficeActivity window queries). Admin routes (loopback, unauthenticated):
GET /_sim/ground-truth, GET /_sim/stats, POST /_sim/release-late.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from simulator.config import FaultConfig, SimulatorConfig
from simulator.core import Simulator

PRESETS = {"none": FaultConfig.none, "moderate": FaultConfig.moderate, "all": FaultConfig.all}


def parse_args(argv: Sequence[str] | None = None) -> SimulatorConfig:
    parser = argparse.ArgumentParser(prog="python -m simulator", description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--faults", choices=sorted(PRESETS), default="none")
    parser.add_argument("--mailboxes", type=int, default=30)
    parser.add_argument("--days", type=int, default=5, help="1..7")
    parser.add_argument(
        "--history-days", type=int, default=0, help="days of history before --days (audit-log query API only)"
    )
    parser.add_argument("--page-size", type=int, default=20)
    parser.add_argument(
        "--late-delay", type=float, default=20.0, help="seconds until late blobs are listable"
    )
    parser.add_argument("--latency", type=float, default=None, help="seconds added to every API call")
    parser.add_argument("--token-lifetime", type=int, default=3599)
    parser.add_argument(
        "--graph-latency", type=float, default=0.0, help="seconds each Graph message lookup takes"
    )
    parser.add_argument(
        "--graph-deny",
        action="append",
        default=[],
        metavar="UPN",
        help="a mailbox outside the app's RBAC scope (Graph answers 403); repeatable",
    )
    parser.add_argument(
        "--trace-missing-sp",
        action="store_true",
        help="message trace answers 401 (no Transport Data Platform service principal)",
    )
    args = parser.parse_args(argv)
    faults = PRESETS[args.faults]()
    if args.latency is not None:
        faults = FaultConfig(**{**faults.__dict__, "latency_s": args.latency})
    try:
        return SimulatorConfig(
            seed=args.seed,
            mailboxes=args.mailboxes,
            days=args.days,
            history_days=args.history_days,
            faults=faults,
            port=args.port,
            page_size=args.page_size,
            late_delay_s=args.late_delay,
            token_lifetime_s=args.token_lifetime,
            graph_latency_s=args.graph_latency,
            graph_denied_mailboxes=tuple(args.graph_deny),
            trace_missing_service_principal=args.trace_missing_sp,
        )
    except ValueError as problem:
        parser.error(str(problem))


def main(argv: Sequence[str] | None = None) -> int:
    config = parse_args(argv)
    stopping = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    with Simulator(config) as sim:
        line = {
            "base_url": sim.base_url,
            "ca_bundle": sim.ca_bundle,
            "tenant_id": sim.tenant_id,
            "attacker_mailbox": sim.attacker_mailbox,
            "attacker_ip": sim.attacker_ip,
            "throttled_mailbox": sim.throttled_mailbox,
            "log_analytics_workspace_id": sim.log_analytics_workspace_id,
            "settings_env": sim.settings_env("secret"),
        }
        print(json.dumps(line), flush=True)
        while not stopping.wait(0.5):
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
