"""The CloudEvents parser (``eddic.web.cloudevents``): the three content modes of the HTTP
binding, what eddic can store as an event's data, and a clear status for each malformed event."""

from __future__ import annotations

import base64
import dataclasses
import json
import pickle
from datetime import datetime, timezone
from typing import Any

import pytest

from eddic.errors import CloudEventError, EddicError
from eddic.runtime import events
from eddic.web import cloudevents
from eddic.web.cloudevents import BATCH, MAX_BODY, STRUCTURED, CloudEvent, mode, parse

ATTRS = {"specversion": "1.0", "id": "evt-1", "source": "/billing", "type": "payment.confirmed"}
HEADERS = {"ce-specversion": "1.0", "ce-id": "evt-1", "ce-source": "/billing", "ce-type": "t.x"}


def structured(**members: Any) -> bytes:
    return json.dumps({**ATTRS, **members}).encode()


def one(content_type: str | None, body: bytes, headers: dict[str, str] | None = None) -> CloudEvent:
    events = parse(content_type, headers or {}, body)
    assert len(events) == 1
    return events[0]


def refused(
    content_type: str | None, body: bytes, headers: dict[str, str] | None = None, **kw: Any
) -> CloudEventError:
    with pytest.raises(CloudEventError) as caught:
        parse(content_type, headers or {}, body, **kw)
    return caught.value


# -- structured mode ------------------------------------------------------------------------------


def test_a_structured_event_gives_its_attributes_data_and_extensions() -> None:
    event = one(
        STRUCTURED,
        structured(
            data={"amount": 5},
            subject="order-7",
            time="2018-04-05T17:31:00.25+02:00",
            instanceid="order-7",
            comexampleext="value",
            count=5,
            flag=True,
            unset=None,
        ),
    )

    assert (event.specversion, event.id, event.source, event.type) == (
        "1.0",
        "evt-1",
        "/billing",
        "payment.confirmed",
    )
    assert event.data == {"amount": 5}
    assert event.subject == "order-7"
    assert event.time == datetime(2018, 4, 5, 15, 31, 0, 250000, tzinfo=timezone.utc)
    assert event.time.tzinfo == timezone.utc  # in UTC, as eddic's times are
    assert event.instanceid == "order-7"
    # extensions are kept with their JSON types; instanceid is its own field; null is unset
    assert dict(event.extensions) == {"comexampleext": "value", "count": 5, "flag": True}


def test_structured_mode_is_told_by_the_content_type_whatever_its_case_and_parameters() -> None:
    event = one("Application/CloudEvents+JSON; charset=UTF-8", structured(data=[1, 2]))

    assert event.data == [1, 2]
    assert event.datacontenttype is None and event.instanceid is None and event.time is None


def test_structured_mode_ignores_ce_headers_the_body_is_the_event() -> None:
    event = one(STRUCTURED, structured(data=1), {"ce-id": "other", "ce-type": "other"})

    assert (event.id, event.type) == ("evt-1", "payment.confirmed")


def test_a_structured_event_without_data_has_none() -> None:
    assert one(STRUCTURED, structured()).data is None
    assert one(STRUCTURED, structured(data=None)).data is None


@pytest.mark.parametrize(
    ("content_type", "encoded", "expected"),
    [
        ("application/json", base64.b64encode(b'{"a": 1}'), {"a": 1}),
        (None, base64.b64encode(b"[1]"), [1]),  # no datacontenttype: application/json
        ("text/plain", base64.b64encode("caf\u00e9".encode()), "caf\u00e9"),
        ("application/json", b"", None),
    ],
)
def test_data_base64_is_decoded_as_its_datacontenttype_says(
    content_type: str | None, encoded: bytes, expected: Any
) -> None:
    members: dict[str, Any] = {"data_base64": encoded.decode()}
    if content_type:
        members["datacontenttype"] = content_type

    assert one(STRUCTURED, structured(**members)).data == expected


def test_json_data_of_a_json_content_type_is_taken_as_it_is_a_string_stays_a_string() -> None:
    event = one(STRUCTURED, structured(datacontenttype="application/vnd.x+json", data='{"a": 1}'))

    assert event.data == '{"a": 1}'
    assert event.datacontenttype == "application/vnd.x+json"


def test_text_data_must_be_a_string() -> None:
    assert one(STRUCTURED, structured(datacontenttype="text/csv", data="a,b")).data == "a,b"
    error = refused(STRUCTURED, structured(datacontenttype="text/plain", data={"a": 1}))

    assert error.status == 400 and "must be a string" in error.message


@pytest.mark.parametrize(
    "members",
    [
        {"datacontenttype": "application/xml", "data": "<a/>"},
        {"datacontenttype": "image/png", "data_base64": base64.b64encode(b"\x89PNG").decode()},
    ],
)
def test_data_of_a_media_type_eddic_cannot_store_is_415(members: dict[str, Any]) -> None:
    error = refused(STRUCTURED, structured(**members))

    assert error.status == 415
    assert "cannot be stored" in error.message


def test_data_and_data_base64_together_are_refused() -> None:
    error = refused(STRUCTURED, structured(data=1, data_base64="MQ=="))

    assert error.status == 400 and "not both" in error.message


@pytest.mark.parametrize("encoded", ["not base64!", "MQ", 5])
def test_data_base64_must_be_a_base64_string(encoded: Any) -> None:
    error = refused(STRUCTURED, structured(data_base64=encoded))

    assert error.status == 400 and "data_base64" in error.message


def test_a_structured_body_must_be_a_json_object() -> None:
    error = refused(STRUCTURED, b"[1, 2]")

    assert error.status == 400 and "JSON object" in error.message


# -- batch mode -----------------------------------------------------------------------------------


def test_a_batch_gives_every_event_in_order() -> None:
    body = json.dumps(
        [{**ATTRS, "id": "a", "data": 1}, {**ATTRS, "id": "b", "instanceid": "i-2"}]
    ).encode()

    events = parse(f"{BATCH}; charset=utf-8", {}, body)

    assert [(e.id, e.data, e.instanceid) for e in events] == [("a", 1, None), ("b", None, "i-2")]


def test_an_empty_batch_is_no_events() -> None:
    assert parse(BATCH, {}, b"[]") == []


def test_a_batch_is_refused_whole_naming_the_event_at_fault() -> None:
    body = json.dumps([ATTRS, {**ATTRS, "id": ""}]).encode()

    error = refused(BATCH, body)

    assert error.status == 400
    assert "event [1]" in error.message and "'id'" in error.message


@pytest.mark.parametrize("body", [b"{}", b"[1]", b'["x"]'])
def test_a_batch_is_an_array_of_objects(body: bytes) -> None:
    assert refused(BATCH, body).status == 400


# -- binary mode ----------------------------------------------------------------------------------


def test_a_binary_event_takes_its_attributes_from_ce_headers_and_its_data_from_the_body() -> None:
    headers = {
        **HEADERS,
        "ce-time": "2018-04-05T03:56:24Z",
        "ce-instanceid": "order-7",
        "ce-comexampleext": "5",
        "content-length": "8",
        "x-other": "ignored",
    }

    event = one("application/json; charset=utf-8", b'{"a": 1}', headers)

    assert (event.id, event.source, event.type) == ("evt-1", "/billing", "t.x")
    assert event.data == {"a": 1}
    assert event.datacontenttype == "application/json; charset=utf-8"
    assert event.time == datetime(2018, 4, 5, 3, 56, 24, tzinfo=timezone.utc)
    assert event.instanceid == "order-7"
    # a header carries a string: the extension stays one
    assert dict(event.extensions) == {"comexampleext": "5"}


def test_binary_header_names_are_case_insensitive() -> None:
    headers = {
        "CE-SpecVersion": "1.0",
        "Ce-Id": "evt-1",
        "ce-SOURCE": "/s",
        "cE-tYpE": "t.x",
        "Ce-InstanceId": "order-7",
    }

    event = one("application/json", b"1", headers)

    assert (event.id, event.type, event.instanceid, event.data) == ("evt-1", "t.x", "order-7", 1)


@pytest.mark.parametrize(
    ("raw", "decoded"),
    [
        ("Euro%20%E2%82%AC%20%F0%9F%98%80", "Euro \u20ac \U0001f600"),
        ("%e2%82%ac", "\u20ac"),  # lower-case hex is accepted
        ("%41%42c", "ABc"),  # needlessly encoded characters too
        ('"quoted \\"value\\" %25"', 'quoted "value" %'),  # quoted string, then percent-decoded
        ("  padded\t", "padded"),
    ],
)
def test_binary_header_values_are_percent_decoded(raw: str, decoded: str) -> None:
    event = one("application/json", b"", {**HEADERS, "ce-subject": raw})

    assert event.subject == decoded


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        ("%C0%A0", "not valid UTF-8"),  # an overlong encoding of a space
        ("%FF", "not valid UTF-8"),
        ("100%", "two hex digits"),  # a percent sign not followed by two hex digits
        ("%4", "two hex digits"),
        ("caf\u00e9", "printable ASCII"),  # a raw non-ASCII character: not percent-encoded
        ("\u20ac", "printable ASCII"),
        ("a\x01b", "printable ASCII"),
        ('"unterminated', "unterminated"),
        ("%00", "U+0000"),  # decodes to a control character
    ],
)
def test_a_header_value_that_does_not_decode_is_400(raw: str, why: str) -> None:
    error = refused("application/json", b"", {**HEADERS, "ce-subject": raw})

    assert error.status == 400
    assert "subject" in error.message and why in error.message


@pytest.mark.parametrize(
    ("content_type", "body", "expected"),
    [
        ("text/plain; charset=utf-8", "caf\u00e9".encode(), "caf\u00e9"),
        ("application/problem+json", b'"s"', "s"),  # a +json suffix is JSON
        (None, b'{"a": 1}', {"a": 1}),  # no Content-Type: application/json, as in JSON format
        ("image/png", b"", None),  # no body: no data, whatever its type
        ("application/json", b"", None),
    ],
)
def test_a_binary_body_is_data_as_its_content_type_says(
    content_type: str | None, body: bytes, expected: Any
) -> None:
    assert one(content_type, body, HEADERS).data == expected


def test_a_binary_text_body_must_be_utf8() -> None:
    error = refused("text/plain", "caf\u00e9".encode("latin-1"), HEADERS)

    assert error.status == 400 and "UTF-8" in error.message


def test_a_charset_other_than_utf8_is_415() -> None:
    assert refused("text/plain; charset=iso-8859-1", b"x", HEADERS).status == 415


@pytest.mark.parametrize("content_type", ["application/octet-stream", "application/xml"])
def test_a_binary_body_of_a_media_type_eddic_cannot_store_is_415(content_type: str) -> None:
    error = refused(content_type, b"<a/>", HEADERS)

    assert error.status == 415 and content_type in error.message


def test_a_binary_json_body_that_is_not_json_is_400() -> None:
    error = refused("application/json", b"{nope", HEADERS)

    assert error.status == 400 and "not valid JSON" in error.message


@pytest.mark.parametrize("header", ["ce-datacontenttype", "ce-data"])
def test_headers_that_collide_with_the_body_are_refused(header: str) -> None:
    error = refused("application/json", b"1", {**HEADERS, header: "application/json"})

    assert error.status == 400 and header in error.message


def test_a_header_given_twice_in_different_cases_is_refused() -> None:
    error = refused("application/json", b"1", {**HEADERS, "CE-ID": "evt-2"})

    assert error.status == 400 and "more than once" in error.message


def test_a_ce_header_whose_name_is_no_attribute_name_is_refused() -> None:
    error = refused("application/json", b"1", {**HEADERS, "ce-my_ext": "x"})

    assert error.status == 400 and "ce-my_ext" in error.message


# -- what is not a CloudEvent ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/json",  # JSON without ce- headers is no CloudEvent in either mode
        None,
    ],
)
def test_a_request_without_ce_headers_or_a_cloudevents_type_is_415(
    content_type: str | None,
) -> None:
    error = refused(content_type, structured(), {"content-type": content_type or ""})

    assert error.status == 415
    assert "ce-" in error.message and STRUCTURED in error.message


def test_another_cloudevents_format_is_415_even_with_ce_headers() -> None:
    error = refused("application/cloudevents+avro", b"\x00", HEADERS)

    assert error.status == 415 and "event format" in error.message


def test_mode_tells_the_three_modes_apart() -> None:
    assert mode(STRUCTURED, {}) == "structured"
    assert mode(BATCH.upper(), {}) == "batch"
    assert mode("text/plain", {"Ce-Id": "x"}) == "binary"
    with pytest.raises(CloudEventError):
        mode("text/plain", {"content-type": "text/plain"})


# -- malformed events -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"{", "not valid JSON"),
        (b'{"id": NaN}', "NaN"),
        (b'{"id": "a", "id": "b"}', "twice"),
        (b"\xff{}", "not UTF-8"),
        (b"[" * 100_000 + b"]" * 100_000, "not valid JSON"),
    ],
)
def test_a_body_that_is_not_json_is_400(body: bytes, why: str) -> None:
    error = refused(STRUCTURED, body)

    assert error.status == 400 and why in error.message


@pytest.mark.parametrize("name", ["specversion", "id", "source", "type"])
@pytest.mark.parametrize("how", ["missing", "empty", "null"])
def test_a_missing_or_empty_required_attribute_is_named(name: str, how: str) -> None:
    attrs: dict[str, Any] = dict(ATTRS)
    if how == "missing":
        del attrs[name]
    else:
        attrs[name] = "" if how == "empty" else None

    error = refused(STRUCTURED, json.dumps(attrs).encode())

    assert error.status == 400
    assert f"required attribute: {name!r}" in error.message


@pytest.mark.parametrize("name", ["specversion", "id", "source", "type"])
def test_a_missing_required_header_is_named(name: str) -> None:
    headers = {k: v for k, v in HEADERS.items() if k != f"ce-{name}"}

    error = refused("application/json", b"1", headers)

    assert error.status == 400 and repr(name) in error.message


def test_every_missing_attribute_is_named_at_once() -> None:
    error = refused(STRUCTURED, b'{"specversion": "1.0"}')

    assert "'id', 'source', 'type'" in error.message


@pytest.mark.parametrize("version", ["0.3", "1.1", "1"])
def test_a_specversion_other_than_1_0_is_refused(version: str) -> None:
    error = refused(STRUCTURED, structured(specversion=version))

    assert error.status == 400 and "specversion" in error.message and version in error.message


@pytest.mark.parametrize(
    ("members", "name"),
    [
        ({"id": 5}, "id"),
        ({"source": ["/a"]}, "source"),
        ({"specversion": 1.0}, "specversion"),
        ({"subject": {"a": 1}}, "subject"),
        ({"time": 1522949460}, "time"),
        ({"datacontenttype": True}, "datacontenttype"),
        ({"instanceid": 7}, "instanceid"),
        ({"comexampleext": 1.5}, "comexampleext"),
        ({"comexampleext": {"a": 1}}, "comexampleext"),
        ({"comexampleext": [1]}, "comexampleext"),
        ({"comexampleext": 2**31}, "comexampleext"),  # CloudEvents integers are 32 bits
    ],
)
def test_an_attribute_of_the_wrong_type_is_refused(members: dict[str, Any], name: str) -> None:
    error = refused(STRUCTURED, structured(**members))

    assert error.status == 400 and repr(name) in error.message


@pytest.mark.parametrize(
    "value", ["2018-04-05", "2018-04-05T17:31:00", "2018-02-30T00:00:00Z", "yesterday"]
)
def test_time_must_be_an_rfc3339_timestamp(value: str) -> None:
    error = refused(STRUCTURED, structured(time=value))

    assert error.status == 400 and "RFC 3339" in error.message


def test_instanceid_must_not_be_empty() -> None:
    assert refused(STRUCTURED, structured(instanceid="")).status == 400
    error = refused("application/json", b"1", {**HEADERS, "ce-instanceid": ""})

    assert error.status == 400 and "instanceid" in error.message


@pytest.mark.parametrize("name", ["camelCase", "with-dash", "under_score", ""])
def test_an_attribute_name_must_be_lowercase_letters_and_digits(name: str) -> None:
    error = refused(STRUCTURED, json.dumps({**ATTRS, name: "x"}).encode())

    assert error.status == 400 and "lowercase" in error.message


def test_a_control_character_in_an_attribute_is_refused() -> None:
    error = refused(STRUCTURED, structured(id="evt\n1"))

    assert error.status == 400 and "U+000A" in error.message


def test_data_eddic_cannot_write_as_utf8_is_refused() -> None:
    error = refused(STRUCTURED, b'{"specversion": "1.0", "id": "1", "source": "s", '
                    b'"type": "t", "data": "\\ud800"}')  # fmt: skip

    assert error.status == 400 and "surrogate" in error.message


def test_an_event_type_eddic_reserves_is_refused() -> None:
    error = refused(STRUCTURED, structured(type="eddic.child:abc"))

    assert error.status == 400 and "eddic." in error.message
    # the parser's prefix is the one App.send_event refuses
    assert cloudevents.RESERVED_PREFIX == events.RESERVED_PREFIX


def test_a_datacontenttype_that_is_no_media_type_is_refused() -> None:
    assert refused(STRUCTURED, structured(datacontenttype="json", data=1)).status == 400


def test_a_body_over_the_cap_is_413() -> None:
    padding = "x" * 100
    body = structured(data=padding)

    assert refused(STRUCTURED, body, max_body=len(body) - 1).status == 413
    assert one(STRUCTURED, body).data == padding  # under the default cap
    assert refused(STRUCTURED, b" " * (MAX_BODY + 1)).status == 413


# -- the values -----------------------------------------------------------------------------------


def test_an_event_and_its_extensions_cannot_be_changed() -> None:
    event = one(STRUCTURED, structured(ext="a"))

    with pytest.raises(dataclasses.FrozenInstanceError):
        event.id = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        event.extensions["ext"] = "b"  # type: ignore[index]


def test_the_error_is_an_eddic_error_with_its_status_and_pickles() -> None:
    error = CloudEventError(415, "no")

    assert isinstance(error, EddicError)
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.status, copy.message, str(copy)) == (415, "no", "no")
