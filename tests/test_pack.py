"""The direct path's packing of reads equals redis-py's own (hiredis' ``pack_command``).

A read's RESP is built from a memo of its constant part (the HMGET's field names) plus its
keys; whatever the keys and arguments, the bytes must be the ones redis-py would send.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import hiredis
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sessionstore._engine.call import Call
from sessionstore._engine.validation import READ_FIELDS
from sessionstore._redis.direct import pack
from sessionstore.scripts import SCRIPTS

# What redis-py packs commands with when hiredis is installed (its stub types are narrower).
pack_command: Callable[[tuple[Any, ...]], bytes] = hiredis.pack_command
_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=40)
_arg = st.one_of(
    _text,
    st.binary(max_size=40),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
)


@given(
    keys=st.lists(_text, min_size=1, max_size=3),
    args=st.one_of(st.just(READ_FIELDS), st.just(()), st.lists(_arg, max_size=5).map(tuple)),
    command=st.sampled_from(["HMGET", "HGETALL", "GET"]),
)
def test_reads_pack_as_redis_py_packs_them(
    keys: list[str], args: tuple[str | bytes | int | float, ...], command: str
) -> None:
    sent: tuple[Any, ...] = args  # floats too: hiredis' rules apply to them
    call: Call[None] = Call(SCRIPTS["check"], tuple(keys), sent, print, command=command)
    assert pack(call) == pack_command((command, *keys, *args))
    assert pack(call) == pack(call)  # the memo gives the same bytes the second time


def test_scripts_pack_as_evalsha() -> None:
    script = SCRIPTS["check"]
    call: Call[None] = Call(script, ("a", "b"), ("sid", 5), print)
    assert pack(call) == pack_command(("EVALSHA", script.sha, 2, "a", "b", "sid", 5))


def test_what_hiredis_refuses_is_refused() -> None:
    call: Call[None] = Call(SCRIPTS["check"], ("k",), (True,), print, command="HMGET")
    with pytest.raises(TypeError):
        pack_command(("HMGET", "k", True))
    with pytest.raises(TypeError):
        pack(call)
