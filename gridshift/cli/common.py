"""What every subcommand shares: exit codes, errors turned into one-line messages, reading a
request file, writing an output, and the settings and application of a command line."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gridshift.adapters.files import write_atomically
from gridshift.optimizer.errors import FieldViolation, InvalidInputError, UpstreamUnavailableError
from gridshift.optimizer.scoring.device import DeviceUnavailableError

if TYPE_CHECKING:
    from gridshift.app.application import App
    from gridshift.settings import Settings

EXIT_OK, EXIT_INTERNAL, EXIT_INVALID, EXIT_INFEASIBLE = 0, 1, 2, 3
#: Problems listed on stderr; a request with thousands gets the first ones and a count.
MAX_PRINTED_VIOLATIONS = 50

log = logging.getLogger("gridshift")


class OutputError(Exception):
    """An output path given on the command line cannot be written (a usage error, not a bug)."""


def settings_of(args: argparse.Namespace, **flags: dict[str, Any]) -> Settings:
    """The settings of this command line (its --config file, the environment, ``flags``);
    configures logging at the settings' level."""
    from gridshift.settings import load_settings

    settings = load_settings(getattr(args, "config", None), flags=flags)
    logging.getLogger().setLevel(settings.log_level or "WARNING")
    return settings


def app_of(args: argparse.Namespace, **flags: dict[str, Any]) -> App:
    """The application for this command line (the bootstrap is imported here, not at start-up:
    `gridshift health` needs none of it)."""
    from gridshift.bootstrap import build_app

    return build_app(settings_of(args, **flags))


def exit_code_for(exc: Exception) -> int:
    """Print what went wrong in one line and return the exit code."""
    if isinstance(exc, InvalidInputError):
        print_invalid(exc)
        return EXIT_INVALID
    if isinstance(exc, OutputError | DeviceUnavailableError):
        print(f"gridshift: {exc}", file=sys.stderr)
        return EXIT_INVALID
    if isinstance(exc, PermissionError):   # the server's UNAUTHENTICATED / PERMISSION_DENIED
        print(f"gridshift: {exc}", file=sys.stderr)
        return EXIT_INTERNAL
    if isinstance(exc, UpstreamUnavailableError):
        print(f"gridshift: unavailable: {exc}", file=sys.stderr)
        return EXIT_INTERNAL
    log.debug("internal error", exc_info=True)
    print(f"gridshift: internal error ({type(exc).__name__}); set GRIDSHIFT_LOG_LEVEL=DEBUG "
          "for details", file=sys.stderr)
    return EXIT_INTERNAL


def print_invalid(exc: InvalidInputError) -> None:
    what = "settings" if type(exc).__name__ == "InvalidSettingsError" else "request"
    print(f"gridshift: invalid {what} ({len(exc.violations)} problem(s)):", file=sys.stderr)
    for v in exc.violations[:MAX_PRINTED_VIOLATIONS]:
        print(f"  {v}", file=sys.stderr)
    if len(exc.violations) > MAX_PRINTED_VIOLATIONS:
        print(f"  ... and {len(exc.violations) - MAX_PRINTED_VIOLATIONS} more", file=sys.stderr)


def read_request(path: str) -> Any:
    """A JSON file (or - for standard input), a UTF-8 byte-order mark allowed (RFC 8259)."""
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInputError([FieldViolation("", f"cannot read {path}: {exc}")]) from None
    text = text.removeprefix("\ufeff")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInputError([FieldViolation("", f"unreadable JSON in {path}: {exc}")]) from None


def write_output(output: str | None, text: str | bytes) -> None:
    """Write to ``output`` whole or not at all (standard output when None or -)."""
    if output is None or output == "-":
        if isinstance(text, bytes):
            sys.stdout.buffer.write(text)
            sys.stdout.flush()
        else:
            sys.stdout.write(text)
        return
    try:
        write_atomically(output, text)
    except OSError as exc:
        raise OutputError(f"cannot write {output}: {exc.strerror or exc}") from None


def client_of(args: argparse.Namespace, target: str, *, retries: bool = True) -> Any:
    """A SchedulerClient to ``target`` with the TLS files and token of the flags and the
    [client] settings (flags win)."""
    from gridshift.adapters.grpc_client import SchedulerClient

    settings = settings_of(args).client
    ca, cert, key = (getattr(args, name, None) or getattr(settings, name)
                     for name in ("ca", "cert", "key"))
    token = settings.token
    if getattr(args, "token_file", None):
        token = _read_text(args.token_file, "--token-file").strip()
    return SchedulerClient(target, retries=retries,
                           ca=_read_bytes(ca, "ca") if ca else None,
                           cert=_read_bytes(cert, "cert") if cert else None,
                           key=_read_bytes(key, "key") if key else None, token=token or None,
                           server_name=getattr(args, "server_name", None)
                           or settings.server_name or None)


def _read_bytes(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise InvalidInputError([FieldViolation(f"--{what}",
                                                f"cannot read {path}: {exc.strerror}")]) from None


def _read_text(path: str, what: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInputError([FieldViolation(what, f"cannot read {path}: {exc}")]) from None
