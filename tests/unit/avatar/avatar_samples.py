"""Good and bad .glb files for the avatar tests, made from the generated default avatar."""
from __future__ import annotations

import functools
import struct
from typing import Callable

import pygltflib

from services.avatar.default_avatar import build_glb


@functools.cache
def default_glb() -> bytes:
    return build_glb()


def mutate(data: bytes, change: Callable[[pygltflib.GLTF2], None]) -> bytes:
    gltf = pygltflib.GLTF2.load_from_bytes(data)
    change(gltf)
    return b"".join(gltf.save_to_bytes())


def without_meshes(data: bytes) -> bytes:
    def change(gltf):
        for node in gltf.nodes:
            node.mesh = None
        gltf.meshes = []
    return mutate(data, change)


def with_clip_names(data: bytes, names: list[str | None]) -> bytes:
    def change(gltf):
        gltf.animations = gltf.animations[:len(names)]
        for animation, name in zip(gltf.animations, names):
            animation.name = name
    return mutate(data, change)


def with_extra_nodes(data: bytes, count: int) -> bytes:
    def change(gltf):
        first = len(gltf.nodes)
        gltf.nodes.extend(pygltflib.Node(name=f"extra{i}") for i in range(count))
        gltf.scenes[0].nodes.extend(range(first, first + count))
    return mutate(data, change)


def with_json(data: bytes, raw_json: bytes) -> bytes:
    """The same BIN chunk behind another JSON chunk (padded with spaces, as the spec says)."""
    json_len = struct.unpack_from("<I", data, 12)[0]
    bin_part = data[20 + json_len:]
    raw_json += b" " * (-len(raw_json) % 4)
    body = struct.pack("<II", len(raw_json), 0x4E4F534A) + raw_json + bin_part
    return struct.pack("<4sII", b"glTF", 2, 12 + len(body)) + body


def json_of(data: bytes) -> bytes:
    json_len = struct.unpack_from("<I", data, 12)[0]
    return data[20:20 + json_len]
