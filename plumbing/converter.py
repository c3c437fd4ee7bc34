"""The data converter every client, worker and replayer here uses.

The wire format is the SDK's default JSON byte for byte, so histories and other SDKs read
it unchanged. Speed is what changes. Decoding: the SDK resolves a dataclass's type hints
on every payload (several milliseconds for a playbook or a journey state, far
more inside the workflow sandbox); this converter resolves them once per type
and keeps a compiled decoder. Encoding: no deep copy through
`dataclasses.asdict` for every dataclass sent.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import types
import typing
from collections.abc import Callable
from typing import Any

from temporalio.api.common.v1 import Payload
from temporalio.converter import (
    AdvancedJSONEncoder,
    CompositePayloadConverter,
    DataConverter,
    DefaultPayloadConverter,
    JSONPlainPayloadConverter,
    PayloadCodec,
    value_to_type,
)

Decoder = Callable[[Any], Any]


def decode(hint: Any, value: Any) -> Any:
    """Convert a JSON value to `hint`, with the SDK's rules (unknown fields ignored, missing ones defaulted)."""
    return _decoder(hint)(value)


@functools.cache
def _decoder(hint: Any) -> Decoder:
    if hint is Any or hint is object:
        return _same
    if hint in (str, int, bool):
        return functools.partial(_exactly, hint)
    if hint is float:
        return _number
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return _DataclassDecoder(hint)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is list and len(args) == 1:
        return functools.partial(_list, _decoder(args[0]))
    if origin is dict and len(args) == 2 and args[0] is str:
        return functools.partial(_dict, _decoder(args[1]))
    if origin in (typing.Union, types.UnionType) and len(args) == 2 and type(None) in args:
        inner = args[0] if args[1] is type(None) else args[1]
        return functools.partial(_optional, _decoder(inner))
    # Anything else (datetimes, enums, other unions...) takes the SDK's general path.
    return lambda value: value_to_type(hint, value, [])


def _same(value: Any) -> Any:
    return value


def _exactly(kind: type, value: Any) -> Any:
    if type(value) is not kind and not (kind is int and type(value) is bool):
        raise TypeError(f"expected {kind.__name__}, got {type(value).__name__}")
    return value


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"expected a number, got {type(value).__name__}")
    return float(value)


def _list(item: Decoder, value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise TypeError(f"expected a list, got {type(value).__name__}")
    return [item(v) for v in value]


def _dict(item: Decoder, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TypeError(f"expected an object, got {type(value).__name__}")
    return {k: item(v) for k, v in value.items()}


def _optional(inner: Decoder, value: Any) -> Any:
    return None if value is None else inner(value)


class _DataclassDecoder:
    def __init__(self, cls: type) -> None:
        self.cls = cls
        # Resolved at first use, so a dataclass may refer to itself.
        self.fields: list[tuple[str, str | None, Decoder, bool]] | None = None

    def __call__(self, value: Any) -> Any:
        if not isinstance(value, dict):
            raise TypeError(f"cannot convert to {self.cls.__name__}: expected an object, got {type(value).__name__}")
        if self.fields is None:
            hints = typing.get_type_hints(self.cls)
            # A renamed field names its old key in metadata["was"]: payloads written before still decode.
            self.fields = [
                (f.name, f.metadata.get("was"), _decoder(hints[f.name]), f.init) for f in dataclasses.fields(self.cls)
            ]
        init: dict[str, Any] = {}
        later: dict[str, Any] = {}
        for name, was, convert, in_init in self.fields:
            key = name if name in value or was is None else was
            if key in value:
                try:
                    (init if in_init else later)[name] = convert(value[key])
                except Exception as err:
                    raise TypeError(f"failed converting field {name} of {self.cls.__name__}: {err}") from err
        obj = self.cls(**init)
        for name, v in later.items():
            object.__setattr__(obj, name, v)
        return obj


@functools.cache
def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))


class _Encoder(AdvancedJSONEncoder):
    def default(self, o: Any) -> Any:
        # One level at a time (the encoder recurses), instead of dataclasses.asdict's deep copy.
        # Keys are sorted on output, so the JSON is byte for byte the SDK's.
        if dataclasses.is_dataclass(o) and not isinstance(o, type):
            return {name: getattr(o, name) for name in _field_names(type(o))}
        return super().default(o)


class _JSONPayloadConverter(JSONPlainPayloadConverter):
    def __init__(self) -> None:
        super().__init__(encoder=_Encoder)

    def from_payload(self, payload: Payload, type_hint: type | None = None) -> Any:
        if not (isinstance(type_hint, type) and dataclasses.is_dataclass(type_hint)):
            return super().from_payload(payload, type_hint)
        try:
            obj = json.loads(payload.data)
        except json.JSONDecodeError as err:
            raise RuntimeError("Failed parsing") from err
        return decode(type_hint, obj)


class PayloadConverter(CompositePayloadConverter):
    def __init__(self) -> None:
        super().__init__(
            *(
                _JSONPayloadConverter() if isinstance(c, JSONPlainPayloadConverter) else c
                for c in DefaultPayloadConverter.default_encoding_payload_converters
            )
        )


def data_converter(codec: PayloadCodec | None = None, *, from_env: bool = True) -> DataConverter:
    """Our JSON payloads; encrypted when PAYLOAD_ENCRYPTION_KEY is set (or a codec is given)."""
    if codec is None and from_env:
        from plumbing.codec import codec_from_env

        codec = codec_from_env()
    return DataConverter(payload_converter_class=PayloadConverter, payload_codec=codec)
