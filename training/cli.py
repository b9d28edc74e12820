"""The training commands of ``callsift``: one typer command per workflow stage.

:data:`app` holds them; the root command (``callsift.py`` at the top of the repository)
mounts them beside the service's commands (:mod:`api.cli`). This module imports neither.
"""

from __future__ import annotations

import typer

from training import (
    adapt,
    data,
    default,
    evaluate,
    features,
    promote,
    reference,
    simulate,
    train,
)

app = typer.Typer(
    name="training",
    help="Simulate, validate, extract features, train, evaluate, promote and adapt models.",
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
