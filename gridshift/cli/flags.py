"""Options several subcommands share."""

from __future__ import annotations

import argparse

BACKENDS = ("auto", "highs", "cpsat", "greedy")


def add_config_flag(parser: argparse.ArgumentParser) -> None:
    """--config FILE: the TOML settings file."""
    parser.add_argument("--config", metavar="FILE",
                        help="TOML settings file ([server], [forecasts], [providers], [store], "
                             "...; see the README's Configuration section)")


def add_solver_flags(p: argparse.ArgumentParser) -> None:
    """--time-limit and --backend: what a solve may change of the request's options."""
    p.add_argument("--time-limit", type=float, metavar="S",
                   help="solver time limit in seconds (overrides options.time_limit_seconds)")
    p.add_argument("--backend", choices=BACKENDS, help="solver backend (overrides options)")
    p.add_argument("--require-forecast", action="store_true",
                   help="refuse to plan (exit 1) where a region would rest on a fallback: the "
                        "embedded typical-day profile, a later source or a stale forecast "
                        "(sets options.require_forecasts)")


def add_client_flags(p: argparse.ArgumentParser) -> None:
    """How to reach a server that asks for TLS and credentials (with --server); each also a
    [client] setting (GRIDSHIFT_CLIENT_CA, ..., GRIDSHIFT_TOKEN)."""
    p.add_argument("--ca", metavar="PEM", help="with --server: TLS, checking the server's "
                                               "certificate against this CA")
    p.add_argument("--cert", metavar="PEM", help="with --server: client certificate (mutual TLS)")
    p.add_argument("--key", metavar="PEM", help="with --server: the client certificate's key")
    p.add_argument("--token-file", metavar="FILE",
                   help="with --server: a file holding the bearer token (default "
                        "$GRIDSHIFT_TOKEN)")
    p.add_argument("--server-name", metavar="NAME",
                   help="with --server: the name the server's certificate is checked for")
