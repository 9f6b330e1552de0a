"""The .glb files on the volume: ``<AVATAR_STORAGE_DIR>/<avatar id>.glb`` and ``default.glb``.

Writes go to a temporary file in the same directory, are flushed to disk, then renamed over
the final name, so a reader (or a crash) never sees half a model.
"""
from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path

DEFAULT_FILENAME = "default.glb"


class AvatarStore:
    def __init__(self, root: Path):
        self.root = Path(root)

    def path(self, avatar_id: uuid.UUID) -> Path:
        return self.root / f"{avatar_id}.glb"

    @property
    def default_path(self) -> Path:
        return self.root / DEFAULT_FILENAME

    def _write(self, path: Path, data: bytes) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        try:
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)

    def write_default(self, data: bytes) -> Path:
        self._write(self.default_path, data)
        return self.default_path

    def incoming(self) -> Path:
        """Where an upload is received: a temporary file in the store, so memory holds none of
        it, and keeping it is a rename (``adopt``)."""
        self.root.mkdir(parents=True, exist_ok=True)
        return self.root / f".incoming.{uuid.uuid4().hex}.tmp"

    async def adopt(self, avatar_id: uuid.UUID, incoming: Path) -> Path:
        path = self.path(avatar_id)

        def move() -> None:
            with open(incoming, "rb") as f:
                os.fsync(f.fileno())
            os.replace(incoming, path)
        await asyncio.to_thread(move)
        return path

    async def delete(self, avatar_id: uuid.UUID) -> None:
        await asyncio.to_thread(self.path(avatar_id).unlink, missing_ok=True)

    def ids(self) -> set[uuid.UUID]:
        """The avatar ids that have a file (for tests and clean-ups)."""
        found = set()
        for path in self.root.glob("*.glb"):
            try:
                found.add(uuid.UUID(path.stem))
            except ValueError:
                continue
        return found
