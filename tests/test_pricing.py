"""The pricing table and cost arithmetic: exact to the micro-dollar against hand-computed values.

Token prices are USD per 1M tokens, so ``tokens * price`` is already micro-dollars; image prices
are USD per image, so ``images * price * 1_000_000`` is. Each expectation below is worked out by
hand from the prices shipped in ``sidecar/pricing.yaml``.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from sidecar.config import ConfigError
from sidecar.exchange import Usage
from sidecar.pricing import Pricing, to_usd


@pytest.fixture(scope="module")
def pricing() -> Pricing:
    return Pricing.load(None)


def test_shipped_table_has_every_current_model_with_source_and_date(pricing: Pricing) -> None:
    """Every model the issue names is priced, each with the page it came from and a date."""
    expected = [
        "gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano", "o1", "o1-mini",
        "o3", "o3-mini", "o4-mini", "gpt-4", "gpt-4-turbo", "gpt-3.5-turbo", "gpt-5",
        "gpt-5-mini", "gpt-5-nano", "text-embedding-3-small", "text-embedding-3-large",
        "text-embedding-ada-002", "dall-e-2", "dall-e-3", "gpt-image-1",
    ]  # fmt: skip
    for model in expected:
        price = pricing.models[model]
        assert price.source.startswith("https://"), model
        assert isinstance(price.as_of, date), model
    gpt_4o = pricing.models["gpt-4o"]
    assert (gpt_4o.input_per_1m, gpt_4o.cached_input_per_1m, gpt_4o.output_per_1m) == (
        Decimal("2.50"),
        Decimal("1.25"),
        Decimal("10.00"),
    )
    assert pricing.models["gpt-4"].cached_input_per_1m is None
    assert pricing.models["text-embedding-3-small"].output_per_1m is None


def test_chat_with_cached_input(pricing: Pricing) -> None:
    """Uncached input at the input price, cached at the cached price, output at the output price.

    gpt-4o, 1200 input of which 1000 cached, 300 output:
    200 * 2.50 + 1000 * 1.25 + 300 * 10.00 = 500 + 1250 + 3000 = 4750 micro-dollars.
    """
    usage = Usage(input_tokens=1200, cached_input_tokens=1000, output_tokens=300)
    assert pricing.cost_micros("gpt-4o", usage) == 4750
    assert to_usd(4750) == Decimal("0.004750")


def test_cached_tokens_without_a_cached_price_cost_the_input_price(pricing: Pricing) -> None:
    """gpt-4 has no cached price: 1000 input (800 cached) * 30 + 100 output * 60 = 36000."""
    usage = Usage(input_tokens=1000, cached_input_tokens=800, output_tokens=100)
    assert pricing.cost_micros("gpt-4", usage) == 36000


def test_snapshots_resolve_to_their_family_and_exact_names_win(pricing: Pricing) -> None:
    """A dated snapshot is priced as the longest family name followed by "-"; exact names win.

    gpt-4o-mini-2024-07-18 (not gpt-4o): 1000 * 0.15 + 500 * 0.60 = 150 + 300 = 450.
    gpt-4o-2024-08-06 is gpt-4o: 1000 * 2.50 = 2500.
    gpt-4o-2024-05-13 has its own (launch) price: 1000 * 5.00 + 1000 * 15.00 = 20000.
    """
    assert pricing.cost_micros("gpt-4o-mini-2024-07-18", Usage(1000, 500)) == 450
    assert pricing.cost_micros("gpt-4o-2024-08-06", Usage(1000)) == 2500
    assert pricing.cost_micros("gpt-4o-2024-05-13", Usage(1000, 1000)) == 20000
    price = pricing.unit_prices("gpt-4o-mini-2024-07-18")
    assert price is not None
    assert price.model == "gpt-4o-mini"


def test_provider_prefix_is_dropped_when_the_prefixed_name_is_unpriced(pricing: Pricing) -> None:
    """openai/gpt-4o-mini-2024-07-18 is priced as gpt-4o-mini: 1000 * 0.15 + 500 * 0.60 = 450."""
    assert pricing.cost_micros("openai/gpt-4o-mini-2024-07-18", Usage(1000, 500)) == 450


def test_embeddings(pricing: Pricing) -> None:
    """Input only: 12345 * 0.02 = 246.9 -> 247; 1000 * 0.13 = 130; 1000 * 0.10 = 100."""
    assert pricing.cost_micros("text-embedding-3-small", Usage(input_tokens=12345)) == 247
    assert pricing.cost_micros("text-embedding-3-large", Usage(input_tokens=1000)) == 130
    assert pricing.cost_micros("text-embedding-ada-002", Usage(input_tokens=1000)) == 100


def test_dall_e_3_by_size_and_quality(pricing: Pricing) -> None:
    """dall-e-3 hd 1792x1024 is 0.120 per image: 2 images = 240000 micro-dollars.

    Without size or quality (or "auto"): 1024x1024 standard, 0.040 = 40000. A fallback name
    "dall-e-3:hd" carries the quality: 1024x1024 hd, 0.080 = 80000.
    """
    two = Usage(images=2)
    one = Usage(images=1)
    assert pricing.cost_micros("dall-e-3", two, size="1792x1024", quality="hd") == 240_000
    assert pricing.cost_micros("dall-e-3", one) == 40_000
    assert pricing.cost_micros("dall-e-3", one, size="auto", quality="auto") == 40_000
    assert pricing.cost_micros("dall-e-3:hd", one) == 80_000
    assert pricing.cost_micros("dall-e-2", one, size="256x256") == 16_000


def test_gpt_image_1_by_size_and_quality(pricing: Pricing) -> None:
    """gpt-image-1 high: 1024x1536 is 0.25 per image = 250000; 3 at 1024x1024 (0.167) = 501000.

    Its default (no quality, or "auto") is medium at 1024x1024: 0.042 = 42000.
    """
    assert pricing.cost_micros(
        "gpt-image-1", Usage(images=1), size="1024x1536", quality="high"
    ) == (250_000)
    assert pricing.cost_micros("gpt-image-1", Usage(images=3), quality="high") == 501_000
    assert pricing.cost_micros("gpt-image-1", Usage(images=1), quality="auto") == 42_000


def test_unpriced_is_none(pricing: Pricing) -> None:
    """An unknown model, or a size/quality the model does not offer, has no cost (None)."""
    assert pricing.cost_micros("llama3", Usage(100, 100)) is None
    assert pricing.cost_micros("llama3:70b", Usage(100, 100)) is None
    assert pricing.cost_micros("gpt-4o:hd", Usage(100, 100)) is None
    assert pricing.cost_micros("dall-e-3", Usage(images=1), size="512x512") is None
    assert pricing.cost_micros("dall-e-2", Usage(images=1), quality="hd") is None
    assert pricing.cost_micros("gpt-4o", Usage(images=1)) is None
    assert pricing.unit_prices("llama3") is None
    assert pricing.estimate_micros("llama3", 100, 100) is None


def test_rounds_half_up_once_per_call(pricing: Pricing) -> None:
    """The exact sum is rounded half-up once; parts are never rounded on their own.

    gpt-4o-mini, 4 input of which 1 cached: 3 * 0.15 + 1 * 0.075 = 0.45 + 0.075 = 0.525 -> 1
    (rounding each part first would give 0 + 0 = 0).
    gpt-4.1-nano, 25 input: 25 * 0.10 = 2.5 -> 3 (half-even would give 2).
    gpt-5-nano, 10 input: 10 * 0.05 = 0.5 -> 1.
    """
    assert pricing.cost_micros("gpt-4o-mini", Usage(input_tokens=4, cached_input_tokens=1)) == 1
    assert pricing.cost_micros("gpt-4.1-nano", Usage(input_tokens=25)) == 3
    assert pricing.cost_micros("gpt-5-nano", Usage(input_tokens=10)) == 1


def test_estimate_reserves_prompt_plus_max_output(pricing: Pricing) -> None:
    """gpt-4o, prompt 1000, max output 500: 1000 * 2.50 + 500 * 10.00 = 7500.

    Images: 2 dall-e-3 hd 1024x1792 at 0.120 = 240000.
    """
    assert pricing.estimate_micros("gpt-4o", 1000, 500) == 7500
    assert (
        pricing.estimate_micros("dall-e-3", 0, 0, images=2, size="1024x1792", quality="hd")
        == 240_000
    )


def test_more_expensive(pricing: Pricing) -> None:
    """b above a by input + output per 1M (gpt-4o-mini 0.75, gpt-4 90); images by image price."""
    assert pricing.more_expensive("gpt-4o-mini", "gpt-4") is True
    assert pricing.more_expensive("gpt-4", "gpt-4o-mini") is False
    assert pricing.more_expensive("gpt-4o", "llama3") is None
    assert pricing.more_expensive("dall-e-3:standard", "dall-e-3:hd") is True
    assert pricing.more_expensive("dall-e-3:hd", "dall-e-2:standard") is False
    assert pricing.more_expensive("gpt-4o", "dall-e-3") is None


def test_to_usd_is_exact_with_six_places() -> None:
    """Micro-dollars as USD, always six decimal places."""
    assert str(to_usd(0)) == "0.000000"
    assert str(to_usd(1)) == "0.000001"
    assert str(to_usd(1_234_567)) == "1.234567"
    assert str(to_usd(-4750)) == "-0.004750"


def test_pricing_file_overrides_one_key_and_adds_a_model(tmp_path: Path) -> None:
    """The user's file overrides the shipped table key by key and adds models.

    gpt-4o input 3.00 (cached and output stay 1.25 and 10.00), same usage as above:
    200 * 3.00 + 1000 * 1.25 + 300 * 10.00 = 600 + 1250 + 3000 = 4850.
    my-finetune: 1000 * 3.00 + 100 * 12.00 = 3000 + 1200 = 4200.
    """
    path = tmp_path / "prices.yaml"
    path.write_text(
        "gpt-4o: {input_per_1m: 3.00}\nmy-finetune: {input_per_1m: 3.00, output_per_1m: 12.00}\n"
    )
    pricing = Pricing.load(str(path))
    usage = Usage(input_tokens=1200, cached_input_tokens=1000, output_tokens=300)
    assert pricing.cost_micros("gpt-4o", usage) == 4850
    assert pricing.cost_micros("my-finetune", Usage(1000, 100)) == 4200
    assert pricing.models["gpt-4o"].source == str(path)
    assert pricing.models["gpt-4o-mini"].source.startswith("https://")


def test_pricing_file_null_removes_a_key(tmp_path: Path) -> None:
    """cached_input_per_1m: null makes cached tokens cost the input price.

    gpt-4o: 1200 * 2.50 + 300 * 10.00 = 3000 + 3000 = 6000.
    """
    path = tmp_path / "prices.yaml"
    path.write_text(
        "source: our contract\nas_of: 2025-09-01\ngpt-4o: {cached_input_per_1m: null}\n"
    )
    pricing = Pricing.load(str(path))
    usage = Usage(input_tokens=1200, cached_input_tokens=1000, output_tokens=300)
    assert pricing.cost_micros("gpt-4o", usage) == 6000
    price = pricing.models["gpt-4o"]
    assert (price.source, price.as_of) == ("our contract", date(2025, 9, 1))


@pytest.mark.parametrize(
    ("content", "key_path"),
    [
        ("gpt-4o: {input_per_1m: -1}\n", "gpt-4o.input_per_1m: Input should be greater than"),
        ("gpt-4o: {inptu_per_1m: 1}\n", "gpt-4o.inptu_per_1m: Extra inputs are not permitted"),
        ('dall-e-3: {images: {"big:hd": 0.1}}\n', "dall-e-3.images.big:hd"),
        ("gpt-4o: {output_per_1m: yes}\n", "gpt-4o.output_per_1m"),
        ("as_of: someday\n", "as_of: Input should be a valid date"),
        ("- gpt-4o\n", "the top level must be a mapping"),
        ('mine: {images: {"512x512:hd": 0.1}}\n', "mine.default_image: 1024x1024:standard"),
        ("mine: {source: x}\n", "mine: no price left"),
    ],
)
def test_bad_pricing_file_names_the_file_and_key(
    tmp_path: Path, content: str, key_path: str
) -> None:
    """A bad pricing file is a ConfigError naming the file and the offending key path."""
    path = tmp_path / "prices.yaml"
    path.write_text(content)
    with pytest.raises(ConfigError) as caught:
        Pricing.load(str(path))
    assert f"{path}: " in str(caught.value)
    assert key_path in str(caught.value)


def test_missing_pricing_file(tmp_path: Path) -> None:
    """A pricing file that cannot be read is a ConfigError naming it."""
    path = tmp_path / "absent.yaml"
    with pytest.raises(ConfigError, match="cannot read the pricing file"):
        Pricing.load(str(path))
