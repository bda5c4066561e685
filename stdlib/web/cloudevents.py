"""CloudEvents 1.0 over HTTP, read into :class:`CloudEvent` values: no I/O, no web framework.

:func:`parse` takes what an HTTP request carries (its ``Content-Type``, its headers, its body)
and returns the events in it, or raises :class:`~eddic.errors.CloudEventError` with the HTTP
status to answer. The three content modes of the CloudEvents HTTP protocol binding:

- structured, ``Content-Type: application/cloudevents+json``: the body is one event in the JSON
  event format (attributes as members, the payload in ``data`` or ``data_base64``);
- batched, ``application/cloudevents-batch+json``: the body is a JSON array of such events;
- binary, any other ``Content-Type`` with ``ce-`` headers: each attribute is a ``ce-NAME``
  header (names case-insensitive, values percent-encoded UTF-8, double-quoted strings allowed),
  ``Content-Type`` is the ``datacontenttype`` and the body is the data.

A request with none of those (a form post, ``text/plain`` without ``ce-`` headers) is refused
with 415: it is no CloudEvent, and it is also all a browser can send cross-site without asking
first. Other event formats (``application/cloudevents+avro``, ...) are 415 too.

eddic stores an event's data as JSON, so the data's media type decides what it becomes: a JSON
type (``*/json``, ``*/*+json``, and none given, which the JSON format reads as
``application/json``) is decoded; ``text/*`` becomes the text (UTF-8 only); any other type is
refused with 415. No data (an empty body, no ``data`` member) is ``None``.

Validation follows the spec where it says MUST, and fails with 400 naming the attribute:
``specversion``, ``id``, ``source`` and ``type`` present and non-empty, ``specversion`` ``"1.0"``,
attribute names of lowercase letters and digits, values of a CloudEvents type (string, boolean,
32-bit integer; ``null`` means unset), no control characters in strings, ``time`` an RFC 3339
timestamp, ``data`` and ``data_base64`` not both. The ``instanceid`` extension, when present, is a
non-empty string naming the one instance the event is for. Event types beginning ``eddic.`` are
eddic's own and refused here, so that a batch is refused whole rather than sent in part.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from types import MappingProxyType
from typing import Any, Literal

from ..errors import CloudEventError

#: The largest body :func:`parse` accepts (and the ingress endpoint reads), in bytes.
MAX_BODY = 1 << 20

SPECVERSION = "1.0"
STRUCTURED = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"
#: The extension attribute that targets one instance (without it, an event is broadcast).
INSTANCE_ID = "instanceid"
#: Event types ``App.send_event`` refuses (eddic's own deliveries): the runtime's
#: ``RESERVED_PREFIX``, which the viewer may not import (tests pin that the two agree).
RESERVED_PREFIX = "eddic."

Mode = Literal["structured", "batch", "binary"]

_REQUIRED = ("specversion", "id", "source", "type")
_OPTIONAL_STRINGS = ("datacontenttype", "dataschema", "subject")
_NAME = re.compile(r"[a-z0-9]+")
_TOKEN = r"[!#$%&'*+.^_`|~0-9a-z-]+"
_MEDIA = re.compile(rf"{_TOKEN}/{_TOKEN}")
_UTF8 = {"utf-8", "utf8", "us-ascii"}
_INT32 = (-(2**31), 2**31 - 1)
# What CloudEvents forbids in a String: control characters, surrogates, noncharacters.
_FORBIDDEN = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\ufdd0-\ufdef]")
_TIMESTAMP = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:[Zz]|([+-])(\d{2}):(\d{2}))"
)
# A header value as HTTP carries it: printable US-ASCII, spaces and tabs.
_HEADER_VALUE = re.compile(r"[\t\x20-\x7e]*")
_PERCENT = re.compile(r"%([0-9A-Fa-f]{2})")


@dataclass(frozen=True, kw_only=True)
class CloudEvent:
    """One CloudEvent, validated. ``time`` is an aware UTC datetime; ``data`` is JSON-compatible
    (``None`` when the event has none); ``instanceid`` is the extension that targets one
    instance; ``extensions`` holds every other extension attribute (in binary mode their
    values are strings, as the headers carried them)."""

    specversion: str
    id: str
    source: str
    type: str
    data: Any = None
    datacontenttype: str | None = None
    dataschema: str | None = None
    subject: str | None = None
    time: datetime | None = None
    instanceid: str | None = None
    extensions: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))


def mode(content_type: str | None, headers: Mapping[str, str]) -> Mode:
    """The content mode of a request: ``"structured"``, ``"batch"`` or ``"binary"``; a
    ``CloudEventError`` (415) for a request that carries no CloudEvent eddic reads."""
    essence = _essence(content_type)
    if essence == BATCH:
        return "batch"
    if essence == STRUCTURED:
        return "structured"
    if essence is not None and essence.startswith("application/cloudevents"):
        raise CloudEventError(
            415,
            f"unsupported event format {essence!r}: eddic reads {STRUCTURED!r} and {BATCH!r}",
        )
    if any(name.lower().startswith("ce-") for name in headers):
        return "binary"
    raise CloudEventError(
        415,
        f"not a CloudEvent: Content-Type {content_type!r} and no ce- headers (send "
        f"{STRUCTURED!r}, {BATCH!r}, or the data with ce-specversion, ce-id, ce-source and "
        "ce-type headers)",
    )


def parse(
    content_type: str | None,
    headers: Mapping[str, str],
    body: bytes,
    *,
    max_body: int = MAX_BODY,
) -> list[CloudEvent]:
    """The events an HTTP request carries: one in structured and binary mode, any number
    (none included) in batch mode. ``CloudEventError`` for anything else (see the module)."""
    if len(body) > max_body:
        raise CloudEventError(413, f"the body is {len(body)} bytes, over the {max_body} allowed")
    kind = mode(content_type, headers)
    if kind == "binary":
        return [_binary(content_type, headers, body)]
    _check_charset(content_type, "the body")
    document = _load_json(body, "the body")
    if kind == "structured":
        if not isinstance(document, dict):
            raise CloudEventError(
                400, f"a structured CloudEvent is a JSON object, got {_kind(document)}"
            )
        return [_structured(document, "")]
    if not isinstance(document, list):
        raise CloudEventError(400, f"a CloudEvents batch is a JSON array, got {_kind(document)}")
    events = []
    for index, item in enumerate(document):
        where = f"event [{index}] of the batch: "
        if not isinstance(item, dict):
            raise CloudEventError(400, f"{where}a CloudEvent is a JSON object, got {_kind(item)}")
        events.append(_structured(item, where))
    return events


# -- the modes ------------------------------------------------------------------------------------


def _structured(document: dict[str, Any], where: str) -> CloudEvent:
    attributes = {k: v for k, v in document.items() if k not in ("data", "data_base64")}
    for name in attributes:
        _check_name(name, where, "attribute")
    data_given = document.get("data") is not None
    base64_given = document.get("data_base64") is not None
    if data_given and base64_given:
        raise CloudEventError(400, f"{where}an event has 'data' or 'data_base64', not both")

    def data_of(content_type: str | None) -> Any:
        if base64_given:
            encoded = document["data_base64"]
            if not isinstance(encoded, str):
                raise CloudEventError(
                    400, f"{where}'data_base64' must be a string, got {_kind(encoded)}"
                )
            try:
                raw = base64.b64decode(encoded, validate=True)
            except (binascii.Error, ValueError):
                raise CloudEventError(400, f"{where}'data_base64' is not valid base64") from None
            return _data_from_bytes(raw, content_type, where)
        if data_given:
            return _data_from_json(document["data"], content_type, where)
        return None

    return _event(attributes, data_of, where)


def _binary(content_type: str | None, headers: Mapping[str, str], body: bytes) -> CloudEvent:
    attributes: dict[str, Any] = {}
    for header, raw in headers.items():
        lowered = header.lower()
        if not lowered.startswith("ce-"):
            continue
        name = lowered[3:]
        _check_name(name, "", "header", header)
        if name in ("data", "datacontenttype"):
            raise CloudEventError(
                400,
                f"header {header!r} is not allowed: in binary mode the body is the data and "
                "Content-Type its datacontenttype",
            )
        if name in attributes:
            raise CloudEventError(400, f"header ce-{name} is given more than once")
        attributes[name] = _header_value(header, raw)
    if content_type is not None and content_type.strip():
        attributes["datacontenttype"] = content_type.strip()
    return _event(attributes, lambda media: _data_from_bytes(body, media, ""), "")


_STRINGS = (*_REQUIRED, *_OPTIONAL_STRINGS, "time", INSTANCE_ID)


def _event(
    attributes: Mapping[str, Any], data_of: Callable[[str | None], Any], where: str
) -> CloudEvent:
    """The event of validated attribute names: their values checked, the extensions apart, and
    then its data, read by ``data_of`` as its ``datacontenttype`` says."""
    wrong = [
        f"{name!r} must be a string, got {_kind(attributes[name])}"
        for name in _STRINGS
        if attributes.get(name) is not None and not isinstance(attributes[name], str)
    ]
    if wrong:
        raise CloudEventError(400, f"{where}attribute {'; '.join(wrong)}")
    missing = [name for name in _REQUIRED if not attributes.get(name)]
    if missing:
        names = ", ".join(repr(name) for name in missing)
        plural = "s" if len(missing) > 1 else ""
        raise CloudEventError(400, f"{where}missing or empty required attribute{plural}: {names}")
    if attributes["specversion"] != SPECVERSION:
        raise CloudEventError(
            400,
            f"{where}specversion {_short(attributes['specversion'])} is not supported: "
            f"eddic reads CloudEvents {SPECVERSION}",
        )
    for name in (*_OPTIONAL_STRINGS, INSTANCE_ID):
        if attributes.get(name) == "":
            raise CloudEventError(400, f"{where}attribute {name!r} must not be empty")
    strings: dict[str, str] = {}
    extensions: dict[str, Any] = {}
    for name, value in attributes.items():
        if value is None:
            continue  # null is the same as unset
        if name in _STRINGS:
            strings[name] = _text(value, name, where)
        else:
            extensions[name] = _extension(value, name, where)
    event_type = strings["type"]
    if event_type.startswith(RESERVED_PREFIX):
        raise CloudEventError(
            400,
            f"{where}event type {_short(event_type)}: types beginning {RESERVED_PREFIX!r} are "
            "eddic's own",
        )
    content_type = strings.get("datacontenttype")
    if content_type is not None:
        _media_of(content_type, f"{where}datacontenttype")
    time = _timestamp(strings["time"], where) if "time" in strings else None
    return CloudEvent(
        specversion=strings["specversion"],
        id=strings["id"],
        source=strings["source"],
        type=event_type,
        data=data_of(content_type),
        datacontenttype=content_type,
        dataschema=strings.get("dataschema"),
        subject=strings.get("subject"),
        time=time,
        instanceid=strings.get(INSTANCE_ID),
        extensions=MappingProxyType(extensions),
    )


# -- data -----------------------------------------------------------------------------------------


def _data_from_bytes(raw: bytes, content_type: str | None, where: str) -> Any:
    """Data carried as bytes (a binary-mode body, ``data_base64``), as eddic stores it."""
    if not raw:
        return None
    _check_charset(content_type, f"{where}the data")
    media = _essence(content_type)
    if media is None or _is_json(media):
        return _storable(_load_json(raw, f"{where}the data"), where)
    if media.startswith("text/"):
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CloudEventError(
                400, f"{where}the {media} data is not UTF-8 (byte {exc.start})"
            ) from None
    raise _unstorable(media, where)


def _data_from_json(value: Any, content_type: str | None, where: str) -> Any:
    """The ``data`` member of a JSON event, as eddic stores it."""
    media = _essence(content_type)
    if media is None or _is_json(media):
        return _storable(value, where)
    if media.startswith("text/"):
        if not isinstance(value, str):
            raise CloudEventError(
                400, f"{where}'data' of media type {media!r} must be a string, got {_kind(value)}"
            )
        return _storable(value, where)
    raise _unstorable(media, where)


def _unstorable(media: str, where: str) -> CloudEventError:
    return CloudEventError(
        415,
        f"{where}data of media type {media!r} cannot be stored: eddic's event data is JSON "
        "(send a JSON media type, or text/*)",
    )


def _storable(value: Any, where: str) -> Any:
    """``value``, once sure it can be written as UTF-8 JSON (a ``\\ud800`` escape cannot)."""
    try:
        json.dumps(value, ensure_ascii=False, allow_nan=False).encode("utf-8")
    except UnicodeEncodeError:
        raise CloudEventError(
            400, f"{where}the data holds a lone surrogate (\\ud800-\\udfff), not valid Unicode"
        ) from None
    except (ValueError, RecursionError) as exc:
        raise CloudEventError(400, f"{where}the data cannot be stored as JSON: {exc}") from None
    return value


def _load_json(raw: bytes, what: str) -> Any:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CloudEventError(400, f"{what} is not UTF-8 (byte {exc.start})") from None
    try:
        return json.loads(text, object_pairs_hook=_unique_keys, parse_constant=_no_constant)
    except ValueError as exc:  # a JSONDecodeError, a duplicate key, NaN or Infinity
        raise CloudEventError(400, f"{what} is not valid JSON: {exc}") from None
    except RecursionError:
        raise CloudEventError(400, f"{what} is not valid JSON: nested too deeply") from None


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"the key {_short(key)} appears twice in one object")
        out[key] = value
    return out


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


# -- attributes -----------------------------------------------------------------------------------


def _check_name(name: str, where: str, what: str, header: str | None = None) -> None:
    if not _NAME.fullmatch(name):
        shown = repr(header) if header is not None else _short(name)
        raise CloudEventError(
            400,
            f"{where}{what} {shown}: a CloudEvents attribute name is lowercase ASCII letters "
            "and digits",
        )


def _text(value: str, name: str, where: str) -> str:
    bad = _FORBIDDEN.search(value)
    position = (
        bad.start()
        if bad
        else next((i for i, c in enumerate(value) if (ord(c) & 0xFFFE) == 0xFFFE), None)
    )
    if position is not None:
        raise CloudEventError(
            400,
            f"{where}attribute {name!r} holds U+{ord(value[position]):04X} at {position}: "
            "control characters, surrogates and noncharacters are not allowed",
        )
    return value


def _extension(value: Any, name: str, where: str) -> Any:
    if isinstance(value, str):
        return _text(value, name, where)
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        if not _INT32[0] <= value <= _INT32[1]:
            raise CloudEventError(
                400, f"{where}attribute {name!r}: a CloudEvents integer is 32 bits, got {value}"
            )
        return value
    raise CloudEventError(
        400,
        f"{where}attribute {name!r} must be a string, a boolean or an integer, got {_kind(value)}",
    )


def _timestamp(value: str, where: str) -> datetime:
    match = _TIMESTAMP.fullmatch(value)
    problem = f"{where}attribute 'time' {_short(value)} is not an RFC 3339 timestamp"
    if match is None:
        raise CloudEventError(400, problem)
    year, month, day, hour, minute, second, fraction, sign, off_h, off_m = match.groups()
    try:
        offset = timedelta(0)
        if sign is not None:
            offset = timedelta(hours=int(off_h), minutes=int(off_m))
            offset = -offset if sign == "-" else offset
        micro = int((fraction or "").ljust(6, "0")[:6])
        when = datetime(
            int(year),
            int(month),
            int(day),
            int(hour),
            int(minute),
            int(second),
            micro,
            tzinfo=timezone(offset),
        )
        return when.astimezone(timezone.utc)
    except (ValueError, OverflowError) as exc:
        raise CloudEventError(400, f"{problem}: {exc}") from None


# -- headers and media types ----------------------------------------------------------------------


def _header_value(header: str, raw: str) -> str:
    """A binary-mode header value, decoded: double-quoted strings unescaped, then one round of
    percent-decoding, the bytes read as UTF-8 (an invalid or overlong sequence is refused)."""
    value = raw.strip(" \t")
    if not _HEADER_VALUE.fullmatch(value):
        raise CloudEventError(
            400,
            f"header {header!r} holds a character outside printable ASCII: percent-encode its "
            "UTF-8 bytes",
        )
    unquoted = _unquote(value, header)
    if len(_PERCENT.findall(unquoted)) != unquoted.count("%"):
        raise CloudEventError(
            400, f"header {header!r} holds a '%' that is not followed by two hex digits"
        )
    raw_bytes = _PERCENT.sub(lambda m: chr(int(m.group(1), 16)), unquoted).encode("latin-1")
    try:
        return raw_bytes.decode("utf-8")
    except UnicodeDecodeError:
        raise CloudEventError(
            400, f"header {header!r} percent-decodes to bytes that are not valid UTF-8"
        ) from None


def _unquote(value: str, header: str) -> str:
    """``value`` with its double-quoted strings (RFC 7230 §3.2.6) unescaped."""
    if '"' not in value:
        return value
    out: list[str] = []
    quoted = False
    chars = iter(value)
    for char in chars:
        if char == '"':
            quoted = not quoted
        elif char == "\\" and quoted:
            escaped = next(chars, None)
            if escaped is None:
                break
            out.append(escaped)
        else:
            out.append(char)
    if quoted:
        raise CloudEventError(400, f"header {header!r} has an unterminated quoted string")
    return "".join(out)


def _essence(content_type: str | None) -> str | None:
    """The media type without its parameters, lowercased (``None`` when none is given)."""
    if content_type is None or not content_type.strip():
        return None
    return content_type.split(";", 1)[0].strip().lower()


def _media_of(content_type: str, what: str) -> str:
    essence = _essence(content_type)
    if essence is None or not _MEDIA.fullmatch(essence):
        raise CloudEventError(400, f"{what} {_short(content_type)} is not a media type")
    return essence


def _check_charset(content_type: str | None, what: str) -> None:
    """JSON and text are read as UTF-8: a declared charset must be that (or ASCII, its subset)."""
    if content_type is None:
        return
    for parameter in content_type.split(";")[1:]:
        key, _, value = parameter.partition("=")
        if key.strip().lower() != "charset":
            continue
        charset = value.strip().strip('"').lower()
        media = _essence(content_type) or ""
        if charset not in _UTF8 and (_is_json(media) or media.startswith("text/")):
            raise CloudEventError(415, f"{what} is in charset {charset!r}: eddic reads UTF-8")


def _is_json(media: str) -> bool:
    subtype = media.partition("/")[2]
    return subtype == "json" or subtype.endswith("+json")


def _as_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _kind(value: Any) -> str:
    """``value``'s JSON type, for messages (the value itself may be large)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


__all__ = [
    "BATCH",
    "INSTANCE_ID",
    "MAX_BODY",
    "RESERVED_PREFIX",
    "SPECVERSION",
    "STRUCTURED",
    "CloudEvent",
    "CloudEventError",
    "Mode",
    "mode",
    "parse",
]
