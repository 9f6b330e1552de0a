"""Checks a binary glTF (.glb) the way the widget will load it, and describes what it holds.

The container is checked byte by byte here (header, chunk layout, lengths), because a loader
that reads past a short chunk is how a truncated upload slips through; the JSON is then parsed
and checked with pygltflib (the maintained glTF library), and every index the widget's loader
will follow (nodes, meshes, accessors, buffer views, samplers) is checked to be in range, so
a model that passes cannot make three.js read past its buffer or loop over its node tree.

Limits keep a model cheap enough for a phone: bytes, nodes, triangles, textures, and what an
accessor makes the loader allocate. Counts are checked on the raw JSON before anything walks
or converts it, and every walk is linear, so a hostile file is refused in milliseconds; the
service still runs this in a worker process with a memory ceiling and a deadline
(``common.isolation``).
"""
from __future__ import annotations

import hashlib
import json
import struct
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pygltflib
from pygltflib import validator as gltf_validator

GLB_MAGIC = b"glTF"
CHUNK_JSON = 0x4E4F534A
CHUNK_BIN = 0x004E4942
HEADER_BYTES = 12
CHUNK_HEADER_BYTES = 8

# Extensions three.js's GLTFLoader handles (some with a decoder the widget ships); a file that
# *requires* any other would not display.
SUPPORTED_REQUIRED_EXTENSIONS = frozenset({
    "KHR_materials_unlit", "KHR_materials_emissive_strength", "KHR_materials_ior",
    "KHR_materials_specular", "KHR_materials_transmission", "KHR_materials_volume",
    "KHR_materials_clearcoat", "KHR_materials_sheen", "KHR_materials_iridescence",
    "KHR_materials_anisotropy", "KHR_texture_transform", "KHR_mesh_quantization",
    "KHR_draco_mesh_compression", "EXT_meshopt_compression", "KHR_texture_basisu",
    "EXT_texture_webp", "EXT_texture_avif",
})

_COMPONENT_BYTES = {5120: 1, 5121: 1, 5122: 2, 5123: 2, 5125: 4, 5126: 4}
_TYPE_COMPONENTS = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT2": 4, "MAT3": 9, "MAT4": 16}


@dataclass(frozen=True)
class Limits:
    max_bytes: int = 25 * 1024 * 1024
    max_nodes: int = 1000
    max_triangles: int = 300_000
    max_textures: int = 32
    max_animations: int = 200
    # the JSON chunk describes the model; its data lives in the BIN chunk
    max_json_bytes: int = 8 * 1024 * 1024
    # every other top-level list (accessors, buffer views, meshes, materials...); pygltflib
    # converts about a thousand items a second, so this also bounds the time a check takes
    max_items: int = 10_000
    # what one accessor, and all of them, make the widget's loader allocate (an accessor
    # without a buffer view is all zeros, however large its count says it is)
    max_accessor_bytes: int = 64 * 1024 * 1024
    max_total_accessor_bytes: int = 256 * 1024 * 1024


@dataclass
class Clip:
    name: str
    duration_s: float
    channels: int


@dataclass
class MorphTargets:
    mesh: str
    names: list[str]


@dataclass
class ModelInfo:
    """What a valid model holds; stored with the avatar and shown to the tenant."""
    size_bytes: int
    sha256: str
    nodes: int
    meshes: int
    triangles: int
    textures: int
    materials: int
    clips: list[Clip] = field(default_factory=list)
    morph_targets: list[MorphTargets] = field(default_factory=list)
    generator: str | None = None
    # a node that opens the mouth when rotated (lip-sync falls back to it without visemes)
    jaw: str | None = None

    @property
    def clip_names(self) -> list[str]:
        return [c.name for c in self.clips]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelInfo":
        data = dict(data)
        data["clips"] = [Clip(**c) for c in data.get("clips", [])]
        data["morph_targets"] = [MorphTargets(**m) for m in data.get("morph_targets", [])]
        return cls(**data)


class InvalidModel(ValueError):
    """Why a file is refused: ``code`` for programs, ``message`` for people."""

    def __init__(self, code: str, message: str, details: Any = None, *, status: int = 422):
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details
        self.status = status

    def __reduce__(self):  # it travels back from the validation worker process
        return _invalid_model, (self.code, self.message, self.details, self.status)


def _invalid_model(code: str, message: str, details: Any, status: int) -> InvalidModel:
    return InvalidModel(code, message, details, status=status)


def clip_name(animation: pygltflib.Animation, index: int) -> str:
    # three.js's GLTFLoader names an unnamed animation this way; the map must use the same name
    return animation.name or f"animation_{index}"


def _chunks(data: bytes) -> tuple[bytes, bytes | None]:
    """The JSON and BIN chunks of a GLB, after checking the container layout."""
    if len(data) < HEADER_BYTES:
        raise InvalidModel("not_gltf", "the file is not a binary glTF (.glb): it is too short", status=415)
    magic, version, length = struct.unpack_from("<4sII", data, 0)
    if magic != GLB_MAGIC:
        hint = " (it looks like a .gltf JSON file: export as .glb)" if data.lstrip()[:1] == b"{" else ""
        raise InvalidModel("not_gltf", f"the file is not a binary glTF (.glb){hint}", status=415)
    if version != 2:
        raise InvalidModel("unsupported_version", f"glTF container version {version} is not supported; use glTF 2.0")
    if length != len(data):
        code = "truncated" if length > len(data) else "trailing_bytes"
        raise InvalidModel(code, f"the header says {length} bytes but the file has {len(data)}: "
                           + ("it is truncated" if length > len(data) else "extra bytes follow it"),
                           {"declared_bytes": length, "actual_bytes": len(data)})
    offset = HEADER_BYTES
    chunks: list[tuple[int, bytes]] = []
    while offset < length:
        if offset + CHUNK_HEADER_BYTES > length:
            raise InvalidModel("truncated", "a chunk header is cut off", {"offset": offset})
        chunk_length, chunk_type = struct.unpack_from("<II", data, offset)
        start = offset + CHUNK_HEADER_BYTES
        if start + chunk_length > length:
            raise InvalidModel("truncated", "a chunk runs past the end of the file",
                               {"offset": offset, "chunk_bytes": chunk_length})
        if chunk_length % 4:
            raise InvalidModel("bad_chunk_layout", "chunk lengths must be multiples of 4", {"offset": offset})
        chunks.append((chunk_type, data[start:start + chunk_length]))
        offset = start + chunk_length
    if not chunks or chunks[0][0] != CHUNK_JSON:
        raise InvalidModel("bad_chunk_layout", "the first chunk must be the JSON chunk")
    bins = [body for kind, body in chunks[1:] if kind == CHUNK_BIN]
    if any(kind == CHUNK_JSON for kind, _ in chunks[1:]) or len(bins) > 1 or \
            (bins and chunks[1][0] != CHUNK_BIN):
        raise InvalidModel("bad_chunk_layout", "a GLB holds one JSON chunk, then at most one BIN chunk")
    return chunks[0][1], bins[0] if bins else None


_COUNTED = ("accessors", "bufferViews", "buffers", "meshes", "materials", "images", "samplers", "skins",
            "cameras", "scenes")


def _check_counts(doc: dict, limits: Limits) -> None:
    """Refuse by counting before anything walks or converts the lists."""
    nodes = doc.get("nodes") or []
    if isinstance(nodes, list) and len(nodes) > limits.max_nodes:
        raise InvalidModel("too_many_nodes", f"the model has {len(nodes)} nodes; the limit is {limits.max_nodes}",
                           {"nodes": len(nodes), "max_nodes": limits.max_nodes})
    textures = doc.get("textures") or []
    if isinstance(textures, list) and len(textures) > limits.max_textures:
        raise InvalidModel("too_many_textures",
                           f"the model has {len(textures)} textures; the limit is {limits.max_textures}",
                           {"textures": len(textures), "max_textures": limits.max_textures})
    animations = doc.get("animations") or []
    if isinstance(animations, list) and len(animations) > limits.max_animations:
        raise InvalidModel("too_many_animations",
                           f"the model has {len(animations)} animations; the limit is {limits.max_animations}")
    for name in _COUNTED:
        items = doc.get(name) or []
        if isinstance(items, list) and len(items) > limits.max_items:
            raise InvalidModel("too_complex", f"the model has {len(items)} {name}; the limit is {limits.max_items}",
                               {name: len(items), "max": limits.max_items})


def _parse_json(raw: bytes, limits: Limits) -> tuple[dict, pygltflib.GLTF2]:
    if len(raw) > limits.max_json_bytes:
        raise InvalidModel("too_complex", f"the JSON chunk is larger than {limits.max_json_bytes} bytes",
                           {"json_bytes": len(raw), "max_json_bytes": limits.max_json_bytes})
    try:
        doc = json.loads(raw.decode("utf-8").rstrip(" \x00"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise InvalidModel("bad_json", "the JSON chunk is not valid JSON", str(exc)[:200]) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("asset"), dict):
        raise InvalidModel("bad_json", "the JSON chunk has no 'asset' object")
    version = str(doc["asset"].get("version", ""))
    if not version.startswith("2."):
        raise InvalidModel("unsupported_version", f"asset.version is {version!r}; use glTF 2.0")
    _check_counts(doc, limits)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            gltf = pygltflib.GLTF2.from_dict(doc, infer_missing=True)
            gltf_validator.validate(gltf)
    except InvalidModel:
        raise
    except Exception as exc:  # noqa: BLE001 - any schema problem pygltflib finds is a bad file
        raise InvalidModel("bad_gltf", "the glTF JSON does not follow the glTF 2.0 schema", repr(exc)[:300]) from None
    return doc, gltf


def _index(value: Any, count: int, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < count:
        raise InvalidModel("bad_reference", f"{what} refers to a missing item ({value!r})")
    return value


def _check_buffers(gltf: pygltflib.GLTF2, bin_chunk: bytes | None, limits: Limits) -> None:
    sizes: list[int] = []
    for i, buffer in enumerate(gltf.buffers):
        if buffer.uri is not None:
            # the widget loads one self-contained file; an external URI would fetch from anywhere
            raise InvalidModel("external_reference", "buffers must be embedded in the .glb, not linked",
                               {"buffer": i})
        if i != 0 or bin_chunk is None:
            raise InvalidModel("bad_reference", "only the first buffer may be the BIN chunk", {"buffer": i})
        if buffer.byteLength is None or buffer.byteLength > len(bin_chunk):
            raise InvalidModel("truncated", "the BIN chunk is shorter than the buffer it holds",
                               {"declared_bytes": buffer.byteLength, "bin_bytes": len(bin_chunk)})
        sizes.append(buffer.byteLength)
    for i, view in enumerate(gltf.bufferViews):
        b = _index(view.buffer, len(sizes), f"bufferViews[{i}].buffer")
        end = (view.byteOffset or 0) + (view.byteLength or 0)
        if end > sizes[b]:
            raise InvalidModel("bad_reference", f"bufferViews[{i}] runs past the end of its buffer")
    total = 0
    for i, acc in enumerate(gltf.accessors):
        if acc.type not in _TYPE_COMPONENTS or acc.componentType not in _COMPONENT_BYTES:
            raise InvalidModel("bad_gltf", f"accessors[{i}] has an unknown type")
        if not isinstance(acc.count, int) or acc.count < 1:
            raise InvalidModel("bad_gltf", f"accessors[{i}].count must be at least 1")
        element = _COMPONENT_BYTES[acc.componentType] * _TYPE_COMPONENTS[acc.type]
        if acc.bufferView is not None:
            view = gltf.bufferViews[_index(acc.bufferView, len(gltf.bufferViews), f"accessors[{i}].bufferView")]
            stride = view.byteStride or element
            needed = (acc.byteOffset or 0) + stride * (acc.count - 1) + element
            if needed > (view.byteLength or 0):
                raise InvalidModel("bad_reference", f"accessors[{i}] reads past the end of its buffer view")
        # what the loader allocates for it; without a buffer view it is all zeros (or sparse),
        # however large its count says it is
        allocated = acc.count * element
        if allocated > limits.max_accessor_bytes:
            raise InvalidModel("too_large_accessor", f"accessors[{i}] would take {allocated} bytes in the browser; "
                               f"the limit is {limits.max_accessor_bytes}",
                               {"accessor": i, "count": acc.count, "bytes": allocated})
        total += allocated
        if total > limits.max_total_accessor_bytes:
            raise InvalidModel("too_large_accessor", "the accessors would take more than "
                               f"{limits.max_total_accessor_bytes} bytes in the browser")
        _check_sparse(gltf, acc, i, element)
    for i, image in enumerate(gltf.images):
        if image.uri is not None and not image.uri.startswith("data:"):
            raise InvalidModel("external_reference", "images must be embedded in the .glb, not linked",
                               {"image": i})
        if image.bufferView is not None:
            _index(image.bufferView, len(gltf.bufferViews), f"images[{i}].bufferView")


def _check_sparse(gltf: pygltflib.GLTF2, acc, i: int, element: int) -> None:
    sparse = acc.sparse
    if sparse is None:
        return
    if not isinstance(sparse.count, int) or not 1 <= sparse.count <= acc.count:
        raise InvalidModel("bad_gltf", f"accessors[{i}].sparse.count must be between 1 and the accessor's count")
    for part, width in ((sparse.indices, _COMPONENT_BYTES.get(getattr(sparse.indices, "componentType", None), 4)),
                        (sparse.values, element)):
        if part is None:
            raise InvalidModel("bad_gltf", f"accessors[{i}].sparse needs indices and values")
        view = gltf.bufferViews[_index(part.bufferView, len(gltf.bufferViews), f"accessors[{i}].sparse")]
        if (part.byteOffset or 0) + width * sparse.count > (view.byteLength or 0):
            raise InvalidModel("bad_reference", f"accessors[{i}].sparse reads past the end of its buffer view")


def _check_nodes(gltf: pygltflib.GLTF2) -> None:
    """Each node has at most one parent and every node hangs from a root: linear time."""
    n = len(gltf.nodes)
    has_parent = [False] * n
    for i, node in enumerate(gltf.nodes):
        if node.mesh is not None:
            _index(node.mesh, len(gltf.meshes), f"nodes[{i}].mesh")
        if node.skin is not None:
            _index(node.skin, len(gltf.skins), f"nodes[{i}].skin")
        for child in node.children or []:
            _index(child, n, f"nodes[{i}].children")
            if has_parent[child] or child == i:
                raise InvalidModel("bad_node_tree", f"node {child} has more than one parent")
            has_parent[child] = True
    # with one parent each, a node that no walk down from a root reaches sits on a cycle
    reached = 0
    stack = [i for i in range(n) if not has_parent[i]]
    while stack:
        node = stack.pop()
        reached += 1
        stack.extend(gltf.nodes[node].children or [])
    if reached != n:
        raise InvalidModel("bad_node_tree", "the node hierarchy has a cycle")
    for s, scene in enumerate(gltf.scenes):
        for root in scene.nodes or []:
            _index(root, n, f"scenes[{s}].nodes")
    if gltf.scene is not None:
        _index(gltf.scene, len(gltf.scenes), "scene")


def _triangles(gltf: pygltflib.GLTF2) -> int:
    total = 0
    for m, mesh in enumerate(gltf.meshes):
        if not mesh.primitives:
            raise InvalidModel("bad_gltf", f"meshes[{m}] has no primitives")
        for primitive in mesh.primitives:
            raw = primitive.attributes
            raw = raw if isinstance(raw, dict) else vars(raw)
            attributes = {k: v for k, v in raw.items() if v is not None}
            if "POSITION" not in attributes:
                raise InvalidModel("bad_gltf", f"a primitive of meshes[{m}] has no POSITION")
            for name, accessor in attributes.items():
                _index(accessor, len(gltf.accessors), f"meshes[{m}] attribute {name}")
            if primitive.indices is not None:
                count = gltf.accessors[_index(primitive.indices, len(gltf.accessors), f"meshes[{m}].indices")].count
            else:
                count = gltf.accessors[attributes["POSITION"]].count
            mode = 4 if primitive.mode is None else primitive.mode
            if mode == 4:
                total += count // 3
            elif mode in (5, 6):
                total += max(count - 2, 0)
            if primitive.material is not None:
                _index(primitive.material, len(gltf.materials), f"meshes[{m}].material")
    return total


def _accessor_floats(gltf: pygltflib.GLTF2, bin_chunk: bytes | None, index: int) -> np.ndarray | None:
    acc = gltf.accessors[index]
    if acc.bufferView is None or bin_chunk is None or acc.componentType != 5126 or acc.type != "SCALAR":
        return None
    view = gltf.bufferViews[acc.bufferView]
    start = (view.byteOffset or 0) + (acc.byteOffset or 0)
    stride = view.byteStride or 4
    raw = np.frombuffer(bin_chunk, dtype=np.uint8, count=stride * (acc.count - 1) + 4, offset=start)
    return np.ndarray((acc.count,), dtype="<f4", buffer=raw.tobytes(), strides=(stride,))


def _clips(gltf: pygltflib.GLTF2, bin_chunk: bytes | None) -> list[Clip]:
    clips = []
    for a, animation in enumerate(gltf.animations):
        samplers = animation.samplers or []
        if not animation.channels:
            raise InvalidModel("bad_animation", f"animation {clip_name(animation, a)!r} has no channels")
        for channel in animation.channels:
            _index(channel.sampler, len(samplers), f"animations[{a}].channels.sampler")
            if channel.target is None or channel.target.path not in ("translation", "rotation", "scale", "weights"):
                raise InvalidModel("bad_animation", f"animations[{a}] targets an unknown property")
            if channel.target.node is not None:
                _index(channel.target.node, len(gltf.nodes), f"animations[{a}].channels.target.node")
        duration = 0.0
        for s, sampler in enumerate(samplers):
            _index(sampler.input, len(gltf.accessors), f"animations[{a}].samplers[{s}].input")
            _index(sampler.output, len(gltf.accessors), f"animations[{a}].samplers[{s}].output")
            times = gltf.accessors[sampler.input]
            if times.max:
                duration = max(duration, float(times.max[0]))
            else:
                values = _accessor_floats(gltf, bin_chunk, sampler.input)
                if values is not None and values.size:
                    duration = max(duration, float(values.max()))
        clips.append(Clip(clip_name(animation, a), round(duration, 4), len(animation.channels)))
    return clips


def _morph_targets(gltf: pygltflib.GLTF2) -> list[MorphTargets]:
    found = []
    for m, mesh in enumerate(gltf.meshes):
        count = max((len(p.targets or []) for p in mesh.primitives or []), default=0)
        if not count:
            continue
        names = list((mesh.extras or {}).get("targetNames") or []) if isinstance(mesh.extras, dict) else []
        names = [str(n) for n in names[:count]] + [f"target_{i}" for i in range(len(names), count)]
        found.append(MorphTargets(mesh.name or f"mesh_{m}", names))
    return found


def _jaw(gltf: pygltflib.GLTF2) -> str | None:
    """The first node named like a jaw (``Jaw``, ``mixamorig:Jaw``, ``CC_Base_JawRoot``), not
    the end markers some exporters add."""
    for node in gltf.nodes:
        name = (node.name or "").lower()
        if "jaw" in name and not name.endswith("_end") and "end" not in name.rsplit("jaw", 1)[-1]:
            return node.name
    return None


def validate_glb(data: bytes, limits: Limits = Limits()) -> ModelInfo:
    """Check ``data`` is a .glb the widget can show within ``limits``; raise ``InvalidModel`` if not."""
    if len(data) > limits.max_bytes:
        raise InvalidModel("too_large", f"the file is larger than {limits.max_bytes} bytes",
                           {"bytes": len(data), "max_bytes": limits.max_bytes}, status=413)
    json_chunk, bin_chunk = _chunks(data)
    doc, gltf = _parse_json(json_chunk, limits)
    unsupported = sorted(set(doc.get("extensionsRequired") or []) - SUPPORTED_REQUIRED_EXTENSIONS)
    if unsupported:
        raise InvalidModel("unsupported_extension", "the file requires extensions the widget cannot load",
                           {"extensions": unsupported})
    _check_buffers(gltf, bin_chunk, limits)
    _check_nodes(gltf)
    if not gltf.meshes or not any(node.mesh is not None for node in gltf.nodes):
        raise InvalidModel("no_mesh", "the model has no mesh: there is nothing to show")
    triangles = _triangles(gltf)
    if triangles > limits.max_triangles:
        raise InvalidModel("too_many_triangles",
                           f"the model has {triangles} triangles; the limit is {limits.max_triangles}",
                           {"triangles": triangles, "max_triangles": limits.max_triangles})
    return ModelInfo(
        size_bytes=len(data), sha256=hashlib.sha256(data).hexdigest(), nodes=len(gltf.nodes),
        meshes=len(gltf.meshes), triangles=triangles, textures=len(gltf.textures),
        materials=len(gltf.materials), clips=_clips(gltf, bin_chunk), morph_targets=_morph_targets(gltf),
        generator=(doc["asset"].get("generator") or None), jaw=_jaw(gltf))


def validate_glb_file(path: str, limits: Limits = Limits()) -> ModelInfo:
    """``validate_glb`` of a received upload, read in the validation worker (not in the service)."""
    with open(path, "rb") as f:
        data = f.read(limits.max_bytes + 1)
    return validate_glb(data, limits)
