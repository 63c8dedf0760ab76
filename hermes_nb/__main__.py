"""``python -m hermes_nb doctor [PROFILE]``: check the setup from a terminal."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hermes-nb", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    doctor = sub.add_parser("doctor", help="check config, key, endpoint, store and versions")
    doctor.add_argument("profile", nargs="?", help="profile to check (default: the default one)")
    doctor.add_argument("--timeout", type=float, default=5.0, help="seconds for the live check")
    args = parser.parse_args(argv)
    from .doctor import doctor_report

    report = doctor_report(args.profile, timeout=args.timeout)
    print(report.text())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
