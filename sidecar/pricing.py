"""The pricing table and the cost arithmetic (SPEC "Pricing file", cost tracking and budgets).

The shipped table (``sidecar/pricing.yaml``) is loaded first; a user's ``pricing_file`` in the same
format then overrides and extends it model by model and key by key (``null`` removes a key).

Money is integer micro-dollars (1 USD = 1_000_000). Every computation multiplies exact integer
counts by exact ``Decimal`` prices, sums the parts unrounded and rounds half-up once, at the end:
the same usage always costs the same micro-dollars, and no float ever touches a sum.

Model names resolve to a table entry by, in order: the exact name; the family of a dated snapshot
or variant, i.e. the longest entry followed by ``-`` (``gpt-4o-mini-2024-07-18`` → ``gpt-4o-mini``);
the same two without a ``provider/`` prefix; and, for image models only, ``MODEL:QUALITY`` as the
image fallback chains write it (``dall-e-3:hd``). Resolutions are memoised in a bounded dict, so a
cost on the hot path is a dict lookup plus a few ``Decimal`` operations.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import (
    ROUND_HALF_UP,
    Context,
    Decimal,
    DivisionByZero,
    InvalidOperation,
    Overflow,
)
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, Final, NamedTuple

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
)

from sidecar.config import ConfigError, format_validation_error
from sidecar.exchange import Usage

MICROS_PER_USD: Final = 1_000_000
DEFAULT_IMAGE: Final = "1024x1024:standard"
# Distinct model names whose resolution is remembered; names past it are resolved every time.
MAX_MEMOISED: Final = 4096
SHIPPED_TABLE: Final = "pricing.yaml"

# Exact for every validated price (at most 24 digits) times any 64-bit token count, summed.
_CTX: Final = Context(
    prec=60, rounding=ROUND_HALF_UP, traps=[InvalidOperation, DivisionByZero, Overflow]
)
_ZERO: Final = Decimal(0)
PRICE_PLACES: Final = 12  # decimal places a price may have (validated when a file is read)
_UNIT: Final = 10**PRICE_PLACES
_HALF_UNIT: Final = _UNIT // 2
_IMAGE_KEY: Final = re.compile(r"[1-9][0-9]*x[1-9][0-9]*:[a-z][a-z0-9_-]*")
_FILE_DEFAULTS: Final = ("source", "as_of")


# --- the table -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """One entry of the table: USD per 1M tokens, USD per image by ``SIZE:QUALITY``."""

    model: str  # the entry's own name (a snapshot resolves to its family's entry)
    input_per_1m: Decimal | None
    cached_input_per_1m: Decimal | None  # None: cached prompt tokens cost input_per_1m
    output_per_1m: Decimal | None
    images: dict[str, Decimal]  # "1024x1024:standard" -> USD per image; do not mutate
    source: str  # where the prices were read (a URL, or the pricing_file)
    as_of: date  # when they were read
    default_image: str = DEFAULT_IMAGE  # "SIZE:QUALITY" charged when a request names neither
    # input, cached input (input's when None) and output prices times 10**PRICE_PLACES
    scaled: tuple[int | None, int | None, int | None] = field(init=False, compare=False)

    def __post_init__(self) -> None:
        cached = self.cached_input_per_1m
        prices = (self.input_per_1m, self.input_per_1m if cached is None else cached)
        object.__setattr__(self, "scaled", (*map(_scaled, prices), _scaled(self.output_per_1m)))

    def image_price(self, size: str | None = None, quality: str | None = None) -> Decimal | None:
        """USD per image at ``size`` and ``quality`` (None or "auto": the default), or None."""
        default_size, _, default_quality = self.default_image.partition(":")
        if not size or size == "auto":
            size = default_size
        if not quality or quality == "auto":
            quality = default_quality
        return self.images.get(f"{size}:{quality}")


class _Resolved(NamedTuple):
    price: ModelPrice
    quality: str | None  # from a "MODEL:QUALITY" name


class Pricing:
    """The merged pricing table and the cost arithmetic over it."""

    def __init__(self, models: Mapping[str, ModelPrice]) -> None:
        self._models = dict(models)
        # Longest first, so gpt-4o-mini-2024-07-18 resolves to gpt-4o-mini, not gpt-4o.
        self._families = sorted(self._models, key=len, reverse=True)
        self._resolved: dict[str, _Resolved | None] = {}

    @classmethod
    def load(cls, pricing_file: str | None) -> Pricing:
        """The shipped table, overridden and extended by ``pricing_file`` when one is given.

        A file that cannot be read, parsed or validated raises :class:`ConfigError` naming the
        file and the key path of every problem.
        """
        shipped = resources.files("sidecar").joinpath(SHIPPED_TABLE)
        origin = f"sidecar/{SHIPPED_TABLE}"
        entries: dict[str, dict[str, Any]] = {}
        touched_by: dict[str, str] = {}
        layers: list[tuple[str, str, date | None]] = [
            (origin, shipped.read_text(encoding="utf-8"), None)
        ]
        if pricing_file is not None:
            layers.append(_read_user_file(Path(pricing_file)))
        for name, text, modified in layers:
            for model in _merge_layer(entries, name, text, modified):
                touched_by[model] = name
        return cls({model: _build(model, e, touched_by[model]) for model, e in entries.items()})

    @property
    def models(self) -> Mapping[str, ModelPrice]:
        """Every entry of the merged table, by name."""
        return MappingProxyType(self._models)

    # --- lookups ----------------------------------------------------------------------------

    def unit_prices(self, model: str) -> ModelPrice | None:
        """The entry ``model`` is priced by (its family's for a snapshot); None when unpriced."""
        resolved = self._resolve(model)
        return None if resolved is None else resolved.price

    def is_free(self, model: str) -> bool:
        """Priced, and at zero for every token (moderation models): no usage, no cost."""
        price = self.unit_prices(model)
        return price is not None and not price.images and not any(price.scaled)

    def more_expensive(self, a: str, b: str) -> bool | None:
        """Whether model ``b`` is priced above model ``a``; None when either is unpriced.

        Token models compare input + output USD per 1M tokens; image models compare the price
        of one image at their default size and the quality their name carries
        (``dall-e-3:hd``) or their default one. A token model and an image model do not compare.
        """
        score_a = self._score(a)
        score_b = self._score(b)
        if score_a is None or score_b is None or score_a[0] != score_b[0]:
            return None
        return score_b[1] > score_a[1]

    # --- arithmetic -------------------------------------------------------------------------

    def cost_micros(
        self, model: str, usage: Usage, *, size: str | None = None, quality: str | None = None
    ) -> int | None:
        """What ``usage`` of ``model`` costs, in micro-dollars rounded half-up once.

        Tokens (chat, responses, embeddings): uncached input at the input price, cached input at
        the cached-input price (the input price when the model has none), output at the output
        price, all per 1M. Images (``usage.images`` > 0): that many images at the price of
        ``size``:``quality`` (None or "auto": the model's default; the quality of a
        ``MODEL:QUALITY`` name when ``quality`` is not given); the per-image price is all-in,
        tokens of an image response are not charged on top.

        None when the model is unpriced, or has no price for a count that is not zero (an image
        size or quality it does not offer, output tokens of an input-only model).
        """
        resolved = self._resolve(model)
        if resolved is None:
            return None
        price = resolved.price
        if usage.images > 0:
            return _image_micros(price, usage.images, size, _quality(quality, resolved))
        input_tokens = max(usage.input_tokens, 0)
        cached = min(max(usage.cached_input_tokens, 0), input_tokens)
        return _token_micros(price, input_tokens - cached, cached, max(usage.output_tokens, 0))

    def estimate_micros(
        self,
        model: str,
        prompt_tokens: int,
        max_output_tokens: int,
        *,
        images: int = 0,
        size: str | None = None,
        quality: str | None = None,
    ) -> int | None:
        """The most a request can cost, to reserve against a budget before it is sent.

        The prompt at the full input price (no cache discount assumed) plus ``max_output_tokens``
        at the output price; for an image request (``images`` > 0), that many images at
        ``size``:``quality`` as in :meth:`cost_micros`. None when unpriced.
        """
        resolved = self._resolve(model)
        if resolved is None:
            return None
        if images > 0:
            return _image_micros(resolved.price, images, size, _quality(quality, resolved))
        return _token_micros(resolved.price, max(prompt_tokens, 0), 0, max(max_output_tokens, 0))

    # --- internals --------------------------------------------------------------------------

    def _resolve(self, model: str) -> _Resolved | None:
        try:
            return self._resolved[model]
        except KeyError:
            pass
        found = self._lookup(model)
        resolved = None if found is None else _Resolved(found, None)
        if resolved is None and ":" in model:
            base, _, quality = model.rpartition(":")
            entry = self._lookup(base)
            suffix = ":" + quality
            if entry is not None and any(key.endswith(suffix) for key in entry.images):
                resolved = _Resolved(entry, quality)
        if len(self._resolved) < MAX_MEMOISED:
            self._resolved[model] = resolved
        return resolved

    def _lookup(self, model: str) -> ModelPrice | None:
        """Exact name, then family; then the same without a ``provider/`` prefix."""
        name = model
        while True:
            if (entry := self._family(name)) is not None:
                return entry
            _, slash, rest = name.partition("/")
            if not slash or not rest:
                return None
            name = rest

    def _family(self, name: str) -> ModelPrice | None:
        entry = self._models.get(name)
        if entry is not None:
            return entry
        for family in self._families:
            if name.startswith(family) and name[len(family) : len(family) + 1] == "-":
                return self._models[family]
        return None

    def _score(self, model: str) -> tuple[str, Decimal] | None:
        resolved = self._resolve(model)
        if resolved is None:
            return None
        price = resolved.price
        tokens = (price.input_per_1m, price.output_per_1m)
        if resolved.quality is None and tokens != (None, None):
            return "tokens", _CTX.add(tokens[0] or _ZERO, tokens[1] or _ZERO)
        image = price.image_price(None, resolved.quality)
        return None if image is None else ("image", image)


def to_usd(micros: int) -> Decimal:
    """Micro-dollars as exact USD with six decimal places (``4750`` → ``Decimal("0.004750")``)."""
    whole, fraction = divmod(abs(micros), MICROS_PER_USD)
    return Decimal(f"{'-' if micros < 0 else ''}{whole}.{fraction:06d}")


def _quality(asked: str | None, resolved: _Resolved) -> str | None:
    """The quality asked for; else (None or "auto") the one a MODEL:QUALITY name carries."""
    return asked if asked and asked != "auto" else resolved.quality


def _token_micros(price: ModelPrice, uncached: int, cached: int, output: int) -> int | None:
    # USD per 1M tokens is micro-dollars per token. Prices have at most PRICE_PLACES decimals,
    # so scaled by 10**PRICE_PLACES they are integers and the sum is exact in integer arithmetic
    # (a tenth of the Decimal version's time); the only rounding, half up, is the last line's.
    unit_input, unit_cached, unit_output = price.scaled
    total = 0
    if uncached:
        if unit_input is None:
            return None
        total += unit_input * uncached
    if cached:
        if unit_cached is None:
            return None
        total += unit_cached * cached
    if output:
        if unit_output is None:
            return None
        total += unit_output * output
    return (total + _HALF_UNIT) // _UNIT


def _scaled(price: Decimal | None) -> int | None:
    if price is None:
        return None
    scaled = price.scaleb(PRICE_PLACES, _CTX)
    if scaled != scaled.to_integral_value():
        raise ValueError(f"a price has more than {PRICE_PLACES} decimal places: {price}")
    return int(scaled)


def _image_micros(
    price: ModelPrice, images: int, size: str | None, quality: str | None
) -> int | None:
    per_image = price.image_price(size, quality)
    if per_image is None:
        return None
    return int(_CTX.to_integral_value(per_image.fma(images * MICROS_PER_USD, _ZERO, _CTX)))


# --- reading and validating pricing files ----------------------------------------------------


def _exact_number(value: object) -> object:
    """YAML numbers to exact decimals: 0.15 is read as "0.15", never as the nearest binary float."""
    if isinstance(value, bool):
        raise ValueError("must be a number, not a boolean")
    if isinstance(value, float):
        return Decimal(repr(value))
    return value


def _image_key(value: str) -> str:
    if not _IMAGE_KEY.fullmatch(value):
        raise ValueError(
            f"{value!r} is not SIZE:QUALITY (like 1024x1024:standard or 1536x1024:high)"
        )
    return value


Price = Annotated[
    Decimal,
    BeforeValidator(_exact_number),
    Field(ge=0, allow_inf_nan=False, max_digits=24, decimal_places=PRICE_PLACES),
]
ImageKey = Annotated[str, AfterValidator(_image_key)]


class PriceEntry(BaseModel):
    """One model of a pricing file; every key optional (``null`` removes an inherited key)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input_per_1m: Price | None = None
    cached_input_per_1m: Price | None = None
    output_per_1m: Price | None = None
    images: dict[ImageKey, Price | None] | None = None
    default_image: ImageKey | None = None
    source: str | None = Field(None, min_length=1)
    as_of: date | None = None


class _Defaults(BaseModel):
    """A file's top-level ``source`` and ``as_of``, inherited by its models."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str | None = Field(None, min_length=1)
    as_of: date | None = None


_ENTRIES: Final = TypeAdapter(dict[Annotated[str, Field(min_length=1)], PriceEntry])


def _read_user_file(path: Path) -> tuple[str, str, date]:
    try:
        text = path.read_text(encoding="utf-8")
        modified = datetime.fromtimestamp(path.stat().st_mtime, UTC).date()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the pricing file ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: the pricing file is not UTF-8 text") from None
    return str(path), text, modified


def _merge_layer(
    entries: dict[str, dict[str, Any]], name: str, text: str, modified: date | None
) -> list[str]:
    """Apply one file's models to ``entries`` key by key; the models it touched."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{name}: not valid YAML: {exc}") from None
    if raw is None:
        return []
    if not isinstance(raw, dict):
        raise ConfigError(f"{name}: the top level must be a mapping of model names")
    top = {key: raw.pop(key) for key in _FILE_DEFAULTS if key in raw}
    problems: list[str] = []
    defaults = _Defaults()
    layer: dict[str, PriceEntry] = {}
    try:
        defaults = _Defaults.model_validate(top)
    except ValidationError as exc:
        problems.append(format_validation_error(exc))
    try:
        layer = _ENTRIES.validate_python(raw)
    except ValidationError as exc:
        problems.append(format_validation_error(exc))
    if problems:
        raise ConfigError(_prefixed(name, "\n".join(problems)))
    source = defaults.source or name
    as_of = defaults.as_of or modified
    for model, entry in layer.items():
        merged = entries.setdefault(model, {})
        for key in entry.model_fields_set - {"images", "source", "as_of"}:
            merged[key] = getattr(entry, key)
        if entry.images is not None:
            images = dict(merged.get("images") or {})
            for key, value in entry.images.items():
                if value is None:
                    images.pop(key, None)
                else:
                    images[key] = value
            merged["images"] = images
        elif "images" in entry.model_fields_set:
            merged["images"] = {}
        merged["source"] = entry.source or source
        merged["as_of"] = entry.as_of or as_of
        if merged["as_of"] is None:
            raise ConfigError(f"{name}: {model}.as_of: no date, and the file sets no as_of")
    return list(layer)


def _build(model: str, entry: dict[str, Any], origin: str) -> ModelPrice:
    images: dict[str, Decimal] = entry.get("images") or {}
    price = ModelPrice(
        model=model,
        input_per_1m=entry.get("input_per_1m"),
        cached_input_per_1m=entry.get("cached_input_per_1m"),
        output_per_1m=entry.get("output_per_1m"),
        images=images,
        source=entry["source"],
        as_of=entry["as_of"],
        default_image=entry.get("default_image") or DEFAULT_IMAGE,
    )
    if (price.input_per_1m, price.cached_input_per_1m, price.output_per_1m) == (None,) * 3 and (
        not images
    ):
        raise ConfigError(
            f"{origin}: {model}: no price left (give input_per_1m, output_per_1m or images)"
        )
    if images and price.default_image not in images:
        raise ConfigError(
            f"{origin}: {model}.default_image: {price.default_image} has no price in "
            f"{model}.images (price it, or set default_image to one that has)"
        )
    return price


def _prefixed(name: str, message: str) -> str:
    return "\n".join(f"{name}: {line}" for line in message.splitlines())
