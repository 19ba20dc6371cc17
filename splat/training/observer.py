"""Training observers: the viewer (and anything else) watches a run through these hooks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from splat.training.loop import Trainer


class TrainingObserver(Protocol):
    def on_start(self, trainer: "Trainer") -> None: ...

    def on_step(self, trainer: "Trainer", step: int, metrics: dict[str, float]) -> None: ...  # after each optimizer step, training thread

    def on_end(self, trainer: "Trainer") -> None: ...
