"""What a Responses client asked that only its own encoders care about, and Claude thinking carried inside
``encrypted_content``; shared by the decoding (``inbound``) and rendering (``render``) halves of the inbound codec."""

from __future__ import annotations

import msgspec
from msgspec import Struct

from fastgw.canon import signature
from fastgw.canon.request import (
    Request,
    Thinking,
)

DIALECT = "openai-responses"
THINKING_FAMILY = "anthropic-thinking"
ENCRYPTED_INCLUDE = "reasoning.encrypted_content"
_encoder = msgspec.json.Encoder()


class Extension(Struct, kw_only=True):
    """What the encoders need to know about the client's request (``request.extensions["openai-responses"]``)."""

    include_reasoning: bool = False
    custom_tools: list[str] = []
    store: bool = True
    previous_response_id: str | None = None


_extension_decoder = msgspec.json.Decoder(Extension)


def mint_thinking(text: str, anthropic_signature: str | None) -> str:
    """Claude thinking as a reasoning item's ``encrypted_content`` the gateway can read back."""
    return signature.mint(THINKING_FAMILY, _encoder.encode([text, anthropic_signature or ""]))


def read_thinking(encrypted: str) -> Thinking | None:
    """The Claude thinking inside ``encrypted`` if the gateway minted it, else None (foreign: drop it)."""
    data = signature.payload(encrypted, THINKING_FAMILY)
    if data is None:
        return None
    try:
        text, sig = msgspec.json.decode(data, type=tuple[str, str])
    except msgspec.DecodeError:
        return None
    if not sig:
        return None  # thinking without its Anthropic signature cannot be replayed to Anthropic
    return Thinking(text=text, signature=sig)


def extension(request: Request | None) -> Extension:
    """The Responses-specific facts ``to_canon`` recorded (defaults for a request from another dialect)."""
    raw = request.extensions.get(DIALECT) if request is not None else None
    if raw is None:
        return Extension()
    return _extension_decoder.decode(raw)


def stored(request: Request) -> Extension | None:
    """The Responses client's store/continuation wishes, or None for a request of another dialect."""
    return extension(request) if DIALECT in request.extensions else None
