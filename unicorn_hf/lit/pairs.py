"""Real image-text pairs that ship inside Debian and PyPI packages, so the encoder trains and tests offline.

- `emoji`: every single-code-point emoji of Noto Color Emoji (Debian `fonts-noto-color-emoji`, SIL OFL 1.1),
  rendered with Pillow, captioned with its Unicode character name ("an emoji of grinning face").
- `openclipart`: the Open Clip Art Library drawings (Debian `openclipart-svg`, public domain), rendered with
  `rsvg-convert` (Debian `librsvg2-bin`), captioned with the SVG's `<dc:title>` (or its file name when the title is
  shared by several files, e.g. a theme name) plus its category folders.
- `photographs`: scikit-image's real photographs with hand-written captions (`unicorn_hf.utils.assets`), an
  out-of-domain evaluation set only.

Captions must be unique within a set, so that retrieval has exactly one right answer: later duplicates are dropped
with a recorded reason (`unicorn_hf.utils.drops.DropLog`), as are emoji that render blank.
"""

from __future__ import annotations

import io
import json
import logging
import random
import re
import shutil
import subprocess
import unicodedata
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fontTools.ttLib import TTFont
from PIL import Image, ImageDraw, ImageFont

from unicorn_hf.utils.assets import SKIMAGE_PHOTOGRAPHS, load_photograph
from unicorn_hf.utils.drops import DropLog


logger = logging.getLogger(__name__)

NOTO_EMOJI_FONT = Path("/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf")
OPENCLIPART_ROOT = Path("/usr/share/openclipart/svg")
# Noto Color Emoji is a bitmap (CBDT) font: FreeType only renders it at its native strike size.
_NOTO_STRIKE_SIZE = 109
_RENDER_TIMEOUT_S = 60  # one SVG; a hung renderer must not stall the recipe
# Code points in the font that are not pictures on their own (joiners, modifiers, tags, flag letters...).
_NOT_A_PICTURE = ("TAG ", "CANCEL TAG", "REGIONAL INDICATOR", "EMOJI MODIFIER", "COMBINING", "ZERO WIDTH", "VARIATION")
_JUNK_TITLE = re.compile(r"@|https?:|www\.|\.com|\.svg|^\W*$")

SOURCES = ("emoji", "openclipart")


class UnreadableImageError(ValueError):
    """An image file of a pair could not be decoded or rendered."""


@dataclass(frozen=True)
class Pair:
    id: str  # stable: "<source>/<key>", e.g. "emoji/U+1F600"
    source: str
    caption: str
    load: Callable[[], Image.Image]  # -> RGB image; raises UnreadableImageError with the file name
    title: str = ""  # what is shown, without the caption's framing ("grinning face"); empty when unknown


def check_caption(caption: str, pair_id: str) -> str:
    """A caption stripped of surrounding blanks; an empty one is an error that names the pair."""
    if not isinstance(caption, str) or not caption.strip():
        raise ValueError(f"Pair {pair_id!r} has an empty caption; every image needs a non-empty text")
    return caption.strip()


def _require_file(path: Path, debian_package: str) -> None:
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: install the Debian package `{debian_package}` (apt-get install)")


def load_image_file(path: str | Path) -> Image.Image:
    """Read an image file as RGB, or raise `UnreadableImageError` naming the file."""
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except (OSError, ValueError) as error:  # PIL.UnidentifiedImageError is an OSError
        raise UnreadableImageError(f"Cannot read image {path}: {error}") from error


# --- emoji ---
def _render_emoji(character: str, font: ImageFont.FreeTypeFont) -> Image.Image:
    left, top, right, bottom = font.getbbox(character)
    canvas = Image.new("RGB", (max(right - left, 1), max(bottom - top, 1)), "white")
    ImageDraw.Draw(canvas).text((-left, -top), character, font=font, embedded_color=True)
    return canvas


def emoji_pairs(drops: DropLog) -> list[Pair]:
    """One pair per single-code-point emoji of Noto Color Emoji, captioned with its Unicode name."""
    _require_file(NOTO_EMOJI_FONT, "fonts-noto-color-emoji")
    font = ImageFont.truetype(str(NOTO_EMOJI_FONT), _NOTO_STRIKE_SIZE)
    code_points = sorted(TTFont(str(NOTO_EMOJI_FONT), lazy=True).getBestCmap())
    pairs = []
    for code_point in code_points:
        drops.rows_in += 1
        name = unicodedata.name(chr(code_point), "")
        if not name or code_point < 0x80 or name.startswith(_NOT_A_PICTURE):
            drops.drop("emoji_not_a_picture", f"U+{code_point:04X}")
            continue

        def load(character: str = chr(code_point)) -> Image.Image:
            return _render_emoji(character, font)

        pairs.append(Pair(f"emoji/U+{code_point:04X}", "emoji", f"an emoji of {name.lower()}", load, name.lower()))
    return pairs


# --- openclipart ---
def _svg_title(path: Path) -> str:
    head = path.read_text(errors="ignore")[:50_000]  # the RDF metadata sits near the top of the file
    match = re.search(r"<dc:title>(.*?)</dc:title>", head, re.S) or re.search(r"<title[^>]*>(.*?)</title>", head, re.S)
    return " ".join(match.group(1).split()) if match else ""


def _words(text: str) -> str:
    """`soft_blue_couch_01` -> `soft blue couch`: separators to spaces, trailing numbering dropped."""
    text = re.sub(r"[_\-]+", " ", text)
    text = re.sub(r"(\s*\d+)+\s*$", "", text)
    return " ".join(text.split()).lower()


def render_svg(path: str | Path, size: int) -> Image.Image:
    """Render an SVG to a `size` x `size` RGB image on white (aspect kept), or raise `UnreadableImageError`."""
    executable = shutil.which("rsvg-convert")
    if executable is None:
        raise FileNotFoundError("rsvg-convert not found: install the Debian package `librsvg2-bin` (apt-get install)")
    command = [executable, "-w", str(size), "-h", str(size), "--keep-aspect-ratio", "-b", "white", str(path)]
    try:
        result = subprocess.run(command, capture_output=True, timeout=_RENDER_TIMEOUT_S, check=True)
        with Image.open(io.BytesIO(result.stdout)) as image:
            return image.convert("RGB")
    except (subprocess.SubprocessError, OSError) as error:
        raise UnreadableImageError(f"Cannot render SVG {path}: {error}") from error


def openclipart_pairs(drops: DropLog, size: int) -> list[Pair]:
    """One pair per Open Clip Art drawing: "a clip-art drawing of <title> (<category>, <sub-category>)"."""
    _require_file(OPENCLIPART_ROOT, "openclipart-svg")
    files = sorted(OPENCLIPART_ROOT.rglob("*.svg"))
    titles = {path: _words(_svg_title(path)) for path in files}
    # A title shared by several files names a collection ("lemon svg theme"), not the drawing: use the file name.
    shared = {title for title, count in Counter(titles.values()).items() if count > 1}
    pairs = []
    for path in files:
        drops.rows_in += 1
        relative = path.relative_to(OPENCLIPART_ROOT)
        title = titles[path]
        if not title or title in shared or _JUNK_TITLE.search(title):
            title = _words(path.stem)
        if not title or _JUNK_TITLE.search(title):
            drops.drop("openclipart_no_usable_title", str(relative))
            continue
        category = ", ".join(_words(part) for part in relative.parent.parts)
        caption = f"a clip-art drawing of {title} ({category})" if category else f"a clip-art drawing of {title}"

        def load(svg: Path = path) -> Image.Image:
            return render_svg(svg, size)

        pairs.append(Pair(f"openclipart/{relative.with_suffix('')}", "openclipart", caption, load, title))
    return pairs


# --- photographs ---
def photograph_pairs() -> list[Pair]:
    """scikit-image's real photographs with their hand-written captions (`unicorn_hf.utils.assets`)."""
    return [
        Pair(f"photographs/{photo.name}", "photographs", photo.caption, lambda name=photo.name: load_photograph(name))
        for photo in SKIMAGE_PHOTOGRAPHS
    ]


# --- helpers ---
def unique_captions(pairs: list[Pair], drops: DropLog) -> list[Pair]:
    """Keep the first pair of each caption (retrieval needs one right answer per query)."""
    seen: set[str] = set()
    kept = []
    for pair in pairs:
        caption = check_caption(pair.caption, pair.id).lower()
        if caption in seen:
            drops.drop("duplicate_caption", pair.id)
            continue
        seen.add(caption)
        kept.append(pair)
    return kept


def collect_pairs(
    sources: list[str], max_pairs_per_source: int | None, seed: int, image_size: int
) -> tuple[list[Pair], DropLog]:
    """All pairs of the requested sources, de-duplicated, each source subsampled with `seed` if capped."""
    unknown = sorted(set(sources) - set(SOURCES))
    if unknown:
        raise ValueError(f"Unknown pair source(s) {unknown}; known: {list(SOURCES)}")
    drops = DropLog(stage="encoder_pairs")
    rng = random.Random(seed)
    pairs: list[Pair] = []
    for source in sources:
        found = emoji_pairs(drops) if source == "emoji" else openclipart_pairs(drops, image_size)
        found = unique_captions(found, drops)
        if max_pairs_per_source is not None and len(found) > max_pairs_per_source:
            drops.drop("over_max_pairs_per_source", count=len(found) - max_pairs_per_source)
            found = sorted(rng.sample(found, max_pairs_per_source), key=lambda pair: pair.id)
        logger.info("Source %s: %d pairs", source, len(found))
        pairs.extend(found)
    pairs = unique_captions(pairs, drops)  # across sources too
    return pairs, drops


def restrict_pairs(pairs: list[Pair], ids_file: str | Path, drops: DropLog) -> list[Pair]:
    """The pairs whose id is listed in `ids_file` (a JSON list of ids); the others are counted as dropped.

    Raises `ValueError` naming the file when it lists ids that no source produced (a stale or foreign split).
    """
    wanted = json.loads(Path(ids_file).read_text())
    if not isinstance(wanted, list) or not all(isinstance(pair_id, str) for pair_id in wanted):
        raise ValueError(f"{ids_file}: expected a JSON list of pair ids such as 'emoji/U+1F600'")
    wanted_set = set(wanted)
    kept = [pair for pair in pairs if pair.id in wanted_set]
    missing = wanted_set - {pair.id for pair in kept}
    if missing:
        raise ValueError(f"{ids_file}: {len(missing)} id(s) match no pair of the sources, e.g. {sorted(missing)[:3]}")
    drops.drop("not_in_pair_ids_file", count=len(pairs) - len(kept))
    return kept


def split_pairs(pairs: list[Pair], eval_fraction: float, seed: int) -> tuple[list[Pair], list[Pair]]:
    """(train, held-out) split by a seeded shuffle; the held-out pairs are never trained on."""
    if not 0 < eval_fraction < 1:
        raise ValueError(f"eval_fraction must be in (0, 1), got {eval_fraction}")
    order = list(range(len(pairs)))
    random.Random(seed).shuffle(order)
    n_eval = max(1, round(eval_fraction * len(pairs)))
    held_out = set(order[:n_eval])
    train = [pair for index, pair in enumerate(pairs) if index not in held_out]
    evaluation = [pair for index, pair in enumerate(pairs) if index in held_out]
    return train, evaluation
