"""The registry of confidence methods: one entry per score the protocol evaluates.

A method is a name (the `method` column of every output table), a display name and a colour for the
report, and a *scorer*: a function that takes one unit's `ScoringContext` (the trained networks' outputs on
validation and test, the labels, and the scores computed so far) and returns the method's validation and
test scores as a `Scored`. The report's names and colours, the CLI's `--methods` and what an export can serve all
derive from here, so a new score is one small function:

    @register_method("my_score", display_name="My score", color="tab:pink")
    def _my_score(context):
        return Scored.from_parts(lambda part: my_function(context.probabilities[part]))

Methods run in registration order (`recommended`, which chooses among the others, runs last). The built-in
methods (`settings.ALL_METHODS`) are registered by `builtin.py`, which `emoconf_tf.scores` imports, so they are
here whenever this module is.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Iterable

from emoconf_tf.errors import EmoconfError, argument_named
from emoconf_tf.scores.context import Scored, ScoringContext

Scorer = Callable[[ScoringContext], Scored]
"""A method's scorer: one unit's context in, its validation and test scores out."""


@dataclasses.dataclass(frozen=True)
class ConfidenceMethod:
    """A registered method: its output name, its report display name and colour, its scorer, how an export
    serves it (`serving`: how the SavedModel computes it; `not_served`: why it cannot, when `serving` is None), and
    whether it is trained on AVD ratings (`needs_avd`: it cannot run on a corpus with categories only)."""

    name: str
    display_name: str
    color: str
    scorer: Scorer
    serving: str | None = None
    not_served: str = ""
    needs_avd: bool = False

    @property
    def servable(self) -> bool:
        return self.serving is not None


METHODS: dict[str, ConfidenceMethod] = {}
"""Every registered method by name, in the order they run."""


def register_method(name: str, *, display_name: str, color: str, serving: str | None = None,
                    not_served: str = "", needs_avd: bool = False) -> Callable[[Scorer], Scorer]:
    """Decorator registering `scorer(context) -> Scored` under `name`. Re-registering a name replaces it.

    `serving` says how a SavedModel computes the score (`emoconf_tf.serving.served_score` must implement it);
    None (default) = not servable, with `not_served` saying why (printed when `--score` asks for it).
    `needs_avd`: the scorer reads EmoConfidNet's outputs or the AVD distances, which a corpus without AVD ratings
    does not have (default False).
    """
    def decorate(scorer: Scorer) -> Scorer:
        METHODS[name] = ConfidenceMethod(name, display_name, color, scorer, serving, not_served, needs_avd)
        if "recommended" in METHODS and name != "recommended":  # recommended chooses among the others: last
            METHODS["recommended"] = METHODS.pop("recommended")
        return scorer
    return decorate


def method_names() -> tuple[str, ...]:
    """The registered methods' names, in the order they run (`ALL_METHODS` plus any registered later)."""
    return tuple(METHODS)


def check_methods(methods: Iterable[str]) -> tuple[str, ...]:
    """`methods` as a tuple if every name is a registered score, else `EmoconfError` naming the unknown ones."""
    methods = tuple(methods)
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise EmoconfError(f"methods {unknown}: choose from {', '.join(METHODS)}", argument="methods")
    return methods


NO_AVD_REASON = "the corpus has no AVD ratings, which its targets are computed from"
"""Why a method with `needs_avd` is left out on a corpus with categories only (messages and reports say it)."""


def avd_methods() -> tuple[str, ...]:
    """The registered methods trained on AVD ratings (`ConfidenceMethod.needs_avd`), in registry order."""
    return tuple(name for name, method in METHODS.items() if method.needs_avd)


def servable_methods(*, has_avd: bool = True) -> tuple[str, ...]:
    """The registered methods a SavedModel can serve (`ConfidenceMethod.servable`), in registry order; with
    `has_avd` False, only those a run without AVD ratings has (no `needs_avd` method)."""
    return tuple(name for name, method in METHODS.items() if method.servable and (has_avd or not method.needs_avd))


def check_servable(name: str, option: str = "--score", *, has_avd: bool = True) -> str:
    """`name` if it is a servable method (of a run with AVD ratings unless `has_avd` is False), else `EmoconfError`
    in one line saying why not and what can be served; `option` starts the message, and is its `argument` when it
    is a Python argument's name (`"score"`)."""
    method = METHODS.get(name)
    if method is None or not method.servable:
        why = f" cannot be served: {method.not_served}" if method is not None else " is not a confidence score"
        raise EmoconfError(f"{option} {name}:{why}; choose one of {', '.join(servable_methods(has_avd=has_avd))}",
                           argument=argument_named(option))
    if method.needs_avd and not has_avd:
        raise EmoconfError(f"{option} {name}: not available: {NO_AVD_REASON}; choose one of "
                           f"{', '.join(servable_methods(has_avd=False))}", argument=argument_named(option))
    return name
