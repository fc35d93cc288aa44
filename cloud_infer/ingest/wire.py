"""Says what is wrong with bytes that protobuf refused to parse.

The parser only reports "Error parsing message"; walking the wire format against the descriptor
names the offending field (truncated data, invalid UTF-8 in a string) so the agent's developer gets
an actionable INVALID_ARGUMENT instead of a guess.
"""

from __future__ import annotations

from google.protobuf.descriptor import Descriptor, FieldDescriptor

_MAX_VARINT_SHIFT = 70


class _WireProblem(Exception):
    pass


def describe_decode_error(data: bytes, descriptor: Descriptor) -> str:
    """A one-line description of why ``data`` is not a valid ``descriptor`` message."""
    try:
        _check(data, descriptor, descriptor.name)
    except _WireProblem as problem:
        return str(problem)
    return f"not a valid {descriptor.full_name}"


def _varint(data: bytes, pos: int, path: str) -> tuple[int, int]:
    result = shift = 0
    while pos < len(data):
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift >= _MAX_VARINT_SHIFT:
            break
    raise _WireProblem(f"{path}: malformed varint at byte {pos}")


def _check(data: bytes, descriptor: Descriptor, path: str) -> None:
    pos = 0
    while pos < len(data):
        tag, pos = _varint(data, pos, path)
        number, wire_type = tag >> 3, tag & 7
        if number == 0:
            raise _WireProblem(f"{path}: field number 0 is invalid")
        if wire_type == 0:
            _, pos = _varint(data, pos, path)
        elif wire_type in (1, 5):
            pos += 8 if wire_type == 1 else 4
        elif wire_type == 2:
            length, pos = _varint(data, pos, path)
            end = pos + length
            if end > len(data):
                raise _WireProblem(f"{path}: field {number} is truncated")
            field = descriptor.fields_by_number.get(number)
            if field is not None:
                name = f"{path}.{field.name}"
                if field.type == FieldDescriptor.TYPE_STRING:
                    try:
                        data[pos:end].decode("utf-8")
                    except UnicodeDecodeError as exc:
                        raise _WireProblem(f"{name} is not valid UTF-8 (byte {exc.start})") from exc
                elif field.message_type is not None:
                    _check(data[pos:end], field.message_type, name)
            pos = end
        else:
            raise _WireProblem(f"{path}: unsupported wire type {wire_type} for field {number}")
        if pos > len(data):
            raise _WireProblem(f"{path}: message is truncated")
