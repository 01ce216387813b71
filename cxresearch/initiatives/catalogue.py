"""The initiative catalogue: what each initiative changes, for whom, when, and at what cost.

A catalogue is a list of initiatives (in the params ``settings.catalogue`` or a YAML file). Example::

    - name: app_redesign
      label: Mobile app redesign
      touchpoints: [mobile_app]
      effect: {uplift: [0.2, 0.6]}          # rating points on the touchpoint's own scale, uncertain
      cost: {one_off: 450000, recurring_monthly: 4000}
      scope: {segments: all, markets: [ES, MX]}
      time_to_effect_months: 6
      ramp_months: 3

    - name: payment_reliability
      touchpoints: [online_payment]
      effect: {remove_bad: {beta: {mean: 0.5, sd: 0.12}}}   # share of bottom-box experiences removed
      cost: {one_off: 200000}

Effects (:mod:`cxresearch.initiatives.effects` lists the distribution forms):

- ``uplift``: every rating of the targeted touchpoints, for users in scope, rises by the uplift (in scale
  points; capped at the scale maximum). A fractional uplift moves a rating up one whole step with
  probability equal to the fraction (so the mean rating rises by the uplift before capping).
- ``remove_bad``: that share of the bottom-box experiences (ratings ``<= bottom_box_max``; default the
  drivers' bottom box, the lowest 40% of the scale points: 1-2 on 1-5, 0-3 on 0-10, 1-40 on 1-100) is
  removed: each removed bad experience becomes a *typical* good one (a draw from the in-scope ratings above
  the bottom box), or the rating given in ``becomes``.

Scope: ``segments`` and ``markets`` ("all" or a list) select the customers affected. ``channels`` and
``needs`` label the initiative for the roadmap; when omitted they come from the dataset spec's touchpoints
(``channel``; ``need``, else ``stage``). Given explicitly, every targeted touchpoint whose channel the spec
declares must belong to the listed channels.

Time: nothing happens for ``time_to_effect_months``; then the effect ramps up linearly over
``ramp_months`` (0 = all at once). Costs: ``one_off`` is paid at the start, ``recurring_monthly`` every
month of the horizon.

Every error names the key path, e.g. ``catalogue[app_redesign].effect: ...``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from cxresearch.drivers.spec import DriverModelSpec
from cxresearch.initiatives.effects import EffectDistribution, EffectSpecError, parse_distribution
from cxresearch.yamlio import load_yaml

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class CatalogueError(ValueError):
    """A catalogue that cannot be used; the message names the source and the key path."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _all_or_list(value: Any) -> tuple[str, ...] | None:
    """'all' / None -> None (no filter); a string or a list -> tuple of strings (codes stay strings)."""
    if value is None:
        return None
    if isinstance(value, str):
        return None if value.strip().lower() == "all" else (value,)
    if isinstance(value, (list, tuple)):
        if not value:
            raise ValueError("an empty list selects nobody; use 'all' or list the codes")
        out = []
        for item in value:
            if isinstance(item, bool) or not isinstance(item, (str, int)):
                raise ValueError(f"codes are strings, got {item!r}")
            out.append(str(item))
        if len(set(out)) != len(out):
            raise ValueError(f"repeated codes in {out}")
        return tuple(out)
    raise ValueError(f"expected 'all' or a list of codes, got {value!r}")


class Cost(_Strict):
    """Cost in currency units (euros in the demo): one-off at the start, recurring every month."""

    one_off: float = Field(0.0, ge=0)
    recurring_monthly: float = Field(0.0, ge=0)

    def total(self, months: int) -> float:
        """Undiscounted cost over ``months`` (what a budget is checked against)."""
        return float(self.one_off + self.recurring_monthly * months)


class Scope(_Strict):
    """Who the initiative reaches (segments, markets) and how the roadmap labels it (channels, needs)."""

    segments: tuple[str, ...] | None = None
    markets: tuple[str, ...] | None = None
    channels: tuple[str, ...] | None = None
    needs: tuple[str, ...] | None = None

    @field_validator("segments", "markets", "channels", "needs", mode="before")
    @classmethod
    def _codes(cls, value: Any) -> tuple[str, ...] | None:
        return _all_or_list(value)

    def includes(self, segment: str, market: str) -> bool:
        """Whether customers of this segment and market are in scope."""
        return (self.segments is None or segment in self.segments) and (self.markets is None or market in self.markets)


class Effect(_Strict):
    """Exactly one of ``uplift`` (scale points) or ``remove_bad`` (share 0-1 of bottom-box ratings)."""

    uplift: Any = None
    remove_bad: Any = None
    bottom_box_max: float | None = None
    becomes: Literal["typical"] | float = "typical"

    @model_validator(mode="after")
    def _one_kind(self) -> Effect:
        given = [k for k in ("uplift", "remove_bad") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of 'uplift' (rating points) or 'remove_bad' "
                f"(share of bottom-box experiences removed); got {given or 'neither'}"
            )
        try:
            self.distribution  # noqa: B018 - parse now so errors surface at validation time
        except EffectSpecError as exc:
            raise ValueError(str(exc)) from None
        if self.kind == "uplift" and (self.bottom_box_max is not None or self.becomes != "typical"):
            raise ValueError("'bottom_box_max' and 'becomes' apply only to 'remove_bad'")
        return self

    @property
    def kind(self) -> Literal["uplift", "remove_bad"]:
        """'uplift' or 'remove_bad'."""
        return "uplift" if self.uplift is not None else "remove_bad"

    @property
    def distribution(self) -> EffectDistribution:
        """The effect-size distribution (a share is clipped to 0-1)."""
        if self.kind == "uplift":
            return parse_distribution(self.uplift, "uplift")
        return parse_distribution(self.remove_bad, "remove_bad", clip=(0.0, 1.0))

    def describe(self) -> str:
        """'uplift uniform 0.2 to 0.6 points' / 'remove 50% of bad experiences'."""
        d = self.distribution
        if self.kind == "uplift":
            return f"rating uplift {d.describe()} points"
        return f"share of bad experiences removed {d.describe()}"


class Initiative(_Strict):
    """One initiative of the catalogue."""

    name: str
    label: str | None = None
    description: str | None = None
    touchpoints: tuple[str, ...] = Field(min_length=1)
    effect: Effect
    cost: Cost = Cost()
    scope: Scope = Scope()
    time_to_effect_months: float = Field(0.0, ge=0)
    ramp_months: float = Field(0.0, ge=0)
    owner: str | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _IDENT.match(value):
            raise ValueError(f"initiative name {value!r} must be an identifier (letters, digits, underscore)")
        return value

    @field_validator("touchpoints", mode="before")
    @classmethod
    def _tps(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [value]
        if isinstance(value, (list, tuple)) and len(set(value)) != len(value):
            raise ValueError(f"repeated touchpoints in {list(value)}")
        return value

    @property
    def title(self) -> str:
        """Label for reports (the name when no label)."""
        return self.label or self.name.replace("_", " ").capitalize()

    def activation(self, months: Sequence[float] | Any) -> Any:
        """Share of the full effect active in each month (0 before the time to effect, then a linear ramp).

        Month m covers (m-1, m]; the share active is averaged over the month, so a ramp is credited
        smoothly and an effect that starts mid-month counts for part of it.
        """
        import numpy as np

        m = np.asarray(months, dtype=float)
        start, ramp = self.time_to_effect_months, self.ramp_months

        def integral(t: np.ndarray) -> np.ndarray:  # integral of the activation curve from 0 to t
            x = np.clip(t - start, 0.0, None)
            if ramp <= 0:
                return x
            inside = np.minimum(x, ramp)
            return inside**2 / (2 * ramp) + np.clip(x - ramp, 0.0, None)

        return integral(m) - integral(m - 1.0)


class Catalogue(_Strict):
    """An ordered list of initiatives with unique names."""

    initiatives: tuple[Initiative, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> Catalogue:
        names = [i.name for i in self.initiatives]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"initiative names must be unique; repeated: {repeated}")
        return self

    @property
    def names(self) -> list[str]:
        """Initiative names in catalogue order."""
        return [i.name for i in self.initiatives]

    def __getitem__(self, name: str) -> Initiative:
        for initiative in self.initiatives:
            if initiative.name == name:
                return initiative
        raise KeyError(f"no initiative named {name!r}; the catalogue has {self.names}")

    def __iter__(self):  # iterates initiatives, unlike pydantic's (field, value) pairs
        return iter(self.initiatives)

    def __len__(self) -> int:
        return len(self.initiatives)

    def to_records(self) -> list[dict[str, Any]]:
        """JSON-native description, one dict per initiative (for tables and manifests)."""
        return [i.model_dump(mode="json") for i in self.initiatives]


def _format_errors(exc: ValidationError, raw: Sequence[Any], source: str) -> str:
    lines = []
    for err in exc.errors():
        loc = list(err["loc"])
        parts = [source]
        if loc and loc[0] == "initiatives":
            loc = loc[1:]
        if loc and isinstance(loc[0], int):
            idx = int(loc.pop(0))
            item = raw[idx] if idx < len(raw) else None
            name = item.get("name") if isinstance(item, Mapping) else None
            parts[0] = f"{source}[{name}]" if isinstance(name, str) and name else f"{source}[{idx}]"
        path = ".".join([parts[0], *(str(p) for p in loc)])
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key (not part of an initiative; check its spelling)"
        lines.append(f"{path}: {msg}")
    return "\n".join(lines)


def load_catalogue(source: Any, where: str = "catalogue") -> Catalogue:
    """Validate a catalogue from a list of dicts, a ``{name: body}`` mapping, a ``{catalogue: [...]}``
    mapping, or a path to a YAML file holding any of these. Errors name ``where`` and the key path."""
    if isinstance(source, Catalogue):
        return source
    if isinstance(source, (str, Path)) and (Path(source).suffix in (".yaml", ".yml") or Path(source).is_file()):
        path = Path(source)
        data = load_yaml(path)
        where = str(path) if where == "catalogue" else where
        source = data
    if isinstance(source, Mapping):
        if set(source) <= {"catalogue", "initiatives"} and len(source) == 1:
            source = next(iter(source.values()))
        elif all(isinstance(v, Mapping) for v in source.values()):
            source = [{"name": k, **v} for k, v in source.items()]
        else:
            raise CatalogueError(f"{where}: expected a list of initiatives or a mapping name -> initiative")
    if not isinstance(source, (list, tuple)):
        raise CatalogueError(f"{where}: expected a list of initiatives, got {type(source).__name__}")
    for i, item in enumerate(source):
        if not isinstance(item, Mapping):
            raise CatalogueError(f"{where}[{i}]: an initiative is a mapping of keys, got {item!r}")
    try:
        return Catalogue.model_validate({"initiatives": list(source)})
    except ValidationError as exc:
        raise CatalogueError(_format_errors(exc, list(source), where)) from None


#: the default bottom box as a share of a scale's points: the drivers' (``DriverModelSpec.bottom_box``)
BOTTOM_BOX_SHARE: float = float(DriverModelSpec.model_fields["bottom_box"].default)


@dataclass(frozen=True)
class TouchpointInfo:
    """What the initiatives layer needs to know about one touchpoint."""

    key: str
    scale_min: float
    scale_max: float
    channel: str | None = None
    need: str | None = None
    label: str | None = None

    @property
    def bottom_box_max(self) -> float:
        """Default bottom box: the drivers' bottom box, the lowest 40% of the scale points (1-2 on 1-5, 0-3 on
        0-10, 1-40 on 1-100), so "remove bad experiences" removes the answers the driver model's bottom-box
        penalty is estimated on (the lowest quarter, used before, left 26-40 on 1-100 out of the initiative
        while the penalty covered them)."""
        points = int(round(self.scale_max - self.scale_min)) + 1
        return self.scale_min + max(1, int(math.floor(BOTTOM_BOX_SHARE * points + 0.5))) - 1


def touchpoint_info_from_spec(spec: Any) -> dict[str, TouchpointInfo]:
    """Touchpoint scales and labels from a DatasetSpec (``need`` falls back to the journey ``stage``)."""
    return {
        key: TouchpointInfo(
            key=key,
            scale_min=float(tp.scale.min),
            scale_max=float(tp.scale.max),
            channel=tp.channel,
            need=tp.need or tp.stage,
            label=tp.label,
        )
        for key, tp in spec.require_survey("the initiatives study").touchpoints.items()
    }


def check_catalogue(
    catalogue: Catalogue,
    touchpoints: Mapping[str, TouchpointInfo],
    segments: Iterable[str] | None = None,
    markets: Iterable[str] | None = None,
    where: str = "catalogue",
) -> None:
    """Check a catalogue against a dataset: touchpoints, segments and markets exist; channels agree;
    ``becomes`` and ``bottom_box_max`` lie on the touchpoint scale. Raises CatalogueError naming keys."""
    problems = []
    seg_known = None if segments is None else sorted(set(map(str, segments)))
    mkt_known = None if markets is None else sorted(set(map(str, markets)))
    for ini in catalogue:
        at = f"{where}[{ini.name}]"
        unknown = [t for t in ini.touchpoints if t not in touchpoints]
        if unknown:
            problems.append(f"{at}.touchpoints: unknown touchpoint(s) {unknown}; the dataset has {sorted(touchpoints)}")
            continue
        for dim, known, given in (
            ("segments", seg_known, ini.scope.segments),
            ("markets", mkt_known, ini.scope.markets),
        ):
            if known is not None and given is not None:
                missing = [g for g in given if g not in known]
                if missing:
                    problems.append(f"{at}.scope.{dim}: {missing} not in the data (known: {known})")
        if ini.scope.channels is not None:
            off = [
                t
                for t in ini.touchpoints
                if touchpoints[t].channel is not None and touchpoints[t].channel not in ini.scope.channels
            ]
            if off:
                problems.append(
                    f"{at}.scope.channels: touchpoint(s) {off} are on channel(s) "
                    f"{sorted({str(touchpoints[t].channel) for t in off})}, not in {list(ini.scope.channels)}"
                )
        eff = ini.effect
        for t in ini.touchpoints:
            info = touchpoints[t]
            if eff.kind == "remove_bad":
                bb = eff.bottom_box_max if eff.bottom_box_max is not None else info.bottom_box_max
                if not info.scale_min <= bb < info.scale_max:
                    problems.append(
                        f"{at}.effect.bottom_box_max: {bb:g} is not inside the {t} scale "
                        f"{info.scale_min:g}-{info.scale_max:g}"
                    )
                if eff.becomes != "typical" and not bb < float(eff.becomes) <= info.scale_max:
                    problems.append(
                        f"{at}.effect.becomes: {eff.becomes!r} must be above the bottom box ({bb:g}) "
                        f"and at most {info.scale_max:g} on the {t} scale"
                    )
            else:
                width = info.scale_max - info.scale_min
                dist = eff.distribution
                lo, hi = (float(v) for v in dist.quantile([0.001, 0.999]))
                if max(abs(lo), abs(hi)) > width:
                    problems.append(
                        f"{at}.effect.uplift: {dist.describe()} points exceeds the width of the "
                        f"{t} scale ({info.scale_min:g}-{info.scale_max:g})"
                    )
    if problems:
        raise CatalogueError("\n".join(problems))


def initiative_channels(ini: Initiative, touchpoints: Mapping[str, TouchpointInfo]) -> tuple[str, ...]:
    """Channels of an initiative: its scope's, else those of its touchpoints ('unspecified' if none)."""
    if ini.scope.channels is not None:
        return ini.scope.channels
    found = tuple(
        dict.fromkeys(
            str(touchpoints[t].channel) for t in ini.touchpoints if t in touchpoints and touchpoints[t].channel
        )
    )
    return found or ("unspecified",)


def initiative_needs(ini: Initiative, touchpoints: Mapping[str, TouchpointInfo]) -> tuple[str, ...]:
    """Customer needs of an initiative: its scope's, else its touchpoints' need / stage."""
    if ini.scope.needs is not None:
        return ini.scope.needs
    found = tuple(
        dict.fromkeys(str(touchpoints[t].need) for t in ini.touchpoints if t in touchpoints and touchpoints[t].need)
    )
    return found or ("unspecified",)
