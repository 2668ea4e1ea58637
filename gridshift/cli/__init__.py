"""The `gridshift` command: parse the arguments, read the settings, call the application, render.

Exit codes: 0 a plan was found, 2 invalid input, 3 infeasible, 1 internal or upstream error.
:mod:`.parser` holds every subcommand's options; each subcommand runs in a module of this
package (``plan``, ``serve``, ``queries``, ``score``, ``plans``, ``nightly``, ``backtest``),
imported only when its command runs, so that ``gridshift health`` starts fast.
"""

from __future__ import annotations

import importlib
import logging
import sys

from gridshift.cli.parser import COMMANDS, build_parser

__all__ = ["main"]

EXIT_INTERNAL = 1


def main(argv: list[str] | None = None) -> int:
    """The `gridshift` command: run the subcommand and turn errors into exit codes (2 bad
    input, 1 internal or upstream failure) with a one-line message, never a traceback."""
    logging.basicConfig(level="WARNING", format="%(levelname)s %(name)s: %(message)s")
    # urllib3 logs every retry of a provider call; gridshift's HTTP client reports the
    # outcome in one line (and provenance says why a source was passed over).
    logging.getLogger("urllib3").setLevel(logging.ERROR)
    args_list = sys.argv[1:] if argv is None else argv
    command = next((a for a in args_list if a in COMMANDS), None)
    args = build_parser(command).parse_args(argv)
    from gridshift.cli.common import exit_code_for

    try:
        module = importlib.import_module(f"gridshift.cli.{COMMANDS[args.command]}")
        return module.run(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERNAL
    except Exception as exc:  # noqa: BLE001 - the one place that turns errors into exit codes
        return exit_code_for(exc)


if __name__ == "__main__":
    sys.exit(main())
