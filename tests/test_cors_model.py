"""Bucket CORS without servers: rule matching (registry.access.cors), the CORSConfiguration
document and the Access-Control-* headers (s3facade.cors_xml), row by row against what S3
answers."""

from __future__ import annotations

import json

import pytest

from s3facade.cors_xml import (
    NO_ORIGIN,
    NOT_ENABLED,
    VARY,
    actual_request_headers,
    parse_cors_configuration,
    preflight_headers,
    render_cors_configuration,
    requested_headers,
)
from s3facade.errors import ERROR_TABLE, S3Error
from s3facade.registry.access.cors import (
    CorsConfiguration,
    CorsRule,
    InvalidCorsConfiguration,
    wildcard_match,
)

NOT_ALLOWED = ERROR_TABLE["AccessForbidden"][1]
SITE = "https://www.example.com"


def rule(
    origins: tuple[str, ...] = (SITE,),
    methods: tuple[str, ...] = ("GET",),
    headers: tuple[str, ...] = (),
    expose_headers: tuple[str, ...] = (),
    max_age_seconds: int | None = None,
    id: str | None = None,
) -> CorsRule:
    return CorsRule(methods, origins, headers, expose_headers, max_age_seconds, id)


# --- matching ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "value", "expected"),
    [
        ("https://a.com", "https://a.com", True),
        ("https://a.com", "https://a.com/", False),  # a serialized origin has no slash
        ("https://a.com", "http://a.com", False),
        ("https://a.com", "https://a.com:443", False),
        ("https://a.com", "HTTPS://A.COM", False),
        ("https://*.example.com", "https://www.example.com", True),
        ("https://*.example.com", "https://a.b.example.com", True),
        ("https://*.example.com", "https://example.com", False),
        ("https://*.example.com", "http://www.example.com", False),
        ("https://*.example.com", "https://www.example.com.evil.net", False),
        ("*", "https://anything.net:8080", True),
        ("*", "null", True),
        ("*", "", True),
        ("start*end", "startend", True),  # '*' matches the empty run
        ("start*end", "start12end", True),
        ("start*end", "0start12end", False),  # anchored at both ends
        ("start*end", "startend!", False),
        ("ab*ba", "aba", False),  # prefix and suffix may not overlap
        ("prefix*", "prefix", True),
        ("*suffix", "foo.suffix", True),
        ("*suffix", "foo.suffix.get", False),
    ],
)
def test_wildcard_match(pattern: str, value: str, expected: bool) -> None:
    assert wildcard_match(pattern, value) is expected


@pytest.mark.parametrize(
    ("the_rule", "origin", "method", "request_headers", "expected"),
    [
        (rule(), SITE, "GET", (), True),
        (rule(), "https://other.example.com", "GET", (), False),
        (rule(origins=("https://*.example.com",)), "https://cdn.example.com", "GET", (), True),
        (rule(origins=("https://*.example.com",)), "https://example.org", "GET", (), False),
        (rule(origins=("https://a.com", "*")), "https://b.com", "GET", (), True),
        (rule(origins=("*",)), "https://b.com", "GET", (), True),
        (rule(), SITE, "PUT", (), False),  # method not allowed
        (rule(), SITE, "get", (), False),  # methods compare exactly
        (rule(methods=("PUT", "POST")), SITE, "POST", (), True),
        (rule(headers=("content-type",)), SITE, "GET", ("content-type",), True),
        (rule(headers=("Content-Type",)), SITE, "GET", ("content-type",), True),
        (rule(headers=("content-type",)), SITE, "GET", ("Content-Type",), True),
        (rule(headers=("x-amz-*",)), SITE, "GET", ("x-amz-date", "x-amz-acl"), True),
        (rule(headers=("X-AMZ-*",)), SITE, "GET", ("x-amz-date",), True),
        (rule(headers=("x-amz-*",)), SITE, "GET", ("x-amz-date", "content-type"), False),
        (rule(headers=("x-amz-*", "content-*")), SITE, "GET", ("content-md5", "x-amz-a"), True),
        (rule(headers=("*",)), SITE, "GET", ("authorization", "x-anything"), True),
        (rule(headers=("content-type",)), SITE, "GET", ("authorization",), False),
        (rule(), SITE, "GET", ("content-type",), False),  # no AllowedHeader allows no header
        (rule(headers=("content-type",)), SITE, "GET", (), True),
        (rule(headers=("*",)), "https://evil.net", "GET", ("a",), False),
    ],
)
def test_rule_matches(
    the_rule: CorsRule, origin: str, method: str, request_headers: tuple[str, ...], expected: bool
) -> None:
    assert the_rule.matches(origin, method, request_headers) is expected


FIRST = rule(origins=("https://*.example.com",), methods=("GET",), id="first")
SECOND = rule(origins=("*",), methods=("GET", "PUT"), headers=("*",), id="second")
THIRD = rule(origins=(SITE,), methods=("GET",), headers=("*",), id="third")
ORDERED = CorsConfiguration.of([FIRST, SECOND, THIRD])


@pytest.mark.parametrize(
    ("origin", "method", "request_headers", "expected"),
    [
        (SITE, "GET", (), "first"),  # all three match: the first wins, not the most specific
        (SITE, "GET", ("x-amz-date",), "second"),  # the first allows no header
        (SITE, "PUT", (), "second"),
        ("https://else.where", "GET", (), "second"),
        (SITE, "DELETE", (), None),
    ],
)
def test_first_matching_rule_wins(
    origin: str, method: str, request_headers: tuple[str, ...], expected: str | None
) -> None:
    found = ORDERED.rule_for(origin, method, request_headers)
    assert (found.id if found else None) == expected


# --- validation ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        (
            [rule(methods=("GET", "PATCH"))],
            "Found unsupported HTTP method in CORS config. Unsupported method is PATCH",
        ),
        (
            [rule(methods=("get",))],
            "Found unsupported HTTP method in CORS config. Unsupported method is get",
        ),
        (
            [rule(methods=("OPTIONS",))],
            "Found unsupported HTTP method in CORS config. Unsupported method is OPTIONS",
        ),
        (
            [rule(methods=("",))],
            "Found unsupported HTTP method in CORS config. Unsupported method is ",
        ),
        (
            [rule(origins=("x*y*",))],
            'AllowedOrigin "x*y*" can not have more than one wildcard.',
        ),
        (
            [rule(), rule(origins=("*example*.com",))],
            'AllowedOrigin "*example*.com" can not have more than one wildcard.',
        ),
        (
            [rule(headers=("x-amz-*", "**"))],
            'AllowedHeader "**" can not have more than one wildcard.',
        ),
        (
            [rule(expose_headers=("*",))],
            'ExposeHeader "*" contains wildcard. We currently do not support wildcard for '
            "ExposeHeader.",
        ),
        ([], "A CORS configuration must have at least one CORSRule"),
        ([rule()] * 101, "A CORS configuration can have at most 100 rules, not 101"),
        (
            [rule(methods=())],
            "Each CORSRule must identify at least one origin and one method",
        ),
        (
            [rule(origins=())],
            "Each CORSRule must identify at least one origin and one method",
        ),
        ([rule(max_age_seconds=-1)], "MaxAgeSeconds must be between 0 and 2147483647, not -1"),
        (
            [rule(max_age_seconds=2**31)],
            "MaxAgeSeconds must be between 0 and 2147483647, not 2147483648",
        ),
        ([rule(id="i" * 256)], "The ID of a CORSRule cannot be longer than 255 characters"),
    ],
)
def test_invalid_configuration(rules: list[CorsRule], message: str) -> None:
    with pytest.raises(InvalidCorsConfiguration) as refused:
        CorsConfiguration.of(rules)
    assert refused.value.message == message


@pytest.mark.parametrize(
    "rules",
    [
        [rule()] * 100,
        [rule(origins=("", "*", "https://*.a.com"), headers=("*", "x-*"))],
        [rule(methods=("GET", "PUT", "POST", "DELETE", "HEAD"))],
        [rule(id="i" * 255, max_age_seconds=0)],
        [rule(max_age_seconds=2**31 - 1, expose_headers=("ETag", "x-amz-meta-a"))],
    ],
)
def test_valid_configuration(rules: list[CorsRule]) -> None:
    assert CorsConfiguration.of(rules).rules == tuple(rules)


FULL = CorsConfiguration.of(
    [
        rule(
            origins=("https://*.example.com", "http://localhost:8080"),
            methods=("GET", "HEAD", "PUT"),
            headers=("x-amz-*", "Content-Type"),
            expose_headers=("ETag", "x-amz-version-id"),
            max_age_seconds=3000,
            id="web app",
        ),
        rule(origins=("*",), methods=("GET",)),
        rule(origins=("",), id="", max_age_seconds=0),
        rule(origins=("https://ünïcode.example",), headers=("*",)),
    ]
)


def test_as_dict_round_trips_through_json() -> None:
    record = json.loads(json.dumps(FULL.as_dict()))
    assert CorsConfiguration.from_dict(record) == FULL


def test_as_dict_form() -> None:
    assert CorsConfiguration.of([rule(max_age_seconds=5, id="a")]).as_dict() == {
        "rules": [
            {
                "allowed_methods": ["GET"],
                "allowed_origins": [SITE],
                "max_age_seconds": 5,
                "id": "a",
            }
        ]
    }


@pytest.mark.parametrize(
    "record",
    [
        {"rules": []},
        {"rules": [{"allowed_methods": "GET", "allowed_origins": ["*"]}]},
        {"rules": [{"allowed_methods": ["GET"], "allowed_origins": [1]}]},
        {"rules": [{"allowed_methods": ["GET"], "allowed_origins": ["*"], "max_age_seconds": "5"}]},
        {
            "rules": [
                {"allowed_methods": ["GET"], "allowed_origins": ["*"], "max_age_seconds": True}
            ]
        },
        {"rules": [{"allowed_methods": ["GET"], "allowed_origins": ["*"], "id": 7}]},
        {"rules": [{"allowed_methods": ["PATCH"], "allowed_origins": ["*"]}]},
    ],
)
def test_from_dict_refuses_what_of_refuses(record: dict[str, object]) -> None:
    with pytest.raises(InvalidCorsConfiguration):
        CorsConfiguration.from_dict(record)


# --- the document -------------------------------------------------------------------------


def test_render() -> None:
    config = CorsConfiguration.of(
        [
            rule(
                origins=("https://*.a.com",),
                methods=("GET", "PUT"),
                headers=("*",),
                expose_headers=("ETag",),
                max_age_seconds=3000,
                id="r1",
            ),
            rule(origins=("*",)),
        ]
    )
    assert render_cors_configuration(config).to_bytes(declaration=False).decode() == (
        '<CORSConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        "<CORSRule><ID>r1</ID><AllowedHeader>*</AllowedHeader>"
        "<AllowedMethod>GET</AllowedMethod><AllowedMethod>PUT</AllowedMethod>"
        "<AllowedOrigin>https://*.a.com</AllowedOrigin><ExposeHeader>ETag</ExposeHeader>"
        "<MaxAgeSeconds>3000</MaxAgeSeconds></CORSRule>"
        "<CORSRule><AllowedMethod>GET</AllowedMethod><AllowedOrigin>*</AllowedOrigin></CORSRule>"
        "</CORSConfiguration>"
    )


@pytest.mark.parametrize(
    "config",
    [
        FULL,
        CorsConfiguration.of([rule()]),
        CorsConfiguration.of([rule(origins=("<&>\"'",), id="a]]>b")]),
        CorsConfiguration.of([rule(id=str(n)) for n in range(100)]),
    ],
)
def test_xml_round_trip(config: CorsConfiguration) -> None:
    assert parse_cors_configuration(render_cors_configuration(config).to_bytes()) == config


def test_parse_as_clients_send_it() -> None:
    """No namespace, any member order, indentation; MaxAgeSeconds in xsd:int's lexical form."""
    body = b"""<?xml version="1.0" encoding="UTF-8"?>
    <CORSConfiguration>
      <CORSRule>
        <AllowedOrigin>http://www.example.com</AllowedOrigin>
        <AllowedMethod>PUT</AllowedMethod>
        <AllowedHeader>*</AllowedHeader>
        <MaxAgeSeconds> +3000 </MaxAgeSeconds>
        <AllowedMethod>POST</AllowedMethod>
        <ExposeHeader>x-amz-server-side-encryption</ExposeHeader>
        <ID>put-post</ID>
      </CORSRule>
      <CORSRule><AllowedOrigin>*</AllowedOrigin><AllowedMethod>GET</AllowedMethod></CORSRule>
    </CORSConfiguration>"""
    assert parse_cors_configuration(body) == CorsConfiguration.of(
        [
            rule(
                origins=("http://www.example.com",),
                methods=("PUT", "POST"),
                headers=("*",),
                expose_headers=("x-amz-server-side-encryption",),
                max_age_seconds=3000,
                id="put-post",
            ),
            rule(origins=("*",), methods=("GET",)),
        ]
    )


def cors(*rules: str) -> bytes:
    return f"<CORSConfiguration>{''.join(rules)}</CORSConfiguration>".encode()


def cors_rule(*members: str) -> str:
    return f"<CORSRule>{''.join(members)}</CORSRule>"


GET = "<AllowedMethod>GET</AllowedMethod>"
ANY = "<AllowedOrigin>*</AllowedOrigin>"
MALFORMED = ERROR_TABLE["MalformedXML"][1]


@pytest.mark.parametrize(
    ("body", "code", "message"),
    [
        (b"", "MalformedXML", MALFORMED),
        (b"<CORSConfiguration>", "MalformedXML", MALFORMED),
        (b"<Tagging><TagSet/></Tagging>", "MalformedXML", MALFORMED),
        (cors(), "MalformedXML", MALFORMED),  # no rules
        (cors("<CORSRule/>"), "MalformedXML", MALFORMED),
        (cors(cors_rule(GET)), "MalformedXML", MALFORMED),  # no AllowedOrigin
        (cors(cors_rule(ANY)), "MalformedXML", MALFORMED),  # no AllowedMethod
        (cors(cors_rule(GET, ANY, "<MaxAgeSeconds>ten</MaxAgeSeconds>")), "MalformedXML", None),
        (cors(cors_rule(GET, ANY, "<MaxAgeSeconds>1.5</MaxAgeSeconds>")), "MalformedXML", None),
        (cors(cors_rule(GET, ANY, "<MaxAgeSeconds>1_000</MaxAgeSeconds>")), "MalformedXML", None),
        (cors(cors_rule(GET, ANY, "<MaxAgeSeconds/>")), "MalformedXML", None),
        (cors(cors_rule(GET, ANY, "<MaxAgeSeconds>\u0663</MaxAgeSeconds>")), "MalformedXML", None),
        (
            cors(cors_rule(GET, ANY, "<MaxAgeSeconds>1</MaxAgeSeconds>" * 2)),
            "MalformedXML",
            None,
        ),
        (cors(cors_rule(GET, ANY, "<ID>a</ID><ID>b</ID>")), "MalformedXML", None),
        (cors(cors_rule(GET, ANY, "<AllowedHeaders>*</AllowedHeaders>")), "MalformedXML", None),
        (cors(cors_rule(GET, ANY), "<Rule/>"), "MalformedXML", None),
        (cors(cors_rule(GET, "<AllowedOrigin><a/></AllowedOrigin>")), "MalformedXML", None),
        (cors(cors_rule(GET, ANY, "stray")), "MalformedXML", None),
        (cors("stray", cors_rule(GET, ANY)), "MalformedXML", None),
        (cors(*[cors_rule(GET, ANY)] * 101), "MalformedXML", None),
        (
            b'<!DOCTYPE x [<!ENTITY e "GET">]><CORSConfiguration><CORSRule>'
            b"<AllowedMethod>&e;</AllowedMethod>"
            + ANY.encode()
            + b"</CORSRule></CORSConfiguration>",
            "MalformedXML",
            None,
        ),
        # the structure is checked before any value: a PATCH does not hide a missing origin
        (
            cors(cors_rule("<AllowedMethod>PATCH</AllowedMethod>", ANY), cors_rule(GET)),
            "MalformedXML",
            None,
        ),
        (
            cors(cors_rule("<AllowedMethod>PATCH</AllowedMethod>", ANY)),
            "InvalidRequest",
            "Found unsupported HTTP method in CORS config. Unsupported method is PATCH",
        ),
        (
            cors(cors_rule("<AllowedMethod/>", ANY)),
            "InvalidRequest",
            "Found unsupported HTTP method in CORS config. Unsupported method is ",
        ),
        (
            cors(cors_rule(GET, "<AllowedOrigin>*example*.com</AllowedOrigin>")),
            "InvalidRequest",
            'AllowedOrigin "*example*.com" can not have more than one wildcard.',
        ),
        (
            cors(cors_rule(GET, ANY, "<AllowedHeader>x-*-*</AllowedHeader>")),
            "InvalidRequest",
            'AllowedHeader "x-*-*" can not have more than one wildcard.',
        ),
        (
            cors(cors_rule(GET, ANY, "<MaxAgeSeconds>-1</MaxAgeSeconds>")),
            "InvalidRequest",
            "MaxAgeSeconds must be between 0 and 2147483647, not -1",
        ),
    ],
)
def test_parse_refuses(body: bytes, code: str, message: str | None) -> None:
    with pytest.raises(S3Error) as refused:
        parse_cors_configuration(body)
    assert refused.value.code == code
    assert refused.value.status == 400
    assert refused.value.message == (message or ERROR_TABLE[code][1])


# --- preflight ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, ()),
        ("", ()),
        ("Content-Type", ("content-type",)),
        ("x-amz-date,content-type", ("x-amz-date", "content-type")),  # as browsers send it
        (" X-Amz-Date ,\tContent-MD5, ,", ("x-amz-date", "content-md5")),
    ],
)
def test_requested_headers(value: str | None, expected: tuple[str, ...]) -> None:
    assert requested_headers(value) == expected


WEB_APP = CorsConfiguration.of(
    [
        rule(
            origins=("https://*.example.com",),
            methods=("GET", "PUT"),
            headers=("x-amz-*", "content-type"),
            expose_headers=("ETag", "x-amz-version-id"),
            max_age_seconds=3000,
        ),
        rule(origins=("*",), methods=("GET",)),
    ]
)


@pytest.mark.parametrize(
    ("origin", "method", "request_headers", "expected"),
    [
        (
            SITE,
            "PUT",
            None,
            {
                "Access-Control-Allow-Origin": SITE,
                "Access-Control-Allow-Methods": "GET, PUT",
                "Access-Control-Expose-Headers": "ETag, x-amz-version-id",
                "Access-Control-Max-Age": "3000",
                "Access-Control-Allow-Credentials": "true",
                "Vary": VARY,
            },
        ),
        (
            SITE,
            "PUT",
            "X-Amz-Date,Content-Type",
            {
                "Access-Control-Allow-Origin": SITE,
                "Access-Control-Allow-Methods": "GET, PUT",
                "Access-Control-Allow-Headers": "x-amz-date, content-type",
                "Access-Control-Expose-Headers": "ETag, x-amz-version-id",
                "Access-Control-Max-Age": "3000",
                "Access-Control-Allow-Credentials": "true",
                "Vary": VARY,
            },
        ),
        (  # the second rule, whose origin is "*": no credentials, no echo
            "http://localhost:4200",
            "GET",
            "",
            {
                "Access-Control-Allow-Origin": "*",
                "Access-Control-Allow-Methods": "GET",
                "Vary": VARY,
            },
        ),
        (  # a list of empty elements requests no header
            SITE,
            "GET",
            " , ",
            {
                "Access-Control-Allow-Origin": SITE,
                "Access-Control-Allow-Methods": "GET, PUT",
                "Access-Control-Expose-Headers": "ETag, x-amz-version-id",
                "Access-Control-Max-Age": "3000",
                "Access-Control-Allow-Credentials": "true",
                "Vary": VARY,
            },
        ),
    ],
)
def test_preflight_allowed(
    origin: str, method: str, request_headers: str | None, expected: dict[str, str]
) -> None:
    assert preflight_headers(WEB_APP, origin, method, request_headers) == expected


def test_preflight_echoes_a_specific_origin_before_a_later_star() -> None:
    config = CorsConfiguration.of([rule(origins=(SITE, "*"))])
    headers = preflight_headers(config, SITE, "GET", None)
    assert headers["Access-Control-Allow-Origin"] == SITE
    assert headers["Access-Control-Allow-Credentials"] == "true"
    headers = preflight_headers(config, "https://b.net", "GET", None)
    assert headers["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in headers


@pytest.mark.parametrize(
    ("config", "origin", "method", "request_headers", "status", "code", "message", "extra"),
    [
        (WEB_APP, None, "GET", None, 400, "BadRequest", NO_ORIGIN, {}),
        (WEB_APP, "", "GET", None, 400, "BadRequest", NO_ORIGIN, {}),
        (None, None, None, None, 400, "BadRequest", NO_ORIGIN, {}),
        (None, SITE, "GET", None, 403, "AccessForbidden", NOT_ENABLED, {"Method": "GET"}),
        (None, SITE, None, None, 403, "AccessForbidden", NOT_ENABLED, {"Method": "OPTIONS"}),
        (
            WEB_APP,
            SITE,
            None,
            None,
            400,
            "BadRequest",
            "Invalid Access-Control-Request-Method: null",
            {},
        ),
        (
            WEB_APP,
            SITE,
            "PATCH",
            None,
            400,
            "BadRequest",
            "Invalid Access-Control-Request-Method: PATCH",
            {},
        ),
        (
            WEB_APP,
            SITE,
            "get",
            None,
            400,
            "BadRequest",
            "Invalid Access-Control-Request-Method: get",
            {},
        ),
        (WEB_APP, SITE, "DELETE", None, 403, "AccessForbidden", NOT_ALLOWED, {"Method": "DELETE"}),
        (
            WEB_APP,
            "https://evil.net",
            "PUT",
            None,
            403,
            "AccessForbidden",
            NOT_ALLOWED,
            {"Method": "PUT"},
        ),
        (
            WEB_APP,
            SITE + "/",
            "PUT",
            None,
            403,
            "AccessForbidden",
            NOT_ALLOWED,
            {"Method": "PUT"},
        ),
        (
            WEB_APP,
            SITE,
            "PUT",
            "content-type, authorization",
            403,
            "AccessForbidden",
            NOT_ALLOWED,
            {"Method": "PUT"},
        ),
        (  # "*" allows any origin, but no header
            WEB_APP,
            "https://evil.net",
            "GET",
            "content-type",
            403,
            "AccessForbidden",
            NOT_ALLOWED,
            {"Method": "GET"},
        ),
    ],
)
def test_preflight_refused(
    config: CorsConfiguration | None,
    origin: str | None,
    method: str | None,
    request_headers: str | None,
    status: int,
    code: str,
    message: str,
    extra: dict[str, str],
) -> None:
    with pytest.raises(S3Error) as refused:
        preflight_headers(config, origin, method, request_headers)
    assert (refused.value.status, refused.value.code) == (status, code)
    assert refused.value.message == message
    assert refused.value.extra == extra


def test_refusal_texts_are_aws_words() -> None:
    assert NOT_ENABLED == "CORSResponse: CORS is not enabled for this bucket."
    assert NO_ORIGIN == "Insufficient information. Origin request header needed."
    assert NOT_ALLOWED.startswith("CORSResponse: This CORS request is not allowed.")
    assert ERROR_TABLE["AccessForbidden"][0] == 403


# --- actual requests --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "origin", "method", "expected"),
    [
        (WEB_APP, None, "GET", {}),
        (WEB_APP, "", "GET", {}),
        (None, SITE, "GET", {}),
        (WEB_APP, SITE, "DELETE", {}),  # never an error: just no CORS headers
        (CorsConfiguration.of([rule()]), "https://evil.net", "GET", {}),
        (
            WEB_APP,
            SITE,
            "PUT",
            {
                "Access-Control-Allow-Origin": SITE,
                "Access-Control-Allow-Methods": "GET, PUT",
                "Access-Control-Expose-Headers": "ETag, x-amz-version-id",
                "Access-Control-Max-Age": "3000",
                "Access-Control-Allow-Credentials": "true",
                "Vary": VARY,
            },
        ),
        (
            WEB_APP,
            "https://evil.net",
            "GET",
            {
                "Access-Control-Allow-Origin": "*",
                "Access-Control-Allow-Methods": "GET",
                "Vary": VARY,
            },
        ),
        (  # a rule without AllowedHeader still answers: an actual request's headers don't count
            CorsConfiguration.of([rule(methods=("HEAD",))]),
            SITE,
            "HEAD",
            {
                "Access-Control-Allow-Origin": SITE,
                "Access-Control-Allow-Methods": "HEAD",
                "Access-Control-Allow-Credentials": "true",
                "Vary": VARY,
            },
        ),
    ],
)
def test_actual_request_headers(
    config: CorsConfiguration | None, origin: str | None, method: str, expected: dict[str, str]
) -> None:
    assert actual_request_headers(config, origin, method) == expected
