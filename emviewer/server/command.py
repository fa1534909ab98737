"""``emviewer serve``: its options and the command.

Light at import (no FastAPI, no uvicorn): ``emviewer --help`` builds this parser, so the server
libraries load only when the server starts.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from .settings import DEFAULT_HOST, DEFAULT_PORT, ServerSettings, read_token, write_new_token

MIB = 2**20
GIB = 2**30
_DEFAULTS = ServerSettings()  # the defaults live in ServerSettings; the help shows them


def _positive(kind: type):
    """An argparse type: a finite number above 0 of ``kind`` (int or float)."""
    noun = "whole number" if kind is int else "number"

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            value = 0
        if not 0 < value < math.inf:
            raise argparse.ArgumentTypeError(f"{text!r} is not a positive {noun}")
        return value

    return parse


def add_serve_parser(sub) -> argparse.ArgumentParser:
    """Add the ``serve`` subcommand to ``sub`` (what ``add_subparsers()`` returned); returns its parser."""
    serve = sub.add_parser("serve", help="run the online-mode prediction server")
    serve.add_argument(
        "--host", default=DEFAULT_HOST, help="address to listen on (default %(default)s; any other needs a token)"
    )
    serve.add_argument("--port", type=int, default=DEFAULT_PORT, help="port to listen on (default %(default)s)")
    serve.add_argument(
        "--token-file",
        metavar="FILE",
        help="file holding the token clients must send (default: $EMVIEWER_TOKEN); "
        f"beyond loopback it needs {_DEFAULTS.min_token_length} or more characters",
    )
    serve.add_argument(
        "--new-token",
        metavar="FILE",
        help="write a new random token to FILE (a new file only you can read), say where it is and exit",
    )
    serve.add_argument(
        "--keep-results",
        type=_positive(float),
        default=_DEFAULTS.result_ttl / 60,
        metavar="MINUTES",
        help="how long finished results are kept (default %(default)g)",
    )
    serve.add_argument(
        "--workers",
        type=_positive(int),
        default=_DEFAULTS.workers,
        metavar="N",
        help="jobs run at the same time (default %(default)s: one job on the GPU)",
    )
    budget = serve.add_argument_group("job budget", "what one job may ask for; a job over a limit is refused")
    budget.add_argument(
        "--max-upload-mb",
        type=_positive(float),
        default=_DEFAULTS.max_upload_bytes / MIB,
        metavar="MIB",
        help="largest upload accepted, in MiB (default %(default)g)",
    )
    budget.add_argument(
        "--max-parts",
        type=_positive(int),
        default=_DEFAULTS.max_parts,
        metavar="N",
        help="parts in one upload: files plus the parameters field (default %(default)s)",
    )
    budget.add_argument(
        "--max-decoded-gb",
        type=_positive(float),
        default=_DEFAULTS.max_decoded_bytes / GIB,
        metavar="GIB",
        help="image data of one job once decoded, in GiB: voxels x channels x bytes per sample (default %(default)g)",
    )
    budget.add_argument(
        "--max-slices",
        type=_positive(int),
        default=_DEFAULTS.max_slices,
        metavar="N",
        help="slices predicted in one job (default %(default)s)",
    )
    serve.set_defaults(run=cmd_serve)
    return serve


def settings_from_args(args: argparse.Namespace) -> ServerSettings:
    """The server settings the ``serve`` options ask for (reads the token file; starts nothing).

    Raises
    ------
    InputError
        The token file cannot be read or is empty.
    """
    return ServerSettings(
        host=args.host,
        port=args.port,
        token=read_token(args.token_file),
        max_upload_bytes=int(args.max_upload_mb * MIB),
        result_ttl=args.keep_results * 60,
        workers=args.workers,
        max_parts=args.max_parts,
        max_decoded_bytes=int(args.max_decoded_gb * GIB),
        max_slices=args.max_slices,
    )


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve until interrupted, or with ``--new-token FILE`` only write a token; returns 0.

    Raises
    ------
    InputError
        A bad token or token file, or ``--new-token`` on an existing file.
    """
    if args.new_token:
        path = write_new_token(args.new_token)
        print(f"wrote a new token to {Path(path).absolute()} (only you can read it); use it with --token-file {path}")
        return 0
    from .run import serve

    serve(settings_from_args(args))
    return 0
