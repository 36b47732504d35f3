"""Bad input, tried systematically: every field of every model, every magic option, every way in.

The table is derived from the field definitions (`rp_notebook.models`), so a new field, a new range
or a new magic option is covered without touching this file:

- per field, by kind: out of range, wrong type, empty, huge (1 MB of text), not a choice, not a
  flag, malformed base64 and data: URLs, a URL without a host, over the size limit, missing;
- per media field, what its content check refuses: text as a voice clip, a 50-megapixel picture,
  a decompression bomb (a few bytes whose header claims 30000x30000);
- through the Python API, also files: a missing file, a text file as an image or a clip, a
  50-megapixel file and PIL image;
- through the magic, every option string of `%runpod tts` / `%runpod layers` (aliases included)
  with each bad value that can be typed, plus a missing value, a bad --endpoint and --batch.

Each must raise an error naming the field (`InputError.field`, and the message starts with it)
and saying what is allowed, and must do so before any request: the client points at the local
endpoint and the endpoint's own count of `run` requests must not move. The positive control
(a valid input moves that count by one) proves the count would see a request. An unknown
endpoint, which only the server can know, must come back as a 404 error naming it.
"""

from __future__ import annotations

import base64
import io
import shlex
import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import soundfile
from helpers import wav_bytes
from IPython.core.error import UsageError
from PIL import Image

import rp_notebook
from rp_notebook._api import LOCAL_ENDPOINTS
from rp_notebook.errors import InputError, NotFoundError, RunpodError
from rp_notebook.magics._runpod import _model_parser
from rp_notebook.models import MODELS, Field, ModelSpec
from rp_notebook.models._media import audio_format, image_size
from rp_notebook.models.layers import MAX_IMAGE_PIXELS
from rp_notebook.models.tts import check_voice_header

pytestmark = pytest.mark.timeout(300)

#: Any message longer than this is not "clear" (a 1 MB value must not be quoted back whole).
MAX_MESSAGE_CHARS = 600
ONE_MB = 1_000_000
MISSING: Any = object()  # the field is left out of the input


@dataclass(frozen=True)
class Made:
    """A value built once per module by the `made` fixture (big pictures, files on disk)."""

    name: str


@dataclass(frozen=True)
class Bad:
    model: str
    field: str  # the field the error must name
    case: str
    value: Any
    says: tuple[str, ...]  # every one of these must be in the message

    @property
    def id(self) -> str:
        return f"{self.model}.{self.field}-{self.case}"


# -- the values that must be refused, by kind of field -----------------------------------------------


def number_cases(f: Field) -> Iterator[tuple[str, Any, tuple[str, ...]]]:
    allowed = f.allowed()
    step = f.step or 1
    if f.minimum is not None:
        yield "below-minimum", f.minimum - step, ("is out of range", allowed)
    if f.maximum is not None:
        yield "above-maximum", f.maximum + step, ("is out of range", allowed)
    yield "not-a-number", "abc", (allowed, "got 'abc'")
    yield "empty", "", (allowed, "got ''")
    yield "bool", True, (allowed, "got True")
    yield "list", [1], (allowed, "got list")
    yield "huge-number", 10**400, (allowed,)
    yield "huge-text", "9" * ONE_MB, (allowed,)
    yield "nan", "nan", (allowed,)
    yield "infinity", float("inf"), (allowed,)
    if f.type is int:
        yield "fraction", 2.5, (allowed, "got 2.5")


def choice_cases(f: Field) -> Iterator[tuple[str, Any, tuple[str, ...]]]:
    allowed = f.allowed()
    choices = f.choices or ()
    if f.type is str:
        yield "not-a-choice", "not-a-choice", (allowed, "got 'not-a-choice'")
        yield "padded", f" {choices[0]} ", (allowed,)
        yield "wrong-case", str(choices[0]).upper(), (allowed,)
    else:
        yield "not-a-choice", max(choices) + 1, (allowed, f"got {max(choices) + 1}")
        yield "not-a-number", "abc", (allowed,)
        if len(choices) > 1:
            yield "between-choices", (choices[0] + choices[1]) // 2, (allowed,)
    yield "empty", "", (allowed,)
    yield "list", [choices[0]], (allowed, "got list")
    yield "huge-text", "x" * ONE_MB, (allowed,)


def flag_cases(f: Field) -> Iterator[tuple[str, Any, tuple[str, ...]]]:
    allowed = f.allowed()
    yield "not-a-flag", "maybe", (allowed, "got 'maybe'")
    yield "typo", "ture", (allowed, "got 'ture'")
    yield "empty", "", (allowed,)
    yield "number", 2, (allowed, "got 2")
    yield "list", [True], (allowed,)
    yield "huge-text", "x" * ONE_MB, (allowed,)


def text_cases(f: Field) -> Iterator[tuple[str, Any, tuple[str, ...]]]:
    allowed = f.allowed()
    yield "not-text", 42, (allowed, "got int")
    yield "list", ["a"], (allowed, "got list")
    yield "bytes", b"abc", (allowed, "got bytes")
    if f.max_length is not None:
        yield "over-limit", "x" * (f.max_length + 1), (f"is {f.max_length + 1:,} characters", allowed)
        yield "huge-text", "x" * ONE_MB, ("is 1,000,000 characters", allowed)
    if f.required:
        yield "empty", "", ("is empty", allowed)
        yield "blank", " \n\t ", ("is empty", allowed)
        yield "missing", MISSING, ("is required", allowed)


def media_cases(f: Field) -> Iterator[tuple[str, Any, tuple[str, ...]]]:
    allowed = f.allowed()
    yield "not-base64", "not base64!", ("not valid base64", allowed)
    yield "bad-padding", "abc", ("not valid base64",)
    yield "data-url-without-data", "data:image/png;base64", ("data: URL with no data",)
    yield "data-url-not-base64", "data:text/plain,hello", ("not base64",)
    yield "data-url-bad-base64", "data:image/png;base64,@@@@", ("not valid base64",)
    yield "empty", "", ("is empty",)
    yield "not-text", 42, (allowed, "got int")
    yield "url-without-host", "https:///picture", ("URL without a host",)
    yield "huge-garbage", "!" * ONE_MB, ("not valid base64",)
    if f.max_length is not None:
        yield "over-limit", "A" * (f.max_length + 4), ("MB of base64", f"{f.max_length / 1e6:.0f} MB")
    if f.required:
        yield "missing", MISSING, ("is required", allowed)


CASES: dict[str, Callable[[Field], Iterator[tuple[str, Any, tuple[str, ...]]]]] = {
    "number": number_cases,
    "choice": choice_cases,
    "flag": flag_cases,
    "text": text_cases,
    "media": media_cases,
}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def header_only_png(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height, then a few bytes: a decompression bomb's shape."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def header_only_tiff(width: int, height: int) -> bytes:
    tags = [
        (256, 4, width),
        (257, 4, height),
        (258, 3, 8),
        (259, 3, 1),
        (262, 3, 1),
        (273, 4, 8),
        (277, 3, 1),
    ]
    entries = b"".join(struct.pack("<HHII", tag, kind, 1, value) for tag, kind, value in tags)
    return b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", len(tags)) + entries + b"\0\0\0\0"


#: A text file given where a clip is expected.
TEXT_FILE = b"name,size\nlayer,4\n" * 8
#: What each media field's content check refuses, model-level (base64, as the job API carries it).
CONTENT_CASES: dict[tuple[str, str], list[tuple[str, Any, tuple[str, ...]]]] = {
    ("tts", "voice"): [
        ("text-as-audio", b64(TEXT_FILE), ("not an audio file", "WAV, FLAC, OGG or MP3")),
        ("picture-as-audio", Made("png-small-b64"), ("not an audio file",)),
    ],
    ("layers", "image"): [
        (
            "50-megapixels",
            Made("png-50mp-b64"),
            ("8660x5774 (50.0 megapixels)", "the limit is 16.8 megapixels"),
        ),
        ("50-megapixel-jpeg", Made("jpeg-50mp-b64"), ("50.0 megapixels",)),
        ("png-bomb", b64(header_only_png(30_000, 30_000)), ("30000x30000 (900.0 megapixels)",)),
        ("tiff-bomb", b64(header_only_tiff(20_000, 20_000)), ("20000x20000 (400.0 megapixels)",)),
    ],
}


def model_rows() -> list[Bad]:
    rows = []
    for spec in MODELS.values():
        for f in spec.fields:
            for case, value, says in CASES[f.kind](f):
                rows.append(Bad(spec.name, f.name, case, value, says))
            for case, value, says in CONTENT_CASES.get((spec.name, f.name), []):
                rows.append(Bad(spec.name, f.name, case, value, says))
        rows.append(Bad(spec.name, "no_such_field", "unknown-field", 1, (f"is not an input of {spec.name}",)))
    return rows


#: Only the client sees these: files, bytes and PIL images become base64 in `prepare_input`.
API_ROWS = [
    Bad("layers", "image", "missing-file", Path("no/such/picture.png"), ("no such file",)),
    Bad("layers", "image", "text-file", Made("text-file"), ("is not a picture",)),
    Bad("layers", "image", "text-bytes", TEXT_FILE, ("is not a picture",)),
    Bad("layers", "image", "text-as-base64", b64(TEXT_FILE), ("is not a picture",)),
    Bad("layers", "image", "50-megapixel-file", Made("png-50mp-file"), ("50.0 megapixels",)),
    Bad("layers", "image", "50-megapixel-pil-image", Made("pil-50mp"), ("50.0 megapixels",)),
    Bad("layers", "image", "folder", Made("folder"), ("no such file",)),
    Bad("layers", "image", "not-a-picture-object", object(), ("got object",)),
    Bad("tts", "voice", "missing-file", "no/such/voice.wav", ("no such file",)),
    Bad("tts", "voice", "text-file", Made("text-file"), ("not an audio file",)),
    Bad("tts", "voice", "picture-file", Made("png-small-file"), ("not an audio file",)),
]

MODEL_ROWS = model_rows()


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("bad-input")
    big = Image.new("L", (8660, 5774))  # 50.0 megapixels, a few tens of kB as PNG
    png, jpeg, small = io.BytesIO(), io.BytesIO(), io.BytesIO()
    big.save(png, format="PNG")
    big.save(jpeg, format="JPEG", quality=30)
    Image.new("RGB", (64, 48), "teal").save(small, format="PNG")
    (folder / "big.png").write_bytes(png.getvalue())
    (folder / "small.png").write_bytes(small.getvalue())
    (folder / "notes.txt").write_bytes(TEXT_FILE)
    (folder / "a-folder.png").mkdir()
    return {
        "png-50mp-b64": b64(png.getvalue()),
        "jpeg-50mp-b64": b64(jpeg.getvalue()),
        "png-50mp-file": folder / "big.png",
        "pil-50mp": big,
        "png-small-b64": b64(small.getvalue()),
        "png-small-file": folder / "small.png",
        "good-image": small.getvalue(),
        "good-image-file": folder / "small.png",
        "text-file": folder / "notes.txt",
        "folder": folder / "a-folder.png",
    }


def resolve(value: Any, made: dict[str, Any]) -> Any:
    return made[value.name] if isinstance(value, Made) else value


def valid_input(model: str, made: dict[str, Any], *, job_api: bool = False) -> dict[str, Any]:
    """A valid input; with `job_api`, as the job API carries it (the picture as base64)."""
    if model == "tts":
        return {"text": "Hello."}
    return {"image": b64(made["good-image"]) if job_api else made["good-image"]}


def with_bad(row: Bad, made: dict[str, Any], *, job_api: bool = False) -> dict[str, Any]:
    values = valid_input(row.model, made, job_api=job_api)
    if row.value is MISSING:
        values.pop(row.field, None)
    else:
        values[row.field] = resolve(row.value, made)
    return values


def check_message(error: InputError, row: Bad) -> None:
    message = str(error)
    assert error.field == row.field, message[:300]
    assert message.startswith(f"{row.field}: ")
    for words in row.says:
        assert words in message, f"{words!r} not in {message[:300]!r}"
    assert len(message) <= MAX_MESSAGE_CHARS, f"{len(message)} characters"


# -- model level: the worker runs exactly this -------------------------------------------------------


@pytest.mark.parametrize("row", MODEL_ROWS, ids=lambda row: row.id)
def test_the_model_refuses_a_bad_value_naming_the_field_and_what_it_allows(row, made):
    with pytest.raises(InputError) as caught:
        MODELS[row.model].validate(with_bad(row, made, job_api=True))
    check_message(caught.value, row)


def test_every_field_and_every_media_check_has_rows_in_the_table():
    for spec in MODELS.values():
        for f in spec.fields:
            assert sum(row.model == spec.name and row.field == f.name for row in MODEL_ROWS) >= 5, f.name
            if f.check is not None:
                assert (spec.name, f.name) in CONTENT_CASES, f"{f.name} has a content check but no cases"


# -- the Python API: refused before any request ------------------------------------------------------


def run_requests(server) -> int:
    """The local endpoint's own count of job submissions (`run` and `runsync`), let in or refused."""
    total = 0
    for endpoint_id in LOCAL_ENDPOINTS.values():
        stats = server.rate_limit_stats(endpoint_id)
        for operation in ("run", "runsync"):
            total += stats.accepted.get(operation, 0) + stats.refused.get(operation, 0)
    return total


@pytest.mark.parametrize("row", MODEL_ROWS + API_ROWS, ids=lambda row: row.id)
def test_the_api_refuses_a_bad_value_before_any_request(row, made, use_local):
    before = run_requests(use_local)
    with pytest.raises(InputError) as caught:
        rp_notebook.submit(row.model, **with_bad(row, made))
    check_message(caught.value, row)
    assert run_requests(use_local) == before


@pytest.mark.timeout(180)
@pytest.mark.parametrize("model", list(MODELS))
def test_a_valid_input_does_reach_the_endpoint_so_the_count_would_see_a_request(model, made, use_local):
    before = run_requests(use_local)
    job = rp_notebook.submit(
        model, **valid_input(model, made), **({"layers": 2} if model == "layers" else {})
    )
    assert run_requests(use_local) == before + 1
    job.result(timeout=150)  # leave nothing running for the next test


@pytest.mark.timeout(120)
@pytest.mark.parametrize("model", list(MODELS))
def test_an_unknown_endpoint_is_a_404_error_naming_it(model, made, use_local):
    with pytest.raises(NotFoundError) as caught:
        rp_notebook.submit(model, endpoint="no-such-endpoint", **valid_input(model, made))
    assert caught.value.status_code == 404
    assert "no-such-endpoint" in str(caught.value) and "404" in str(caught.value)


@pytest.mark.parametrize("endpoint", ["", "a/b", "../local-tts"])
def test_the_api_refuses_an_empty_or_malformed_endpoint_id_before_any_request(endpoint, use_local):
    before = run_requests(use_local)
    try:
        job = rp_notebook.tts("Hello.", endpoint=endpoint)
    except InputError as error:
        assert error.field == "endpoint" and run_requests(use_local) == before
        return
    except RunpodError:
        pass
    else:
        job.cancel()
    pytest.fail(f"endpoint {endpoint!r} was not refused before a request")


def test_a_short_base64_clip_is_not_taken_for_a_file_name():
    from rp_notebook._api import prepare_input

    clip = b64(wav_bytes(0.1))  # 1.6 kB of WAV: 2,148 characters of base64, no dot
    assert 255 < len(clip) < 4096
    assert prepare_input(MODELS["tts"], {"text": "Hello.", "voice": clip})["voice"] == clip


def test_a_bomb_in_a_format_the_header_check_does_not_read_is_refused_naming_the_image(use_local):
    bomb = b"P5\n20000 20000\n255\n" + b"\0" * 64  # a PGM header claiming 400 megapixels
    with pytest.raises(InputError, match=r"^image: "):
        rp_notebook.layers(bomb)


# -- the magics: every option string of both models ----------------------------------------------------


def option_strings(spec: ModelSpec) -> list[tuple[str, str | None, bool]]:
    """(option string, field name or None, whether it needs a value) for every option of the
    model's magic, aliases included."""
    options = []
    for action in _model_parser(spec)._actions:
        if action.nargs == 0:  # -h/--help: takes no value, prints the help (test_magic_newcomer.py)
            continue
        for option in action.option_strings:
            options.append((option, action.dest if action.dest in spec else None, action.nargs != "?"))
    return options


@dataclass(frozen=True)
class Typed:
    """A magic line that must be refused: `name` is the field an InputError names, or the option
    a UsageError names; `{...}` in the line are files made by the `made` fixture."""

    id: str
    model: str
    line: str
    name: str
    says: tuple[str, ...]
    error: type[Exception] = InputError


def magic_rows() -> list[Typed]:
    rows = []
    for spec in MODELS.values():
        model, base = spec.name, "'Hello.'" if spec.name == "tts" else "{good_image_file}"
        for option, field_name, needs_value in option_strings(spec):
            if needs_value:
                missing = ("expected one argument",)
                rows.append(
                    Typed(
                        f"{model}{option}-missing-value",
                        model,
                        f"{base} {option}",
                        option,
                        missing,
                        UsageError,
                    )
                )
            for row in MODEL_ROWS if field_name else ():
                text = typed(row)
                if row.model == model and row.field == field_name and text is not None:
                    line = f"{base} {option} {shlex.quote(text)}"
                    rows.append(Typed(f"{model}{option}-{row.case}", model, line, row.field, typed_says(row)))
        for row in MODEL_ROWS:
            text = typed(row)
            if row.model == model and row.field == spec.positional and text is not None:
                rows.append(
                    Typed(f"{model}-{row.case}", model, shlex.quote(text), row.field, typed_says(row))
                )
        rows += [
            Typed(f"{model}--endpoint-empty", model, f"{base} --endpoint ''", "endpoint", ("empty",)),
            Typed(
                f"{model}--endpoint-a-path", model, f"{base} --endpoint a/b", "endpoint", ("'a/b' is not",)
            ),
            Typed(
                f"{model}--batch-unknown",
                model,
                f"{base} --batch words",
                "--batch",
                ("invalid choice",),
                UsageError,
            ),
        ]
    return [
        *rows,
        Typed("layers-missing-file", "layers", "missing-picture.png", "image", ("no such file",)),
        Typed("layers-text-file", "layers", "{text_file}", "image", ("is not a picture",)),
        Typed("layers-50-megapixel-file", "layers", "{big_file}", "image", ("50.0 megapixels",)),
        Typed("layers-variable-50-megapixels", "layers", "big_picture", "image", ("50.0 megapixels",)),
        Typed("layers-undefined-variable", "layers", "no_such_variable", "image", ("not valid base64",)),
        Typed("tts-voice-text-file", "tts", "'Hello.' --voice {text_file}", "voice", ("not an audio file",)),
        Typed("tts-missing-text", "tts", "", "text", ("is required",)),
    ]


def typed(row: Bad) -> str | None:
    """The row's value as one would type it on a magic's line, or None when it cannot be typed.

    Numbers become their text for number, choice and flag fields (for a text field, 42 typed is
    valid text). Only short text: 1 MB goes in a cell body, tried apart below.
    """
    kind = MODELS[row.model][row.field].kind if row.field in MODELS[row.model] else None
    value = row.value
    if (
        kind in ("number", "choice", "flag")
        and isinstance(value, int | float)
        and not isinstance(value, bool)
    ):
        value = str(value)
    return value if isinstance(value, str) and len(value) < 10_000 else None


def typed_says(row: Bad) -> tuple[str, ...]:
    # A typed value arrives as text, so "got 2.5" reads "got '2.5'"; the rest of the message is the same.
    return tuple(words for words in row.says if not words.startswith("got "))


MAGIC_ROWS = magic_rows()


@pytest.fixture
def shell(ip, made):
    ip.user_ns["big_picture"] = made["pil-50mp"]
    ip.user_ns.pop("no_such_variable", None)
    yield ip
    ip.user_ns.pop("big_picture", None)


@pytest.mark.parametrize("row", MAGIC_ROWS, ids=lambda row: row.id)
def test_the_magic_refuses_a_bad_option_before_any_request(shell, made, use_local, row):
    files = {"good_image_file": made["good-image-file"], "text_file": made["text-file"]}
    line = row.line.format(**files, big_file=made["png-50mp-file"])
    before = run_requests(use_local)
    with pytest.raises(row.error) as caught:
        shell.run_line_magic("runpod", f"{row.model} {line}")
    message = str(caught.value)
    if row.error is InputError:
        assert caught.value.field == row.name and message.startswith(f"{row.name}: "), message[:300]
    else:
        assert row.name in message
    for words in row.says:
        assert words in message, f"{words!r} not in {message[:300]!r}"
    assert len(message) <= MAX_MESSAGE_CHARS
    assert run_requests(use_local) == before


def test_every_option_of_every_model_magic_has_rows_in_the_table():
    for spec in MODELS.values():
        for option, field_name, _needs_value in option_strings(spec):
            ids = [row.id for row in MAGIC_ROWS if row.id.startswith(f"{spec.name}{option}-")]
            # Free text has little to get wrong on one line: no value, or too much of it.
            least = 1 if field_name is None else 2 if spec[field_name].kind == "text" else 5
            assert len(ids) >= least, (option, ids)


@pytest.mark.parametrize(
    ("header", "body", "field", "words"),
    [
        ("tts", "x" * ONE_MB, "text", "is 1,000,000 characters"),
        ("tts --batch", "Fine.\n\n" + "x" * ONE_MB, "inputs", "input 1: text: is 1,000,000 characters"),
        ("tts --exaggeration 3", "Fine.", "exaggeration", "3 is out of range"),
        ("tts", " \n\n ", "text", "is required"),  # (IPython itself refuses a body of "")
    ],
    ids=["1-MB-body", "batch-with-a-1-MB-paragraph", "bad-option-with-a-body", "blank-body"],
)
def test_the_cell_magic_refuses_a_bad_body_before_any_request(shell, use_local, header, body, field, words):
    before = run_requests(use_local)
    with pytest.raises(InputError) as caught:
        shell.run_cell_magic("runpod", header, body)
    assert caught.value.field == field and words in str(caught.value)
    assert len(str(caught.value)) <= MAX_MESSAGE_CHARS
    assert run_requests(use_local) == before


@pytest.mark.timeout(120)
def test_an_unknown_endpoint_from_the_magic_is_a_404_error_naming_it(shell, use_local):
    with pytest.raises(NotFoundError, match=r"no-such-endpoint.*404"):
        shell.run_line_magic("runpod", "tts 'Hello.' --endpoint no-such-endpoint")


# -- the header readers behind the content checks ------------------------------------------------------


def encoded(image: Image.Image, fmt: str, **options: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def exif_heavy_jpeg() -> bytes:
    exif = Image.Exif()
    exif[0x010E] = "a long description " * 500  # a big APP1 segment before the frame header
    return encoded(Image.new("RGB", (123, 45)), "JPEG", exif=exif.tobytes(), icc_profile=b"\0" * 3000)


@pytest.mark.parametrize(
    "data",
    [
        encoded(Image.new("RGBA", (123, 45)), "PNG"),
        encoded(Image.new("RGB", (123, 45)), "JPEG"),
        encoded(Image.new("L", (123, 45)), "JPEG", progressive=True),
        exif_heavy_jpeg(),
        encoded(Image.new("RGB", (123, 45)), "GIF"),
        encoded(Image.new("RGB", (123, 45)), "WEBP", lossless=False),
        encoded(Image.new("RGBA", (123, 45)), "WEBP", lossless=False),
        encoded(Image.new("RGBA", (123, 45)), "WEBP", lossless=True),
        encoded(Image.new("RGB", (123, 45)), "BMP"),
        encoded(Image.new("RGB", (123, 45)), "TIFF"),
        encoded(Image.new("RGB", (123, 45)), "TIFF", compression="tiff_lzw"),
    ],
    ids=[
        "png",
        "jpeg",
        "jpeg-progressive",
        "jpeg-big-exif",
        "gif",
        "webp",
        "webp-alpha",
        "webp-lossless",
        "bmp",
        "tiff",
        "tiff-lzw",
    ],
)
def test_the_header_reader_gives_the_size_pillow_gives(data):
    assert image_size(data) == Image.open(io.BytesIO(data)).size == (123, 45)


def test_the_header_reader_leaves_other_formats_and_truncated_headers_to_pillow():
    assert image_size(TEXT_FILE) is None
    assert image_size(encoded(Image.new("RGB", (9, 9)), "PPM")) is None
    assert image_size(b"\xff\xd8\xff\xe0") is None  # a JPEG cut before its frame header
    assert image_size(b"\xff\xd8" + b"\xff" * 100_000) is None  # only fill bytes: gives up, quickly
    assert MAX_IMAGE_PIXELS < 8660 * 5774


def sound(fmt: str, subtype: str | None = None) -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, [0.0] * 8000, 8000, format=fmt, subtype=subtype)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("data", "name"),
    [
        (wav_bytes(), "wav"),
        (sound("FLAC"), "flac"),
        (sound("OGG", "VORBIS"), "ogg"),
        (sound("MP3", "MPEG_LAYER_III"), "mp3"),
        (sound("AIFF"), "aiff"),
        (b"RIFF", "wav"),  # too short to tell: the decoder decides
    ],
)
def test_the_audio_sniffer_knows_what_the_worker_decodes(data, name):
    assert audio_format(data) == name
    check_voice_header(data)


@pytest.mark.parametrize(
    "data", [TEXT_FILE, encoded(Image.new("RGB", (8, 8)), "PNG"), b"RIFF\0\0\0\0AVI LIST", b"\0" * 64]
)
def test_the_audio_sniffer_refuses_what_is_not_audio(data):
    assert audio_format(data) is None
    with pytest.raises(InputError, match=r"^voice: is not an audio file"):
        check_voice_header(data)
