"""The `prodcat` command line."""

from __future__ import annotations

import argparse
import sys

from prodcat.config import get_settings
from prodcat.logging_setup import configure_logging


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="prodcat", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    stack = commands.add_parser("stack", help="run the native service stack")
    stack_commands = stack.add_subparsers(dest="action", required=True)
    for action, text in [
        ("up", "set up and start services, wait until healthy"),
        ("down", "stop the services this stack started"),
        ("status", "show each service, its URL and health"),
    ]:
        sub = stack_commands.add_parser(action, help=text)
        sub.add_argument("services", nargs="*", help="only these services (default: all)")
    logs = stack_commands.add_parser("logs", help="show the end of service logs")
    logs.add_argument("service", nargs="?")
    logs.add_argument("-n", "--lines", type=int, default=40)
    return parser


def run_stack(args: argparse.Namespace) -> int:
    from prodcat.stack import Stack, StackError, format_status, format_welcome

    stack = Stack()
    try:
        if args.action == "up":
            statuses = stack.up(args.services)
            print(format_status(statuses))
            print(format_welcome(stack.settings))
            return 0 if all(s.healthy for s in statuses) else 1
        if args.action == "down":
            stopped = stack.down(args.services)
            print(f"stopped: {', '.join(stopped) or 'nothing was running'}")
            return 0
        if args.action == "status":
            statuses = stack.status(args.services)
            print(format_status(statuses))
            return 0 if all(s.healthy for s in statuses) else 3
        print(stack.logs(args.service, args.lines))
        return 0
    except StackError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(get_settings().log_level)
    if args.command == "stack":
        return run_stack(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
