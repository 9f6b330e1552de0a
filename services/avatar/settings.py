from pathlib import Path

from pydantic import Field

from common.settings import settings_for
from services.avatar.validation import Limits

REPO_ROOT = Path(__file__).resolve().parents[2]
_DEFAULTS = Limits()


class Settings(settings_for("avatar")):
    # the volume that holds the .glb files (uploads, and the generated default avatar)
    storage_dir: Path = Field(REPO_ROOT / "var" / "avatars", validation_alias="AVATAR_STORAGE_DIR")
    max_bytes: int = Field(_DEFAULTS.max_bytes, validation_alias="AVATAR_MAX_BYTES")
    max_nodes: int = Field(_DEFAULTS.max_nodes, validation_alias="AVATAR_MAX_NODES")
    max_triangles: int = Field(_DEFAULTS.max_triangles, validation_alias="AVATAR_MAX_TRIANGLES")
    max_textures: int = Field(_DEFAULTS.max_textures, validation_alias="AVATAR_MAX_TEXTURES")
    max_avatars_per_tenant: int = Field(100, validation_alias="AVATAR_MAX_PER_TENANT")
    # an upload is checked in a worker process with these ceilings (a refused check is 422)
    validate_timeout_s: float = Field(20.0, validation_alias="AVATAR_VALIDATE_TIMEOUT")
    validate_memory_mb: int = Field(512, ge=64, validation_alias="AVATAR_VALIDATE_MEMORY_MB")

    @property
    def limits(self) -> Limits:
        return Limits(max_bytes=self.max_bytes, max_nodes=self.max_nodes, max_triangles=self.max_triangles,
                      max_textures=self.max_textures)
