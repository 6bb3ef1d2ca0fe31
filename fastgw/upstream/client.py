"""Providers as the pipeline reaches them: each one's URL and auth over the worker's shared connection pool, and
the mapping of transport failures into ``fastgw.errors``.

The pool (``Http1Transport``, kept-alive connections per origin) is a long-lived service of the worker; an
``Upstream`` is per-config routing state that borrows it, so a reload builds new ``Upstreams`` over the same warm
connections. Phase timeouts: connect and idle (between body chunks) are the transport's connect/read timeouts; the
first-byte deadline is a cancel scope around sending the request; the total deadline is the caller's scope around
the whole attempt.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager

import httpx
import msgspec
import trio

from fastgw.canon.dialect import Dialect
from fastgw.codecs.interface import UpstreamCodec
from fastgw.config import Provider, Timeouts
from fastgw.errors import UpstreamError, UpstreamProtocolError, UpstreamTimeout, UpstreamUnavailable
from fastgw.route.health import Health
from fastgw.route.pool import Pool, PoolKey, PoolStatistics
from fastgw.upstream.transport import Http1Transport


@contextmanager
def map_errors(provider: str) -> Iterator[None]:
    """Map httpx exceptions to the most specific fastgw error (never leaking URLs with credentials)."""
    try:
        yield
    except httpx.TimeoutException as error:
        phase = "connect" if isinstance(error, httpx.ConnectTimeout | httpx.PoolTimeout) else "idle"
        raise UpstreamTimeout(f"upstream {provider} timed out ({phase})") from None
    except (httpx.ConnectError, httpx.UnsupportedProtocol) as error:
        raise UpstreamUnavailable(f"upstream {provider} is unreachable: {type(error).__name__}") from None
    except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as error:
        raise UpstreamProtocolError(f"upstream {provider} broke the connection: {type(error).__name__}") from None
    except httpx.HTTPError as error:
        raise UpstreamError(f"upstream {provider} failed: {type(error).__name__}") from None


def endpoint(base_url: str, path: str) -> str:
    """The request URL: ``base_url`` plus the dialect's path, without doubling a ``/v1`` the base already has."""
    base = base_url.rstrip("/")
    if base.endswith("/v1") and path.startswith("/v1/"):
        path = path.removeprefix("/v1")
    return base + path


class UpstreamStatistics(msgspec.Struct, frozen=True, kw_only=True):
    requests: int
    failures: int
    keys: PoolStatistics


class Upstream:
    """One provider of one config: its URL, its key pool and the codec of its dialect, over the shared connection
    pool."""

    def __init__(
        self,
        name: str,
        spec: Provider,
        codec: UpstreamCodec,
        timeouts: Timeouts,
        transport: Http1Transport,
        health: Health,
    ) -> None:
        self.name = name
        self.spec = spec
        self.codec = codec
        self.timeouts = timeouts
        self.transport = transport
        self.url = httpx.URL(endpoint(spec.base_url, codec.path))  # parsed once: a str costs ~28 us per request
        self.pool = Pool(spec, [list(codec.auth(key)) for key in spec.keys], health)
        # Bodies are relayed as received: never let an upstream compress them.
        self._headers = [("accept-encoding", "identity"), ("content-type", "application/json"), *spec.headers.items()]
        self._timeout = {"connect": timeouts.connect, "read": timeouts.idle, "write": timeouts.idle}
        self._requests = 0
        self._failures = 0

    def __repr__(self) -> str:
        return f"<Upstream {self.name} {self.spec.dialect} {self.url}>"

    def statistics(self) -> UpstreamStatistics:
        return UpstreamStatistics(requests=self._requests, failures=self._failures, keys=self.pool.statistics())

    @asynccontextmanager
    async def post(self, body: bytes, headers: list[tuple[str, str]], key: PoolKey) -> AsyncIterator[httpx.Response]:
        """Send ``body`` with ``key``'s auth and yield the response with its body unread (stream it with ``chunks``).

        Raises:
            UpstreamTimeout: no response headers within ``first_byte`` seconds, or a connect timeout.
            UpstreamError: any other transport failure.
        """
        # httpx's Request/Response types over our transport, without AsyncClient's per-request machinery
        # (auth flows, redirects, cookies, hooks) that an API call with a fixed URL and key never uses.
        request = httpx.Request(
            "POST",
            self.url,
            content=body,
            headers=[*self._headers, *key.auth, *headers],
            extensions={"timeout": self._timeout},
        )
        self._requests += 1
        response: httpx.Response | None = None
        try:
            with map_errors(self.name):
                with trio.move_on_after(self.timeouts.first_byte) as scope:
                    response = await self.transport.handle_async_request(request)
            if scope.cancelled_caught or response is None:
                raise UpstreamTimeout(f"upstream {self.name} sent nothing within {self.timeouts.first_byte:g}s")
        except UpstreamError:
            self._failures += 1
            raise
        try:
            yield response
        finally:
            with trio.CancelScope(shield=True):
                await response.aclose()

    async def read(self, response: httpx.Response) -> bytes:
        """The whole (small) response body, errors mapped."""
        with map_errors(self.name):
            return await response.aread()

    async def chunks(self, response: httpx.Response) -> AsyncGenerator[bytes, None]:
        """The response body as it arrives (already-arrived pieces joined), transport errors mapped.

        Use under ``contextlib.aclosing``.
        """
        with map_errors(self.name):
            async for chunk in response.stream:  # type: ignore[union-attr]
                yield chunk


class Upstreams:
    """All providers of one config, by name."""

    def __init__(
        self,
        providers: Mapping[str, Provider],
        codecs: Mapping[Dialect, UpstreamCodec],
        timeouts: Timeouts,
        transport: Http1Transport,
        health: Health,
    ) -> None:
        self._by_name = {
            name: Upstream(name, spec, codecs[spec.dialect], timeouts, transport, health)
            for name, spec in providers.items()
        }

    def __getitem__(self, name: str) -> Upstream:
        return self._by_name[name]

    def statistics(self) -> dict[str, UpstreamStatistics]:
        return {name: upstream.statistics() for name, upstream in self._by_name.items()}
