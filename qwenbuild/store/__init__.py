"""The store: the cache folder and everything in it (see `store.py` for the layout)."""

from .location import cache_root, find_repo_root
from .locks import OutputLock
from .records import KeyMemo, LastBuildRecord, PendingTask, StatCache
from .store import (
    RECORD_KINDS,
    Claim,
    ClaimState,
    Liveness,
    RecordKind,
    Store,
    StoredImage,
    open_store,
)

__all__ = ["RECORD_KINDS", "Claim", "ClaimState", "KeyMemo", "LastBuildRecord", "Liveness",
           "OutputLock", "PendingTask", "RecordKind", "StatCache", "Store", "StoredImage",
           "cache_root", "find_repo_root", "open_store"]
