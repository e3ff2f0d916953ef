"""A factorization plan: which method and ranks each layer gets. Saved as plan.json."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from lrfc.errors import UserError


@dataclass(frozen=True)
class LayerChoice:
    """One factorized layer: ``method`` at ``ranks``, fit to data when ``data_aware``."""

    layer: str
    method: str
    ranks: tuple[int, ...]
    data_aware: bool = False

    def to_json(self) -> dict:
        return {"layer": self.layer, "method": self.method, "ranks": list(self.ranks), "data_aware": self.data_aware}


@dataclass(frozen=True)
class Plan:
    """The whole model's choices; layers not named are kept as they are."""

    choices: tuple[LayerChoice, ...]

    def by_layer(self) -> dict[str, LayerChoice]:
        return {c.layer: c for c in self.choices}

    def to_json(self) -> dict:
        return {"version": 1, "layers": [c.to_json() for c in self.choices]}

    @classmethod
    def from_json(cls, data: dict, where: str = "plan") -> "Plan":
        try:
            choices = tuple(
                LayerChoice(str(c["layer"]), str(c["method"]), tuple(int(r) for r in c["ranks"]), bool(c.get("data_aware", False)))
                for c in data["layers"]
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise UserError(f"{where}: not a valid plan ({type(exc).__name__}: {exc}); expected {{'layers': [{{'layer', 'method', 'ranks'}}...]}}") from exc
        names = [c.layer for c in choices]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise UserError(f"{where}: layer {dupes[0]!r} appears more than once")
        return cls(choices)

    @classmethod
    def load(cls, path: str | Path) -> "Plan":
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise UserError(f"plan not found: {path}") from None
        except (OSError, json.JSONDecodeError) as exc:
            raise UserError(f"{path}: not readable JSON ({exc})") from exc
        return cls.from_json(data, str(path))
