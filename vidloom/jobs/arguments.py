"""Command-line options every vidloom job spells the same way."""

from __future__ import annotations

import argparse


def add_override_option(parser: argparse.ArgumentParser, example: str) -> None:
    """``--set KEY=VALUE`` (repeatable): override one config value."""
    parser.add_argument("--set", "-s", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help=f"override one config value, e.g. --set {example} (repeatable)")


def add_ray_options(parser: argparse.ArgumentParser, address: bool = True) -> None:
    """``--address`` (a running cluster) and ``--num-cpus`` (of a local Ray)."""
    if address:
        parser.add_argument("--address", help="Ray cluster address (default: RAY_ADDRESS, else a local Ray)")
    parser.add_argument("--num-cpus", type=int, help="CPUs of the local Ray (default: all)")
