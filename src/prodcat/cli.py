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

    mlflow = commands.add_parser("mlflow", help="MLflow's users")
    mlflow.add_subparsers(dest="action", required=True).add_parser(
        "add-reader", help="create the API's read-only user, or reset its password"
    )

    db = commands.add_parser("db", help="app database")
    db.add_subparsers(dest="action", required=True).add_parser("upgrade", help="apply migrations")

    data = commands.add_parser("data", help="ingestion without Airflow")
    data_commands = data.add_subparsers(dest="action", required=True)
    ingest = data_commands.add_parser("ingest", help="load the next batch")
    ingest.add_argument("--run-key", required=True, help="the same key twice loads once")
    reset = data_commands.add_parser("reset", help="empty prodcat's data, carve the eval set")
    reset.add_argument("--confirm", action="store_true", help="required: this deletes data")

    drift = commands.add_parser("drift", help="drift detection without Airflow")
    check = drift.add_subparsers(dest="action", required=True).add_parser(
        "check", help="compare new listings and live traffic with the champion's data now"
    )
    check.add_argument("--window", choices=["new_data", "live_traffic"], action="append",
                       help="only this window (default: both)")  # fmt: skip
    check.add_argument("--run-key", help="the same key twice gives the same result "
                       "(default: cli__<time>)")  # fmt: skip

    train = commands.add_parser("train", help="train, evaluate and gate a challenger")
    train.add_argument("--no-promote", action="store_true", help="gate but never promote")
    promote = commands.add_parser("promote", help="point the champion alias at a version")
    promote.add_argument("version")
    commands.add_parser("rollback", help="move the champion alias back to the previous one")
    commands.add_parser("serve", help="run the prediction API (PRODCAT_API__* settings)")
    return parser


def run_models(args: argparse.Namespace) -> int:
    import json

    from prodcat.training import registry
    from prodcat.training import steps as retrain

    if args.command == "train":
        trained = retrain.train_challenger()
        retrain.evaluate_challenger(trained["run_id"], trained["version"])
        decision = retrain.gate_version(trained["version"])
        if not args.no_promote:
            retrain.promote_if_approved(decision)
        print(json.dumps({**trained, "gate": decision}))
        return 0
    try:
        if args.command == "promote":
            registry.promote_version(args.version)
            print(f"champion: version {args.version}")
        else:
            print(f"champion: version {registry.rollback_champion()}")
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


def run_data(args: argparse.Namespace) -> int:
    import json

    if args.command == "db":
        from prodcat.db import upgrade_database

        upgrade_database()
        return 0
    if args.action == "ingest":
        from prodcat.data.ingest import ingest_next_batch

        print(json.dumps(ingest_next_batch(args.run_key).as_dict()))
        return 0
    from prodcat.data.reset import reset_data

    try:
        print(json.dumps(reset_data(confirm=args.confirm).as_dict()))
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


def run_drift(args: argparse.Namespace) -> int:
    import json
    from datetime import UTC, datetime

    from prodcat.drift.check import WINDOWS, check_window

    now = datetime.now(UTC)
    run_key = args.run_key or f"cli__{now:%Y%m%dT%H%M%S}"
    for window in args.window or WINDOWS:
        print(json.dumps(check_window(window, now, run_key), default=str))
    return 0


def run_stack(args: argparse.Namespace) -> int:
    from prodcat.stack import Stack, StackError, format_status, format_welcome

    stack = Stack()
    try:
        if args.action == "up":
            statuses = stack.up(args.services)
            print(format_status(statuses))
            if not args.services:
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
    if args.command == "serve":
        from prodcat.serving.server import serve

        serve()
        return 0
    if args.command in ("train", "promote", "rollback"):
        return run_models(args)
    if args.command == "drift":
        return run_drift(args)
    if args.command == "mlflow":  # compose's mlflow-init; `stack up` does it natively
        from prodcat.training.registry import ensure_reader_user

        settings = get_settings()
        print(f"MLflow user {settings.mlflow.reader_user}: {ensure_reader_user(settings)}")
        return 0
    return run_data(args)


if __name__ == "__main__":
    sys.exit(main())
