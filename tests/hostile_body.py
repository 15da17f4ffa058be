"""Hostile tokens, part two: the token's shape, size, JSON and claims, its type and the
refresh token (see ``hostile.py`` for part one)."""

from __future__ import annotations

import json
import time

from forge import (
    CONFIG,
    HS,
    SID,
    Case,
    alter,
    b64,
    claim_set,
    noncanonical_header,
    raw_json,
    refresh_swap,
    segment,
)
from sessionstore.errors import (
    InvalidClaim,
    InvalidSignature,
    MalformedToken,
    TokenExpired,
    TokenTooLarge,
    UnknownKey,
    WrongTokenType,
)

__all__ = ["BODY_CASES"]

DEEP_HEADER = '{"alg":"HS256","kid":"hs1","typ":"at+jwt","x":' + "[" * 1500 + "]" * 1500 + "}"
DEEP_BODY = raw_json(
    claim_set(CONFIG, int(time.time())), ',"x":' + "{" * 1000 + '"a":1' + "}" * 1000
)


SHAPE = [
    Case(
        "JSON serialisation (general)",
        lambda f: json.dumps(
            {
                "payload": segment(f.claims()),
                "signatures": [
                    {"protected": segment(HS), "signature": f.valid().rsplit(".", 1)[1]}
                ],
            }
        ),
        MalformedToken,
    ),
    Case(
        "JSON serialisation (flattened)",
        lambda f: json.dumps(
            {
                "payload": segment(f.claims()),
                "protected": segment(HS),
                "signature": f.valid().rsplit(".", 1)[1],
            }
        ),
        MalformedToken,
    ),
    Case(
        "standard base64 characters",
        lambda f: f.valid().replace("-", "+").replace("_", "/") + "+/",
        MalformedToken,
    ),
    Case("base64 padding", lambda f: f.valid() + "==", MalformedToken),
    Case("inner space", lambda f: f.valid().replace(".", ". ", 1), MalformedToken),
    Case("leading whitespace", lambda f: " " + f.valid(), MalformedToken),
    Case("trailing newline", lambda f: f.valid() + "\n", MalformedToken),
    Case("tab inside", lambda f: f.valid().replace(".", "\t.", 1), MalformedToken),
    Case("two segments", lambda f: f.valid().rsplit(".", 1)[0], MalformedToken),
    Case("four segments", lambda f: f.valid() + ".AAAA", MalformedToken),
    Case(
        "five segments (JWE shape)", lambda f: "eyJhbGciOiJkaXIifQ..AAAA.AAAA.AAAA", MalformedToken
    ),
    Case("trailing dot", lambda f: f.valid() + ".", MalformedToken),
    Case("leading dot", lambda f: "." + f.valid(), MalformedToken),
    Case("empty header segment", lambda f: "." + f.valid().split(".", 1)[1], MalformedToken),
    Case("empty string", lambda f: "", MalformedToken),
    Case("non-ASCII character", lambda f: f.valid()[:-1] + "\u00e9", MalformedToken),
    Case("Bearer prefix", lambda f: "Bearer " + f.valid(), MalformedToken),
    Case("bytes, not str", lambda f: f.valid().encode(), MalformedToken),
    Case("None", lambda f: None, MalformedToken),
    Case("header length 1 mod 4", lambda f: "A" + f.valid(), MalformedToken),
    Case("header non-canonical base64", lambda f: noncanonical_header(f), MalformedToken),
]
SIZE = [
    Case("1 MB of base64url", lambda f: "a" * 1_000_000, TokenTooLarge),
    Case("1 MB of dots", lambda f: "." * 1_000_000, TokenTooLarge),
    Case("1 MB of non-ASCII", lambda f: "\u00e9" * 1_000_000, TokenTooLarge),
    Case(
        "1 MB genuinely signed token",
        lambda f: f.hs(body=f.claims(pad="x" * 1_000_000)),
        TokenTooLarge,
    ),
    Case("one byte over the cap", lambda f: "a" * (CONFIG.max_token_bytes + 1), TokenTooLarge),
]
JSON = [
    Case("header not JSON", lambda f: f.hs("alg=HS256"), MalformedToken),
    Case("header a JSON array", lambda f: f.hs(["HS256", "hs1"]), MalformedToken),
    Case("header deeply nested", lambda f: f.hs(DEEP_HEADER), MalformedToken),
    Case("header duplicate alg", lambda f: f.hs(raw_json(HS, ',"alg":"none"')), MalformedToken),
    Case("header duplicate kid", lambda f: f.hs(raw_json(HS, ',"kid":"rs1"')), MalformedToken),
    Case("header UTF-16", lambda f: f.hs(json.dumps(HS).encode("utf-16")), MalformedToken),
    Case("header UTF-8 BOM", lambda f: f.hs("\ufeff" + json.dumps(HS)), MalformedToken),
    Case("header invalid UTF-8", lambda f: f.hs(b'{"alg":"HS256\xff"}'), MalformedToken),
    Case("header NaN", lambda f: f.hs(raw_json(HS, ',"x":NaN')), MalformedToken),
    Case("payload deeply nested", lambda f: f.hs(body=DEEP_BODY), MalformedToken),
    Case(
        "payload duplicate sub",
        lambda f: f.hs(body=raw_json(f.claims(), ',"sub":"admin"')),
        MalformedToken,
    ),
    Case(
        "payload duplicate exp",
        lambda f: f.hs(body=raw_json(f.claims(), f',"exp":{f.now + 10**6}')),
        MalformedToken,
    ),
    Case(
        "payload nested duplicate",
        lambda f: f.hs(body=raw_json(f.claims(), ',"x":{"a":1,"a":2}')),
        MalformedToken,
    ),
    Case(
        "payload UTF-16 with BOM",
        lambda f: f.hs(body=json.dumps(f.claims()).encode("utf-16")),
        MalformedToken,
    ),
    Case(
        "payload UTF-16-LE",
        lambda f: f.hs(body=json.dumps(f.claims()).encode("utf-16-le")),
        MalformedToken,
    ),
    Case(
        "payload UTF-8 BOM", lambda f: f.hs(body="\ufeff" + json.dumps(f.claims())), MalformedToken
    ),
    Case("payload invalid UTF-8", lambda f: f.hs(body=b'{"sub":"\xc3\x28"}'), MalformedToken),
    Case("payload NaN", lambda f: f.hs(body=raw_json(f.claims(), ',"x":NaN')), MalformedToken),
    Case(
        "payload Infinity",
        lambda f: f.hs(body=raw_json(f.claims(), ',"x":Infinity')),
        MalformedToken,
    ),
    Case(
        "payload -Infinity",
        lambda f: f.hs(body=raw_json(f.claims(), ',"x":-Infinity')),
        MalformedToken,
    ),
    Case("payload 1e400", lambda f: f.hs(body=raw_json(f.claims(), ',"x":1e400')), MalformedToken),
    Case(
        "exp 1e400",
        lambda f: f.hs(body=raw_json(f.claims(exp=None), ',"exp":1e400')),
        MalformedToken,
    ),
    Case(
        "payload 5000-digit integer",
        lambda f: f.hs(body=raw_json(f.claims(), ',"x":' + "9" * 5000)),
        MalformedToken,
    ),
    Case(
        "payload trailing data", lambda f: f.hs(body=json.dumps(f.claims()) + "{}"), MalformedToken
    ),
    Case("payload a JSON string", lambda f: f.hs(body='"user-1"'), MalformedToken),
    Case("payload a JSON array", lambda f: f.hs(body=[f.claims()]), MalformedToken),
]
CLAIMS = [
    Case("exp string", lambda f: f.hs(body=f.claims(exp=str(f.now + 900))), InvalidClaim),
    Case("exp bool", lambda f: f.hs(body=f.claims(exp=True)), InvalidClaim),
    Case("exp float", lambda f: f.hs(body=f.claims(exp=f.now + 900.0)), InvalidClaim),
    Case("exp negative", lambda f: f.hs(body=f.claims(exp=-1)), InvalidClaim),
    Case("exp past 2**53", lambda f: f.hs(body=f.claims(exp=2**63)), InvalidClaim),
    Case(
        "exp null", lambda f: f.hs(body=raw_json(f.claims(exp=None), ',"exp":null')), InvalidClaim
    ),
    Case("exp missing", lambda f: f.hs(body=f.claims(exp=None)), InvalidClaim),
    Case("iat string", lambda f: f.hs(body=f.claims(iat=str(f.now))), InvalidClaim),
    Case("iat bool", lambda f: f.hs(body=f.claims(iat=False)), InvalidClaim),
    Case("iat float", lambda f: f.hs(body=f.claims(iat=f.now + 0.5)), InvalidClaim),
    Case("nbf string", lambda f: f.hs(body=f.claims(nbf=str(f.now))), InvalidClaim),
    Case("nbf float", lambda f: f.hs(body=f.claims(nbf=f.now - 1.5)), InvalidClaim),
    Case(
        "exp beyond absolute_ttl",
        lambda f: f.hs(body=f.claims(exp=f.now + CONFIG.absolute_ttl + 1)),
        InvalidClaim,
    ),
    Case(
        "lifetime one second past access_ttl + leeway",
        lambda f: f.hs(body=f.claims(exp=f.now + CONFIG.access_ttl + CONFIG.leeway + 1)),
        InvalidClaim,
    ),
    Case(
        "nbf in the future past the leeway",
        lambda f: f.hs(body=f.claims(nbf=f.now + CONFIG.leeway + 600)),
        InvalidClaim,
    ),
    Case(
        "iat in the future past the leeway",
        lambda f: f.hs(body=f.claims(iat=f.now + CONFIG.leeway + 600, exp=f.now + 1200)),
        InvalidClaim,
    ),
    Case(
        "expired", lambda f: f.hs(body=f.claims(iat=f.now - 2000, exp=f.now - 1000)), TokenExpired
    ),
    Case("iss substring", lambda f: f.hs(body=f.claims(iss=CONFIG.issuer[:-1])), InvalidClaim),
    Case(
        "iss superstring", lambda f: f.hs(body=f.claims(iss=CONFIG.issuer + ".evil")), InvalidClaim
    ),
    Case("iss other case", lambda f: f.hs(body=f.claims(iss=CONFIG.issuer.upper())), InvalidClaim),
    Case("iss list", lambda f: f.hs(body=f.claims(iss=[CONFIG.issuer])), InvalidClaim),
    Case("iss missing", lambda f: f.hs(body=f.claims(iss=None)), InvalidClaim),
    Case("aud list", lambda f: f.hs(body=f.claims(aud=[CONFIG.audience])), InvalidClaim),
    Case(
        "aud list with an extra audience",
        lambda f: f.hs(body=f.claims(aud=[CONFIG.audience, "other"])),
        InvalidClaim,
    ),
    Case("aud substring", lambda f: f.hs(body=f.claims(aud=CONFIG.audience[:3])), InvalidClaim),
    Case("aud object", lambda f: f.hs(body=f.claims(aud={CONFIG.audience: True})), InvalidClaim),
    Case("sub number", lambda f: f.hs(body=f.claims(sub=1)), InvalidClaim),
    Case("sub list", lambda f: f.hs(body=f.claims(sub=["user-1"])), InvalidClaim),
    Case("sub empty", lambda f: f.hs(body=f.claims(sub="")), InvalidClaim),
    Case("sub with NUL", lambda f: f.hs(body=f.claims(sub="user-1\x00admin")), InvalidClaim),
    Case(
        "sub lone surrogate",
        lambda f: f.hs(body=raw_json(f.claims(sub=None), ',"sub":"\\ud800"')),
        InvalidClaim,
    ),
    Case("sid number", lambda f: f.hs(body=f.claims(sid=12345)), InvalidClaim),
    Case("sid wrong shape", lambda f: f.hs(body=f.claims(sid="../" + SID)), InvalidClaim),
    Case(
        "sid null", lambda f: f.hs(body=raw_json(f.claims(sid=None), ',"sid":null')), InvalidClaim
    ),
    Case("jti number", lambda f: f.hs(body=f.claims(jti=7)), InvalidClaim),
    Case("jti missing", lambda f: f.hs(body=f.claims(jti=None)), InvalidClaim),
]
TYPES = [
    Case("refresh token as access token", lambda f: f.refresh(), WrongTokenType),
    Case("access token as refresh token", lambda f: f.valid(), WrongTokenType, "refresh"),
    Case("refresh token as logout token", lambda f: f.refresh(), WrongTokenType, "logout"),
    Case("forged token to logout", lambda f: alter(f.valid()), InvalidSignature, "logout"),
]
REFRESH = [
    Case("refresh MAC altered", lambda f: alter(f.refresh()), InvalidSignature, "refresh"),
    Case(
        "refresh locator of another user",
        lambda f: refresh_swap(f, 1, b64(b"admin")),
        InvalidSignature,
        "refresh",
    ),
    Case(
        "refresh generation bumped", lambda f: refresh_swap(f, 3, "2"), InvalidSignature, "refresh"
    ),
    Case("refresh generation 0", lambda f: refresh_swap(f, 3, "0"), MalformedToken, "refresh"),
    Case("refresh generation 01", lambda f: refresh_swap(f, 3, "01"), MalformedToken, "refresh"),
    Case("refresh unknown kid", lambda f: refresh_swap(f, 4, b64(b"nope")), UnknownKey, "refresh"),
    Case(
        "refresh kid not UTF-8",
        lambda f: refresh_swap(f, 4, b64(b"\xff\xfe")),
        MalformedToken,
        "refresh",
    ),
    Case("refresh 1 MB", lambda f: "rt1." + "a" * 1_000_000, TokenTooLarge, "refresh"),
    Case("refresh garbage", lambda f: "rt1.not-a-token", MalformedToken, "refresh"),
    Case("refresh trailing space", lambda f: f.refresh() + " ", MalformedToken, "refresh"),
    Case("refresh None", lambda f: None, MalformedToken, "refresh"),
]
BODY_CASES = SHAPE + SIZE + JSON + CLAIMS + TYPES + REFRESH
