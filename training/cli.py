"""The ``callsift`` command line: one typer command per workflow stage."""

from __future__ import annotations

import sys

import typer

from api import cli as api_cli
from classifier.errors import CallsiftError
from training import (
    adapt,
    data,
    default,
    demo,
    evaluate,
    features,
    promote,
    reference,
    simulate,
    train,
)

app = typer.Typer(
    name="callsift",
    help=(
        "callsift screens calls to emergency numbers for prank and ghost calls. "
        "It only advises: it never drops, blocks or deprioritises a call."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("validate")(data.validate)
app.command("summarize")(data.summarize)
app.command("simulate")(simulate.simulate_command)
app.command("features")(features.features_command)
app.command("train")(train.train_command)
app.command("evaluate")(evaluate.evaluate_command)
app.command("promote")(promote.promote_command)
app.command("adapt")(adapt.adapt_command)
app.command("build-default")(default.build_default_command)
app.add_typer(reference.model_app, name="model")
app.command("demo")(demo.demo)
# Service commands: api.cli imports SQLAlchemy and FastAPI only when a command runs.
app.add_typer(api_cli.keys_app, name="keys")
app.add_typer(api_cli.db_app, name="db")
app.command("serve")(api_cli.serve_command)
app.command("warm-up")(api_cli.warm_up_command)
app.command("report")(api_cli.report_command)


def main() -> None:
    """Run the CLI, turning callsift errors into one clear line and exit code 2."""
    try:
        app()
    except CallsiftError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
