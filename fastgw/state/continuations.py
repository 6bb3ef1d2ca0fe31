"""The Responses API's server-side conversation state as a service the pipeline calls without knowing the dialect.

``resume`` puts the stored conversation in front of a request that names ``previous_response_id``; ``keeper``
returns, for a request that asked to be stored (``store: true``), the object that stores its response *before* the
last byte reaches the client, so a GET or a continuation sent the moment the client sees the end already works.
Requests of other dialects, and Codex's ``store: false``, get no keeper and cost nothing.
"""

from __future__ import annotations

import msgspec

from fastgw.canon.request import Message, Request
from fastgw.canon.response import Response
from fastgw.canon.sources import Sources
from fastgw.canon.stream import Event, collect
from fastgw.codecs.interface import InboundCodec, StreamDecoder
from fastgw.codecs.openai_responses import extension
from fastgw.codecs.sse import SSEEvent
from fastgw.errors import NotFound
from fastgw.state.responses import Conversation, ResponseStore, Stored


class _IdOnly(msgspec.Struct):
    id: str = ""


_id_decoder = msgspec.json.Decoder(_IdOnly)
_deleted = msgspec.json.Encoder()


class Keeper:
    """Stores one response: whole (``whole``) or from the canonical events of its stream (``tap`` then
    ``before_finish``)."""

    def __init__(
        self, store: ResponseStore, request: Request, inbound: InboundCodec, sources: Sources, owner: str | None = None
    ) -> None:
        self._store = store
        self._owner = owner
        self._request = request
        self._inbound = inbound
        self._sources = sources
        self.events: list[Event] = []

    def tap(self, decoder: StreamDecoder) -> StreamDecoder:
        """``decoder``, also keeping every canonical event it emits."""
        return _Tape(decoder, self.events)

    async def whole(self, body: bytes, response: Response) -> None:
        """Store a non-streamed response whose client body is ``body``."""
        await self._put(_id_decoder.decode(body).id, body, response)

    async def before_finish(self, response_id: str) -> None:
        """Store the streamed response (its events so far hold everything up to the finish) as ``response_id``."""
        response = collect(self.events)
        response.id = response_id or response.id
        await self._put(response.id, self._inbound.encode(response, self._request, self._sources), response)

    async def _put(self, response_id: str, body: bytes, response: Response) -> None:
        turn = Message(role="assistant", parts=response.parts)
        request = self._request
        await self._store.put(response_id, body, Conversation(request.system, [*request.messages, turn]), self._owner)


class _Tape:
    __slots__ = ("_decoder", "_events")

    def __init__(self, decoder: StreamDecoder, events: list[Event]) -> None:
        self._decoder = decoder
        self._events = events

    def feed(self, event: SSEEvent) -> list[Event]:
        events = self._decoder.feed(event)
        self._events.extend(events)
        return events

    def close(self) -> list[Event]:
        events = self._decoder.close()
        self._events.extend(events)
        return events


class Continuations:
    """``store``/``previous_response_id`` over a ``ResponseStore``."""

    def __init__(self, store: ResponseStore) -> None:
        self.store = store

    async def _find(self, response_id: str, owner: str | None) -> Stored | None:
        """The stored response, if ``owner`` may see it: the key that made it (one made without a key, before keys
        were required, is anyone's). Someone else's is as unknown as a missing one."""
        stored = await self.store.get(response_id)
        if stored is None or (stored.owner is not None and stored.owner != owner):
            return None
        return stored

    async def resume(self, request: Request, owner: str | None = None) -> None:
        """Prepend the stored conversation when ``request`` (from ``owner``) continues one.

        Raises:
            NotFound: the previous response is unknown, expired, or another key's.
        """
        wishes = extension.stored(request)
        if wishes is None or not wishes.previous_response_id:
            return
        previous = wishes.previous_response_id
        stored = await self._find(previous, owner)
        if stored is None:
            raise NotFound(f"previous response {previous!r} not found (or expired)", param="previous_response_id")
        conversation = stored.conversation
        request.messages = [*conversation.messages, *request.messages]
        request.system = request.system or conversation.system

    def keeper(
        self, request: Request, inbound: InboundCodec, sources: Sources, owner: str | None = None
    ) -> Keeper | None:
        """A keeper when ``request`` asked for its response to be stored (as ``owner``'s), else None."""
        wishes = extension.stored(request)
        if wishes is None or not wishes.store:
            return None
        return Keeper(self.store, request, inbound, sources, owner)

    async def get(self, response_id: str, owner: str | None = None) -> bytes:
        """The stored body (``GET /v1/responses/{id}``).

        Raises:
            NotFound: unknown, expired, or another key's.
        """
        stored = await self._find(response_id, owner)
        if stored is None:
            raise NotFound(f"response {response_id!r} not found (or expired)")
        return stored.body

    async def delete(self, response_id: str, owner: str | None = None) -> bytes:
        """Forget a stored response; the body ``DELETE /v1/responses/{id}`` answers.

        Raises:
            NotFound: it was not stored, or is another key's.
        """
        if await self._find(response_id, owner) is None or not await self.store.delete(response_id):
            raise NotFound(f"response {response_id!r} not found")
        return _deleted.encode({"id": response_id, "object": "response.deleted", "deleted": True})
