"""The ``hermes-nb`` command (also ``python -m hermes_nb``): check the setup from a terminal.

``hermes-nb doctor [PROFILE]`` checks the configuration, the profile's key and endpoint, the
session store and the Jupyter versions, and says what to fix; ``hermes-nb --version`` prints the
version.
"""

from __future__ import annotations

import argparse
import sys

_DESCRIPTION = "Check the hermes_nb setup from a terminal (the notebook side: %hermes doctor)."


def main(argv: list[str] | None = None) -> int:
    from . import __version__

    parser = argparse.ArgumentParser(prog="hermes-nb", description=_DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"hermes-nb {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    doctor = sub.add_parser(
        "doctor",
        help="check config, key, endpoint, store and versions",
        description="Check the configuration, the profile's key and endpoint, the session "
        "store and the Jupyter versions; exit 1 if anything failed.",
    )
    doctor.add_argument("profile", nargs="?", help="profile to check (default: the default one)")
    doctor.add_argument("--timeout", type=float, default=5.0, help="seconds for the live check")
    args = parser.parse_args(argv)
    from .doctor import doctor_report

    report = doctor_report(args.profile, timeout=args.timeout)
    print(report.text())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
