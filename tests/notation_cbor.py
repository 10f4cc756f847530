#!/usr/bin/env python3
"""The small part of CBOR (RFC 8949) that the independent Notation signer's
COSE envelopes need (tests/notation_sign.py, notation_sign_selftest.py),
written by hand from the RFC: no cbor2, nothing shared with vouch.

Python values map to CBOR as: int -> major type 0/1, bytes -> 2, str -> 3,
list -> 4, dict -> 5, Tag -> 6, False/True/None -> simple 20/21/22.

`encode` is RFC 8949 section 4.2.1 "Core Deterministic Encoding": preferred
(shortest) argument encoding, definite lengths only, and map keys sorted by
the bytewise lexicographic order of their deterministic encodings.

`decode` reads exactly one well-formed data item (RFC 8949 section 3) and
refuses trailing bytes, indefinite lengths, reserved additional information,
duplicate map keys and unhashable (array/map) keys. It does not insist on
deterministic encoding: a COSE verifier must work over the bytes it
received, whatever their key order (RFC 9052 section 4.4)."""
import struct
from collections import namedtuple

Tag = namedtuple("Tag", "number value")   # major type 6: tag number + tagged data item


class CBORError(ValueError):
    pass


def _head(major, arg):
    """Initial byte + argument, shortest form (RFC 8949 sections 3 and 4.2.1)."""
    if arg < 0 or arg >= 1 << 64:
        raise CBORError(f"argument {arg} out of range")
    if arg < 24:
        return bytes([major << 5 | arg])
    for ai, n in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if arg < 1 << (8 * n):
            return bytes([major << 5 | ai]) + arg.to_bytes(n, "big")


def encode(v):
    if v is False or v is True or v is None:
        return bytes([0xf4 + {False: 0, True: 1, None: 2}[v]])
    if isinstance(v, int):
        return _head(0, v) if v >= 0 else _head(1, -1 - v)
    if isinstance(v, (bytes, bytearray)):
        return _head(2, len(v)) + bytes(v)
    if isinstance(v, str):
        b = v.encode("utf-8")
        return _head(3, len(b)) + b
    if isinstance(v, Tag):
        return _head(6, v.number) + encode(v.value)
    if isinstance(v, (list, tuple)):
        return _head(4, len(v)) + b"".join(encode(x) for x in v)
    if isinstance(v, dict):
        items = sorted((encode(k), encode(x)) for k, x in v.items())
        if len({k for k, _ in items}) != len(items):
            raise CBORError("duplicate map key")
        return _head(5, len(items)) + b"".join(k + x for k, x in items)
    raise CBORError(f"cannot encode {type(v).__name__}")


def encode_map_in_order(pairs):
    """A map whose (key, value) pairs are encoded in the order given, not the
    deterministic one: for checking that verifiers use the received bytes."""
    return _head(5, len(pairs)) + b"".join(encode(k) + encode(v) for k, v in pairs)


def decode(data):
    """The one data item in `data` (bytes); raises CBORError."""
    data = bytes(data)
    value, end = _item(data, 0, 0)
    if end != len(data):
        raise CBORError(f"{len(data) - end} trailing byte(s)")
    return value


def _take(data, pos, n):
    if n > len(data) - pos:
        raise CBORError("truncated")
    return data[pos:pos + n], pos + n


def _item(data, pos, depth):
    if depth > 64:
        raise CBORError("nested too deeply")
    (ib,), pos = _take(data, pos, 1)
    major, ai = ib >> 5, ib & 0x1f
    if major == 7:
        if ai in (20, 21, 22):
            return (False, True, None)[ai - 20], pos
        if ai in (25, 26, 27):
            n = {25: 2, 26: 4, 27: 8}[ai]
            raw, pos = _take(data, pos, n)
            return struct.unpack(">" + {2: "e", 4: "f", 8: "d"}[n], raw)[0], pos
        raise CBORError(f"unsupported simple value / break 0x{ib:02x}")
    if ai < 24:
        arg = ai
    elif ai <= 27:
        raw, pos = _take(data, pos, 1 << (ai - 24))
        arg = int.from_bytes(raw, "big")
    else:
        raise CBORError(f"indefinite length or reserved additional information 0x{ib:02x}")
    if major == 0:
        return arg, pos
    if major == 1:
        return -1 - arg, pos
    if major in (2, 3):
        raw, pos = _take(data, pos, arg)
        if major == 2:
            return raw, pos
        try:
            return raw.decode("utf-8"), pos
        except UnicodeDecodeError:
            raise CBORError("text string is not UTF-8")
    if major == 4:
        if arg > len(data) - pos:
            raise CBORError("truncated array")
        out = []
        for _ in range(arg):
            x, pos = _item(data, pos, depth + 1)
            out.append(x)
        return out, pos
    if major == 5:
        if 2 * arg > len(data) - pos:
            raise CBORError("truncated map")
        out = {}
        for _ in range(arg):
            k, pos = _item(data, pos, depth + 1)
            if isinstance(k, (list, dict)) or (isinstance(k, Tag) and isinstance(k.value, (list, dict))):
                raise CBORError("map key is an array or map")
            if k in out:   # (also true vs 1, 1.0 vs 1: equal in Python, refused as ambiguous)
                raise CBORError(f"duplicate map key {k!r}")
            x, pos = _item(data, pos, depth + 1)
            out[k] = x
        return out, pos
    x, pos = _item(data, pos, depth + 1)   # major 6
    return Tag(arg, x), pos


if __name__ == "__main__":   # a few RFC 8949 Appendix A vectors
    for value, hexed in ((0, "00"), (23, "17"), (24, "1818"), (1000, "1903e8"), (-1, "20"), (-1000, "3903e7"),
                         (2 ** 64 - 1, "1bffffffffffffffff"), (b"", "40"), ("IETF", "6449455446"),
                         ([1, [2, 3], [4, 5]], "8301820203820405"), ({1: 2, 3: 4}, "a201020304"),
                         (Tag(1, 1363896240), "c11a514b67b0"), ({"b": 1, 10: 2, -1: 3, "a": 4},
                                                                 "a40a022003616104616201")):
        assert encode(value).hex() == hexed, (value, encode(value).hex(), hexed)
        assert decode(bytes.fromhex(hexed)) == value, hexed
    for bad in ("5f", "a20101 0102", "1c", "18", "6180"):
        try:
            decode(bytes.fromhex(bad.replace(" ", "")))
            raise SystemExit(f"accepted bad CBOR {bad}")
        except CBORError:
            pass
    print("notation_cbor: RFC 8949 vectors ok")
