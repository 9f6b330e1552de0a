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


def with_node_chain(data: bytes, count: int) -> bytes:
    """``count`` more nodes, each the only child of the one before: the deepest tree there is.
    Edited as JSON, so a 100k-node file is made in a fraction of a second."""
    import json

    doc = json.loads(json_of(data))
    first = len(doc["nodes"])
    doc["nodes"].extend({"name": f"link{i}", "children": [first + i + 1]} for i in range(count - 1))
    doc["nodes"].append({"name": f"link{count - 1}"})
    doc["scenes"][0]["nodes"].append(first)
    return with_json(data, json.dumps(doc, separators=(",", ":")).encode())


def with_zero_accessor(data: bytes, count: int) -> bytes:
    """An accessor with no buffer view (all zeros to a loader) claiming ``count`` VEC3 floats,
    used as a mesh's positions."""
    import json

    doc = json.loads(json_of(data))
    doc["accessors"].append({"componentType": 5126, "type": "VEC3", "count": count})
    doc["meshes"][0]["primitives"][0]["attributes"]["POSITION"] = len(doc["accessors"]) - 1
    return with_json(data, json.dumps(doc, separators=(",", ":")).encode())
