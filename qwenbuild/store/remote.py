"""The team cache: the store's objects on S3-compatible object storage, through obstore.

Configured per repository: `[cache] remote = "s3://bucket/prefix"` in `qwenbuild.toml` at
the repository root, or `QWENBUILD_REMOTE_CACHE` (which wins); `[cache] mode = "read"` or
`QWENBUILD_REMOTE_MODE=read` (or `--remote read`) for a build that reads the team's images
and never writes. Endpoint and credentials come from the standard variables only
(`AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`,
`AWS_REGION`): never from a file qwenbuild reads or writes.

`ObjectBackend` implements the store's `Backend` on a bucket (names are the local cache's
names under the prefix). `Remote` is the policy around it: a build never fails because of
the team cache. An unreachable or failing remote is reported once and switched off for the
rest of the process (the build goes on with the local cache); a remote that refuses writes
is reported once and read from only. Only a configuration that cannot work (a bad URL, a
missing bucket, refused credentials) is an error, raised by `Remote.check()` before
anything is paid for.

obstore is imported on first use only: a local-only build never pays its import.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from ..errors import RemoteCacheError
from ..redact import redact

log = logging.getLogger(__name__)

CONFIG_FILE = "qwenbuild.toml"
URL_ENV = "QWENBUILD_REMOTE_CACHE"
MODE_ENV = "QWENBUILD_REMOTE_MODE"
#: The one object a `check()` reads: its absence is the expected answer.
PROBE = ".qwenbuild-probe"

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_PREFIX = re.compile(r"^[A-Za-z0-9._/-]*$")


class Access(StrEnum):
    """What a build may do with the team cache."""

    READ_WRITE = "read-write"
    READ = "read"
    OFF = "off"


@dataclass(frozen=True)
class RemoteConfig:
    """Where the team cache is and what this build may do with it."""

    bucket: str
    prefix: str
    access: Access
    #: Where the URL came from, for messages (`qwenbuild.toml`, `QWENBUILD_REMOTE_CACHE`).
    source: str

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    @property
    def writable(self) -> bool:
        return self.access == Access.READ_WRITE


def _access(value: Any, where: str) -> Access:
    try:
        return Access(str(value).strip().lower())
    except ValueError:
        raise RemoteCacheError(f"{where}: {value!r} is not a remote cache mode (use "
                               "'read-write', 'read' or 'off')") from None


def parse_url(url: str, where: str) -> tuple[str, str]:
    """(bucket, prefix) of `s3://bucket[/prefix]`. Raises RemoteCacheError, naming `where`
    and never showing a password the URL may hold."""
    shown = redact(url)
    expected = "expected s3://BUCKET or s3://BUCKET/PREFIX"
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        raise RemoteCacheError(f"{where}: {shown!r} is not a URL ({expected})") from None
    if parts.scheme.lower() != "s3":
        raise RemoteCacheError(f"{where}: {shown!r} is not an s3:// URL ({expected}; the "
                               "endpoint goes in AWS_ENDPOINT_URL)")
    if "@" in parts.netloc:
        raise RemoteCacheError(f"{where}: {shown!r} holds credentials; put them in "
                               "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, never in a URL")
    if parts.query or parts.fragment:
        raise RemoteCacheError(f"{where}: {shown!r} has a query or fragment ({expected})")
    bucket = parts.netloc
    if not _BUCKET.match(bucket) or ".." in bucket:
        raise RemoteCacheError(f"{where}: {bucket!r} is not a valid bucket name (3 to 63 "
                               "lower-case letters, digits, dots and hyphens)")
    prefix = parts.path.strip("/")
    segments = prefix.split("/") if prefix else []
    if not _PREFIX.match(prefix) or any(s in ("", ".", "..") for s in segments):
        raise RemoteCacheError(f"{where}: the prefix {prefix!r} must be plain folder names "
                               "(letters, digits, '.', '_', '-', separated by '/')")
    return bucket, prefix


def _read_config_file(path: Path) -> dict[str, Any]:
    """The [cache] table of qwenbuild.toml (empty when the file is absent)."""
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise RemoteCacheError(f"{path}: cannot read it ({exc})") from None
    try:
        data = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, RecursionError) as exc:
        raise RemoteCacheError(f"{path}: not valid TOML: {exc}") from None
    unknown = sorted(set(data) - {"cache"})
    if unknown:
        raise RemoteCacheError(f"{path}: unknown table {unknown[0]!r} (qwenbuild.toml holds "
                               "[cache] only)")
    cache = data.get("cache", {})
    if not isinstance(cache, dict):
        raise RemoteCacheError(f"{path}: cache must be a table ([cache])")
    unknown = sorted(set(cache) - {"remote", "mode"})
    if unknown:
        raise RemoteCacheError(f"{path}: [cache] {unknown[0]}: unknown key (known: remote, "
                               "mode)")
    if "remote" in cache and not isinstance(cache["remote"], str):
        raise RemoteCacheError(f"{path}: [cache] remote must be a string such as "
                               "\"s3://bucket/prefix\"")
    return cache


def remote_config(repo_root: Path, access: str | None = None) -> RemoteConfig | None:
    """The team cache of the repository at `repo_root`, or None when it has none or it is
    switched off. `access` is the command line's `--remote` (it wins over the
    environment, which wins over qwenbuild.toml). Raises RemoteCacheError (exit 2)."""
    config_path = repo_root / CONFIG_FILE
    table = _read_config_file(config_path)
    env_url = os.environ.get(URL_ENV, "").strip()
    if env_url:
        url, where = env_url, URL_ENV
    elif "remote" in table:
        url, where = str(table["remote"]), f"{config_path}: [cache] remote"
    else:
        url, where = "", ""
    if access is not None:
        mode = _access(access, "--remote")
    elif os.environ.get(MODE_ENV, "").strip():
        mode = _access(os.environ[MODE_ENV], MODE_ENV)
    elif "mode" in table:
        mode = _access(table["mode"], f"{config_path}: [cache] mode")
    else:
        mode = Access.READ_WRITE
    if mode == Access.OFF:
        return None
    if not url:
        if access is not None:
            raise RemoteCacheError(f"--remote {access}: no team cache is configured (set "
                                   f"[cache] remote in {CONFIG_FILE} at the repository root, "
                                   f"or {URL_ENV})")
        return None
    bucket, prefix = parse_url(url, where)
    return RemoteConfig(bucket, prefix, mode, where)


# -- the bucket ---------------------------------------------------------------------------


class RemoteFault(Exception):
    """A request to the team cache failed. The message is redacted and one line long."""


class Unavailable(RemoteFault):
    """The remote cannot be reached or failed (network, server error, timeout)."""


class Refused(RemoteFault):
    """The remote refused the credentials, or this operation to them."""


class NoBucket(RemoteFault):
    """The bucket does not exist."""


def _short(exc: BaseException) -> str:
    """What an obstore error says, redacted and bounded: the S3 error's code and message
    when the server sent them (`AccessDenied: Access Denied`), else its first line without
    any XML; cut at a word, never mid-word (its full text holds the server's XML and a
    debug dump)."""
    full = str(exc).strip()
    code = re.search(r"<Code>([^<]{1,100})</Code>", full)
    if code:
        message = re.search(r"<Message>([^<]{1,300})</Message>", full)
        text = code.group(1) + (f": {message.group(1)}" if message else "")
    else:
        text = re.sub(r"<\?xml[^>]*\?>", "", full).strip()
        text = text.splitlines()[0].strip() if text else type(exc).__name__
    text = redact(text)
    if len(text) > 300:
        text = text[:300].rsplit(" ", 1)[0].rstrip(" ,;:-(") + " ..."
    return text


def _endpoint() -> str | None:
    """AWS_ENDPOINT_URL, checked: http(s)://host[:port] without credentials."""
    raw = os.environ.get("AWS_ENDPOINT_URL", "").strip()
    if not raw:
        return None
    try:
        parts = urlsplit(raw)
        parts.port  # noqa: B018 (raises ValueError on a bad port)
    except ValueError:
        raise RemoteCacheError(f"AWS_ENDPOINT_URL: {redact(raw)!r} is not a URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RemoteCacheError(f"AWS_ENDPOINT_URL: {redact(raw)!r} must be "
                               "http(s)://HOST[:PORT]")
    if "@" in parts.netloc:
        raise RemoteCacheError("AWS_ENDPOINT_URL holds credentials; put them in "
                               "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY instead")
    return raw.rstrip("/")


def credentials_present() -> bool:
    return bool(os.environ.get("AWS_ACCESS_KEY_ID", "").strip()
                and os.environ.get("AWS_SECRET_ACCESS_KEY", "").strip())


class ObjectBackend:
    """The store's `Backend` on a bucket: the same names as the local cache, under the
    prefix. Raises RemoteFault subclasses; never retries for long (a build must not hang
    on a dead remote: two quick retries, short timeouts)."""

    def __init__(self, config: RemoteConfig) -> None:
        import obstore
        from obstore.store import S3Store

        self._obstore = obstore
        endpoint = _endpoint()
        settings: dict[str, Any] = {
            "access_key_id": os.environ["AWS_ACCESS_KEY_ID"].strip(),
            "secret_access_key": os.environ["AWS_SECRET_ACCESS_KEY"].strip(),
            "region": os.environ.get("AWS_REGION", "").strip()
            or os.environ.get("AWS_DEFAULT_REGION", "").strip() or "us-east-1",
        }
        token = os.environ.get("AWS_SESSION_TOKEN", "").strip()
        if token:
            settings["token"] = token
        if endpoint:
            settings["endpoint"] = endpoint
        client: dict[str, Any] = {"connect_timeout": timedelta(seconds=3),
                                  "timeout": timedelta(seconds=60)}
        if endpoint and endpoint.startswith("http://"):
            client["allow_http"] = True
        retry: dict[str, Any] = {"max_retries": 2, "retry_timeout": timedelta(seconds=10),
                                 "backoff": {"init_backoff": timedelta(milliseconds=100),
                                             "max_backoff": timedelta(seconds=2),
                                             "base": 2}}
        self.store = S3Store(config.bucket, prefix=config.prefix or None,
                             config=settings,  # type: ignore[arg-type]
                             client_options=client,  # type: ignore[arg-type]
                             retry_config=retry)  # type: ignore[arg-type]

    def _call(self, what: str, name: str, fn: Callable[[], _T]) -> _T:
        from obstore import exceptions as ox

        try:
            return fn()
        except FileNotFoundError as exc:
            if "NoSuchBucket" in str(exc):
                raise NoBucket(f"{what} {name}: the bucket does not exist") from None
            raise
        except (ox.PermissionDeniedError, ox.UnauthenticatedError) as exc:
            raise Refused(f"{what} {name}: {_short(exc)}") from None
        except (ox.AlreadyExistsError, ox.PreconditionError):
            raise
        except (ox.BaseError, OSError, RuntimeError, ValueError) as exc:
            text = str(exc)
            if "NoSuchBucket" in text:
                raise NoBucket(f"{what} {name}: the bucket does not exist") from None
            if "InvalidAccessKeyId" in text or "SignatureDoesNotMatch" in text:
                raise Refused(f"{what} {name}: {_short(exc)}") from None
            raise Unavailable(f"{what} {name}: {_short(exc)}") from None

    # -- Backend --------------------------------------------------------------------------

    def read(self, name: str) -> bytes | None:
        found = self.read_tagged(name)
        return found[0] if found else None

    def read_tagged(self, name: str) -> tuple[bytes, str | None] | None:
        """The bytes under `name` and their entity tag, or None."""
        def get() -> tuple[bytes, str | None]:
            result = self._obstore.get(self.store, name)
            tag = result.meta.get("e_tag")
            return bytes(result.bytes()), tag

        try:
            return self._call("reading", name, get)
        except FileNotFoundError:
            return None

    def exists(self, name: str) -> bool:
        try:
            self._call("looking up", name, lambda: self._obstore.head(self.store, name))
        except FileNotFoundError:
            return False
        return True

    def write(self, name: str, data: bytes) -> None:
        self._call("writing", name, lambda: self._obstore.put(self.store, name, data))

    def create(self, name: str, data: bytes) -> bool:
        from obstore import exceptions as ox

        try:
            self._call("creating", name,
                       lambda: self._obstore.put(self.store, name, data, mode="create"))
        except (ox.AlreadyExistsError, ox.PreconditionError):
            return False
        return True

    def replace(self, name: str, data: bytes, tag: str | None) -> bool:
        """Write `data` under `name` only if the object there still has entity tag `tag`
        (If-Match): whether it did."""
        from obstore import exceptions as ox

        try:
            self._call("replacing", name, lambda: self._obstore.put(
                self.store, name, data, mode={"e_tag": tag}))
        except (ox.AlreadyExistsError, ox.PreconditionError, FileNotFoundError):
            return False
        return True

    def delete(self, name: str) -> None:
        try:
            self._call("deleting", name, lambda: self._obstore.delete(self.store, name))
        except FileNotFoundError:
            pass

    def list(self, prefix: str) -> Iterator[tuple[str, int]]:
        def chunks() -> list[list[dict[str, Any]]]:
            return list(self._obstore.list(self.store, prefix.rstrip("/") + "/"))

        found = [(str(meta["path"]), int(meta["size"]))
                 for chunk in self._call("listing", prefix, chunks) for meta in chunk]
        yield from sorted(found)


_T = TypeVar("_T")


class Remote:
    """The team cache as the store uses it: calls that never raise a fault (they answer
    "nothing there" and switch the remote off, once, with a warning), and `check()`."""

    def __init__(self, config: RemoteConfig,
                 backend_factory: Callable[[RemoteConfig], Any] = ObjectBackend) -> None:
        self.config = config
        self._factory = backend_factory
        self._backend: Any = None
        self._lock = threading.Lock()
        self._state = threading.Lock()  # `down` and `writable` change once, one warning each
        self._checked = False
        self.down = False
        self.writable = config.writable
        #: Requests made (reads, writes, lists, leases), for `bench/`.
        self.calls = 0

    @property
    def usable(self) -> bool:
        return not self.down

    def _get_backend(self) -> Any:
        with self._lock:
            if self._backend is None:
                self._backend = self._factory(self.config)
            return self._backend

    def check(self) -> bool:
        """Make sure the team cache can be used, once per process: True when it can.
        Raises RemoteCacheError for what only its owner can fix (a bad endpoint, a
        missing bucket, refused credentials); an unreachable remote is a warning."""
        with self._lock:
            if self._checked:
                return not self.down
            self._checked = True
        config = self.config
        if not credentials_present():
            self._switch_off(f"the team cache {config.url} ({config.source}) needs "
                             "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment; "
                             "going on with the local cache only")
            return False
        try:
            _endpoint()  # a bad AWS_ENDPOINT_URL is an error, not a fault
            backend = self._get_backend()
        except RemoteCacheError:
            self.down = True
            raise
        except Exception as exc:  # obstore refusing its configuration (a bad region, ...)
            self.down = True
            raise RemoteCacheError(f"the team cache {config.url} ({config.source}) cannot be "
                                   f"set up: {_short(exc)}") from None
        try:
            self.calls += 1
            backend.read(PROBE)
        except NoBucket:
            self.down = True  # no warning: the error says it
            raise RemoteCacheError(
                f"the team cache {config.url} ({config.source}): the bucket {config.bucket!r} "
                "does not exist at the endpoint (create it, or fix the URL)") from None
        except Refused as exc:
            self.down = True
            raise RemoteCacheError(
                f"the team cache {config.url} ({config.source}) refused the credentials in "
                f"AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY ({exc}); they need to read and "
                "list the bucket") from None
        except Unavailable as exc:
            self._switch_off(f"the team cache {config.url} is unreachable ({exc}); going on "
                             "with the local cache only")
            return False
        return True

    def _switch_off(self, message: str) -> None:
        with self._state:
            if self.down:
                return
            self.down = True
        log.warning("%s", redact(message))

    def call(self, fn: Callable[[Any], _T], default: _T, write: bool = False) -> _T:
        """`fn(backend)`, or `default` when the remote is off or the call fails (the first
        failure switches the remote off for the rest of the process, with one warning; a
        refused write makes it read-only)."""
        if self.down or (write and not self.writable):
            return default
        if not self._checked:
            try:
                if not self.check():
                    return default
            except RemoteCacheError as exc:  # found mid-build: a warning, not a failure
                self._switch_off(str(exc))
                return default
        try:
            self.calls += 1
            return fn(self._get_backend())
        except Refused as exc:
            if write:
                with self._state:
                    first, self.writable = self.writable, False
                if first:
                    log.warning("%s", redact(
                        f"the team cache {self.config.url} refused a write ({exc}); reading "
                        "from it only (use --remote read, or credentials that may write)"))
            else:
                self._switch_off(f"the team cache {self.config.url} refused a read ({exc}); "
                                 "going on with the local cache only")
            return default
        except RemoteFault as exc:
            self._switch_off(f"the team cache {self.config.url} failed ({exc}); going on "
                             "with the local cache only")
            return default
