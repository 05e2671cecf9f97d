"""Command line of the fake Tamtam server: serve until SIGTERM or SIGINT, print the URL, optionally write it.

Run as ``python -m airflow_provider_tamtam.testing.fake_server``; a running server is driven through its
control API under ``/_fake/``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import threading
from pathlib import Path
from types import FrameType

from airflow_provider_tamtam.testing.credit_lines import DEFAULT_CREDITS, CreditLines
from airflow_provider_tamtam.testing.server import FakeTamtamServer

__all__ = ["main"]


def _credits_arg(text: str) -> CreditLines:
    value = json.loads(text)
    if value is not None and not isinstance(value, list):
        raise argparse.ArgumentTypeError("expected a JSON list of credit lines or null")
    return value


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m airflow_provider_tamtam.testing.fake_server",
        description="Serve a local Tamtam credits API until SIGTERM or SIGINT.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--base-path", default="/api")
    parser.add_argument("--api-key", default="test-api-key", help="raw key accepted; '' accepts none")
    parser.add_argument("--bearer-token", default="test-jwt", help="bearer token accepted; '' accepts none")
    parser.add_argument("--credits-json", type=_credits_arg, default=DEFAULT_CREDITS, metavar="JSON")
    parser.add_argument("--rise-after", type=int, metavar="N", help="switch credits after N answers")
    parser.add_argument("--risen-credits-json", type=_credits_arg, default=argparse.SUPPRESS, metavar="JSON")
    parser.add_argument("--latency", type=float, default=0.0, metavar="SECONDS")
    parser.add_argument("--url-file", type=Path, help="also write the base URL to this file")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run a server from the command line; prints ``FakeTamtamServer listening on <url>``."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    if (args.rise_after is None) == hasattr(args, "risen_credits_json"):
        parser.error("--rise-after and --risen-credits-json go together")
    if args.rise_after is not None and args.rise_after < 0:
        parser.error("--rise-after must not be negative")
    server = FakeTamtamServer(
        args.credits_json,
        api_key=args.api_key or None,
        bearer_token=args.bearer_token or None,
        latency=args.latency,
        host=args.host,
        port=args.port,
        base_path=args.base_path,
    )
    if args.rise_after:
        server.schedule_credits([(args.rise_after, args.credits_json), (0, args.risen_credits_json)])
    elif args.rise_after == 0:
        server.set_credits(args.risen_credits_json)

    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        server.start()
        print(f"FakeTamtamServer listening on {server.url}", flush=True)
        if args.url_file is not None:
            partial = args.url_file.with_name(args.url_file.name + ".partial")
            partial.write_text(server.url)
            os.replace(partial, args.url_file)
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
