"""Third-party-like avatar models, made in the tests with pygltflib: the shapes real exports come
in (centimetre FBX exports, origins far from the feet, Z-up, Mixamo skins, no skin at all, very
tall or wide). Each knows where its head is, in its own glTF scene coordinates, so a browser
test can check that the widget frames it fully in view."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pygltflib

Box = tuple[tuple[float, float, float], tuple[float, float, float]]


@dataclass
class SampleModel:
    name: str
    glb: bytes
    head: Box  # (min, max) in the glTF scene's coordinates

    def head_corners(self) -> list[list[float]]:
        (x0, y0, z0), (x1, y1, z1) = self.head
        return [[x, y, z] for x in (x0, x1) for y in (y0, y1) for z in (z0, z1)]


def box_vertices(lo, hi) -> tuple[np.ndarray, np.ndarray]:
    (x0, y0, z0), (x1, y1, z1) = lo, hi
    pos = np.array([[x, y, z] for x in (x0, x1) for y in (y0, y1) for z in (z0, z1)], dtype=np.float32)
    # the six faces of a box whose corner i has bits (x, y, z) = (i>>2, i>>1, i) & 1
    quads = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    idx = np.array([i for a, b, c, d in quads for i in (a, b, c, a, c, d)], dtype=np.uint16)
    return pos, idx


@dataclass
class _Builder:
    gltf: pygltflib.GLTF2 = field(default_factory=lambda: pygltflib.GLTF2(
        asset=pygltflib.Asset(version="2.0", generator="avatarchat tests"), scene=0,
        scenes=[pygltflib.Scene(nodes=[])]))
    blob: bytearray = field(default_factory=bytearray)

    def accessor(self, array: np.ndarray, kind: str, min_max: bool = False) -> int:
        while len(self.blob) % 4:
            self.blob.append(0)
        data = array.tobytes()
        self.gltf.bufferViews.append(pygltflib.BufferView(buffer=0, byteOffset=len(self.blob), byteLength=len(data)))
        self.blob.extend(data)
        component = {np.dtype(np.float32): pygltflib.FLOAT, np.dtype(np.uint16): pygltflib.UNSIGNED_SHORT,
                     np.dtype(np.uint8): pygltflib.UNSIGNED_BYTE}[array.dtype]
        flat = array.reshape(len(array), -1)
        self.gltf.accessors.append(pygltflib.Accessor(
            bufferView=len(self.gltf.bufferViews) - 1, componentType=component, count=len(array), type=kind,
            min=flat.min(axis=0).tolist() if min_max else None, max=flat.max(axis=0).tolist() if min_max else None))
        return len(self.gltf.accessors) - 1

    def mesh(self, boxes: list[tuple], *, joints: list[int] | None = None) -> int:
        """One mesh of boxes; with ``joints``, each box is skinned wholly to its joint index."""
        positions, indices, joint_of = [], [], []
        for n, (lo, hi, *joint) in enumerate(boxes):
            pos, idx = box_vertices(lo, hi)
            indices.append(idx + 8 * n)
            positions.append(pos)
            joint_of += [joint[0] if joint else 0] * 8
        attributes = pygltflib.Attributes(POSITION=self.accessor(np.concatenate(positions), "VEC3", min_max=True))
        if joints is not None:
            j = np.zeros((len(joint_of), 4), dtype=np.uint8)
            j[:, 0] = joint_of
            w = np.zeros((len(joint_of), 4), dtype=np.float32)
            w[:, 0] = 1.0
            attributes.JOINTS_0 = self.accessor(j, "VEC4")
            attributes.WEIGHTS_0 = self.accessor(w, "VEC4")
        self.gltf.meshes.append(pygltflib.Mesh(primitives=[pygltflib.Primitive(
            attributes=attributes, indices=self.accessor(np.concatenate(indices).astype(np.uint16), "SCALAR"))]))
        return len(self.gltf.meshes) - 1

    def node(self, name: str, *, parent: int | None = None, **kwargs) -> int:
        self.gltf.nodes.append(pygltflib.Node(name=name, **kwargs))
        index = len(self.gltf.nodes) - 1
        if parent is None:
            self.gltf.scenes[0].nodes.append(index)
        else:
            self.gltf.nodes[parent].children.append(index)
        return index

    def glb(self) -> bytes:
        self.gltf.buffers.append(pygltflib.Buffer(byteLength=len(self.blob)))
        self.gltf.set_binary_blob(bytes(self.blob))
        return b"".join(self.gltf.save_to_bytes())


def _scaled(box, k: float, offset=(0.0, 0.0, 0.0)):
    lo, hi = box
    return (tuple(v * k + o for v, o in zip(lo, offset)), tuple(v * k + o for v, o in zip(hi, offset)))


# A person in metres, Y up, facing +Z, feet on y=0: legs, torso, arms, a head an eighth tall.
PERSON = {
    "Legs": ((-0.2, 0.0, -0.12), (0.2, 0.9, 0.12)),
    "Torso": ((-0.24, 0.9, -0.14), (0.24, 1.5, 0.14)),
    "Arms": ((-0.85, 1.35, -0.06), (0.85, 1.47, 0.06)),
    "Neck": ((-0.06, 1.5, -0.06), (0.06, 1.58, 0.06)),
    "Head": ((-0.1, 1.58, -0.11), (0.1, 1.8, 0.11)),
}


def rigid_person(name: str, *, scale: float = 1.0, offset=(0.0, 0.0, 0.0), head_name: str = "Head",
                 parts: dict | None = None) -> SampleModel:
    """One mesh node per part, no skin, the head on a node called ``head_name``."""
    b = _Builder()
    root = b.node("Armature")
    head = None
    for part, box in (parts or PERSON).items():
        lo, hi = _scaled(box, scale, offset)
        b.node(head_name if part == "Head" else part, parent=root, mesh=b.mesh([(lo, hi)]))
        if part == "Head":
            head = (lo, hi)
    return SampleModel(name, b.glb(), head)


def centimetre_export() -> SampleModel:
    """An FBX export in centimetres: 180 units tall."""
    return rigid_person("centimetres", scale=100.0)


def offset_origin() -> SampleModel:
    """The origin 40 m below the feet and off to the side, a Blender-style head name."""
    return rigid_person("offset-origin", offset=(3.0, 40.0, -12.0), head_name="head_geo")


def z_up_no_skin() -> SampleModel:
    """Blender's axes left in: +Z up, facing -Y; plain meshes, no skin, a ``Head.001``."""
    b = _Builder()
    root = b.node("Scene Collection")
    head = None
    for part, (lo, hi) in PERSON.items():
        # (x, y, z) -> (x, -z, y)
        zlo = (lo[0], -hi[2], lo[1])
        zhi = (hi[0], -lo[2], hi[1])
        b.node("Head.001" if part == "Head" else part, parent=root, mesh=b.mesh([(zlo, zhi)]))
        if part == "Head":
            head = (zlo, zhi)
    return SampleModel("z-up-no-skin", b.glb(), head)


def very_wide() -> SampleModel:
    """Wings eight metres across on a person-sized body."""
    parts = {**PERSON, "Arms": ((-4.0, 1.2, -0.05), (4.0, 1.45, 0.05))}
    return rigid_person("very-wide", parts=parts)


def very_tall() -> SampleModel:
    """A twelve-metre tower of a character with a small head on top."""
    parts = {"Legs": ((-0.4, 0.0, -0.4), (0.4, 11.5, 0.4)),
             "Head": ((-0.15, 11.5, -0.15), (0.15, 11.85, 0.15))}
    return rigid_person("very-tall", parts=parts)


def mixamo_skinned() -> SampleModel:
    """A Mixamo-style rig: one skinned mesh, bones ``mixamorig:Hips`` ... ``mixamorig:Head`` and
    ``mixamorig:HeadTop_End``; the head's vertices follow ``mixamorig:Head``."""
    b = _Builder()
    root = b.node("Armature")
    chain = [("mixamorig:Hips", (0.0, 0.9, 0.0)), ("mixamorig:Spine", (0.0, 0.2, 0.0)),
             ("mixamorig:Neck", (0.0, 0.4, 0.0)), ("mixamorig:Head", (0.0, 0.08, 0.0)),
             ("mixamorig:HeadTop_End", (0.0, 0.22, 0.0))]
    joints, parent, world_y = [], root, 0.0
    world = []
    for name, translation in chain:
        parent = b.node(name, parent=parent, translation=list(translation))
        joints.append(parent)
        world_y += translation[1]
        world.append(world_y)
    inverse_binds = np.array([np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, -y, 0, 1]], dtype=np.float32)
                              for y in world], dtype=np.float32).reshape(len(world), 16)
    b.gltf.skins.append(pygltflib.Skin(joints=joints, skeleton=joints[0],
                                       inverseBindMatrices=b.accessor(inverse_binds, "MAT4")))
    boxes = [(*PERSON["Legs"], 0), (*PERSON["Torso"], 1), (*PERSON["Arms"], 1), (*PERSON["Neck"], 2),
             (*PERSON["Head"], 3)]
    b.node("Body", mesh=b.mesh(boxes, joints=joints), skin=0)
    return SampleModel("mixamo-skinned", b.glb(), PERSON["Head"])


def third_party_models() -> list[SampleModel]:
    return [centimetre_export(), offset_origin(), z_up_no_skin(), very_wide(), very_tall(), mixamo_skinned()]
