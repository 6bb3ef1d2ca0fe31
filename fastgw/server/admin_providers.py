"""The provider-key endpoints of the admin API, routed by ``admin.py`` after the token check: the HTTP face of
``fastgw providers add-key|list-keys|remove-key``, through the same operations (``fastgw.governance.stored_keys``).

``POST /admin/providers/NAME/keys`` takes ``{"key": "..."}`` and answers 201 with the stored key's record
(provider, fingerprint, when); ``GET /admin/providers/NAME/keys`` and ``GET /admin/providers/keys`` list records;
``DELETE /admin/providers/NAME/keys/FINGERPRINT`` removes one (``{"provider", "fingerprint", "removed": true}``).
No answer, log line or audit row holds a key: errors name the provider and the fingerprint only. The worker that
answered rebuilds its routing state at once (its next request presents an added key, never a removed one); the
others at their next poll of the store's stamp (``Runtime.watch_provider_keys``).
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec
import trio

from fastgw.config import Config
from fastgw.errors import GatewayError, InvalidRequest, NotFound
from fastgw.governance import stored_keys
from fastgw.governance.audit import AuditLog
from fastgw.governance.secrets import AlreadyStored, MasterKeyError, NotStored, ProviderKeys, SecretsError, StoredKey
from fastgw.pipeline import JSON, Sink

_encode = msgspec.json.Encoder().encode


class NewProviderKey(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The ``POST /admin/providers/NAME/keys`` body."""

    key: str

    def __repr__(self) -> str:  # never the key, should this ever reach a log line or a traceback
        return "NewProviderKey(key=...)"


_new_key = msgspec.json.Decoder(NewProviderKey)


class Removed(msgspec.Struct, frozen=True, kw_only=True):
    """The ``DELETE /admin/providers/NAME/keys/FINGERPRINT`` answer."""

    provider: str
    fingerprint: str
    removed: bool = True


class ProvidersApi:
    """Serves the provider-key endpoints for one worker.

    Args:
        store: the data directory's encrypted provider keys (shared with the CLI and the other workers).
        log: the data directory's audit log.
        config: the current config (its providers and ``master_key_file``), read per request.
        changed: called after a key was added or removed (the worker rebuilds its routing state at once).
    """

    def __init__(
        self, store: ProviderKeys, log: AuditLog, config: Callable[[], Config], changed: Callable[[], object]
    ) -> None:
        self.store = store
        self.log = log
        self.config = config
        self.changed = changed

    @staticmethod
    def routes(method: str, path: str) -> bool:
        """Whether this API answers ``method path``."""
        parts = path.removeprefix("/admin/").split("/")
        if parts == ["providers", "keys"]:
            return method == "GET"
        if len(parts) == 3 and parts[0] == "providers" and parts[2] == "keys":
            return method in ("GET", "POST")
        return len(parts) == 4 and parts[0] == "providers" and parts[2] == "keys" and method == "DELETE"

    async def handle(self, method: str, path: str, body: bytes, actor: str, out: Sink) -> None:
        """Answer one request ``routes`` accepted.

        Raises:
            GatewayError: a bad body or key (400), an unknown provider or key (404), a key already stored (409), no
                usable master key (503).
        """
        parts = path.removeprefix("/admin/").split("/")
        config = self.config()
        try:
            if len(parts) == 2:
                await self._answer(out, 200, await trio.to_thread.run_sync(stored_keys.listed, config, self.store))
            elif method == "GET":
                rows = await trio.to_thread.run_sync(stored_keys.listed, config, self.store, parts[1])
                await self._answer(out, 200, rows)
            elif method == "POST":
                key = _decode(body)
                added = await trio.to_thread.run_sync(self._add, config, parts[1], key, actor)
                self.changed()
                await self._answer(out, 201, added)
            else:
                remove = stored_keys.remove
                await trio.to_thread.run_sync(remove, config, self.store, self.log, actor, parts[1], parts[3])
                self.changed()
                await out.respond(200, JSON, _encode(Removed(provider=parts[1], fingerprint=parts[3])))
        except NotStored as error:
            raise NotFound(str(error)) from None
        except AlreadyStored as error:
            raise InvalidRequest(str(error), status=409) from None
        except MasterKeyError as error:
            raise GatewayError(str(error), status=503) from None  # the gateway's setup, not the request, is at fault
        except SecretsError as error:
            raise InvalidRequest(str(error), param="key") from None

    def _add(self, config: Config, provider: str, key: str, actor: str) -> StoredKey:
        master = stored_keys.master_for(config, provider)
        return stored_keys.add(self.store, self.log, actor, provider, key, master)

    @staticmethod
    async def _answer(out: Sink, status: int, value: StoredKey | list[StoredKey]) -> None:
        await out.respond(status, JSON, _encode(value))


def _decode(body: bytes) -> str:
    try:
        return _new_key.decode(body).key
    except msgspec.DecodeError as error:
        # msgspec names the field and the expected type, never the value (the key could be in it)
        raise InvalidRequest(f'invalid request body: {error} (expected {{"key": "..."}})') from None
