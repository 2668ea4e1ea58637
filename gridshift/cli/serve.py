"""`gridshift serve` (the gRPC service) and `gridshift health` (ask a server's health)."""

from __future__ import annotations

import argparse
import sys

from gridshift.cli.common import EXIT_INTERNAL, EXIT_OK, client_of, settings_of


def run(args: argparse.Namespace) -> int:
    return _serve(args) if args.command == "serve" else _health(args)


def _serve(args: argparse.Namespace) -> int:
    from gridshift.bootstrap import build_app
    from gridshift.service.server import configure_json_logging, serve

    settings = settings_of(
        args, server={"host": args.host, "port": args.port,
                      "max_concurrent_solves": args.max_concurrent_solves,
                      "max_queued_solves": args.max_queued_solves,
                      "grace_seconds": args.grace},
        scoring={"device": args.device}, logging={"level": args.log_level})
    configure_json_logging(settings.log_level or "INFO")
    return serve(build_app(settings), settings.server, settings.security, settings.metrics)


def _health(args: argparse.Namespace) -> int:
    import grpc

    with client_of(args, args.server, retries=False) as client:
        try:
            status = client.health(args.service)
        except grpc.RpcError as exc:
            print(f"{args.server}: {exc.code().name}", file=sys.stderr)
            return EXIT_INTERNAL
    print(status)
    return EXIT_OK if status == "SERVING" else EXIT_INTERNAL
