"""The default avatar: a friendly round robot built from primitives, with one clip per behaviour.

Every chatbot shows it until its tenant uploads a model. It is generated (never committed, no
third-party asset): ``python -m scripts.make_default_avatar`` writes it, the avatar service
writes it into its storage directory at start-up when missing, and the tests generate it.

The character is a node hierarchy (no skinning): Avatar > Hips > (legs, Spine > (torso, head,
arms)), where every part is a unit sphere or cylinder scaled on a child "mesh" node, so the
joints (pivot nodes) can be rotated without shearing what hangs below them. Clips animate the
pivots' translation, rotation and scale, sampled at 24 fps from the functions below. Each clip
is named exactly like its behaviour (``behaviours.BEHAVIOURS``).

Axes are glTF's: +Y up, the character faces +Z, its left hand is on +X. Feet on y=0, about
1.6 units tall.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pygltflib

from services.avatar.behaviours import BEHAVIOURS

GENERATOR = "avatarchat default avatar generator"
FPS = 24

Vec3 = tuple[float, float, float]
Track = Callable[[float], Vec3]


# --- maths -----------------------------------------------------------------------------------

def quat_from_euler(x_deg: float, y_deg: float, z_deg: float) -> np.ndarray:
    """XYZ order, like three.js's default Euler: the matrix is Rx @ Ry @ Rz. Returns x, y, z, w."""
    def axis(i: int, deg: float) -> np.ndarray:
        q = np.zeros(4)
        q[i] = math.sin(math.radians(deg) / 2)
        q[3] = math.cos(math.radians(deg) / 2)
        return q
    return quat_mul(quat_mul(axis(0, x_deg), axis(1, y_deg)), axis(2, z_deg))


def quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ax, ay, az, aw = a
    bx, by, bz, bw = b
    return np.array([aw * bx + ax * bw + ay * bz - az * by,
                     aw * by - ax * bz + ay * bw + az * bx,
                     aw * bz + ax * by - ay * bx + az * bw,
                     aw * bw - ax * bx - ay * by - az * bz])


def smoothstep(x: float) -> float:
    x = min(max(x, 0.0), 1.0)
    return x * x * (3 - 2 * x)


def env(t: float, duration: float, rise: float = 0.3, fall: float = 0.35) -> float:
    """0 -> 1 over ``rise`` seconds, hold, 1 -> 0 over the last ``fall`` seconds."""
    return smoothstep(t / rise) * smoothstep((duration - t) / fall)


def cycle(t: float, duration: float, cycles: float, phase: float = 0.0) -> float:
    """A sine with a whole number of cycles per clip, so looping clips join seamlessly."""
    return math.sin(2 * math.pi * cycles * t / duration + phase)


def srgb(hex_colour: str, alpha: float = 1.0) -> list[float]:
    """glTF colour factors are linear; designers think in sRGB hex."""
    rgb = [int(hex_colour[i:i + 2], 16) / 255 for i in (1, 3, 5)]
    lin = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]
    return [round(c, 5) for c in lin] + [alpha]


# --- geometry --------------------------------------------------------------------------------

def uv_sphere(segments: int = 32, rings: int = 18) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A unit sphere: positions, normals, triangle indices (counter-clockwise seen from outside)."""
    theta = np.linspace(0, math.pi, rings + 1)
    phi = np.linspace(0, 2 * math.pi, segments + 1)
    t, p = np.meshgrid(theta, phi, indexing="ij")
    pos = np.stack([np.sin(t) * np.sin(p), np.cos(t), np.sin(t) * np.cos(p)], axis=-1).reshape(-1, 3)
    idx = []
    for r in range(rings):
        for s in range(segments):
            a = r * (segments + 1) + s
            b = a + segments + 1
            if r != 0:
                idx.append((a, b, a + 1))
            if r != rings - 1:
                idx.append((a + 1, b, b + 1))
    return pos.astype(np.float32), pos.astype(np.float32), np.array(idx, dtype=np.uint16).reshape(-1)


def cylinder(segments: int = 20) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A unit cylinder (radius 1, y from -1 to 1) with caps."""
    pos, nor, idx = [], [], []
    angles = np.linspace(0, 2 * math.pi, segments + 1)
    for a in angles:  # side: two rings
        for y in (-1.0, 1.0):
            pos.append((math.sin(a), y, math.cos(a)))
            nor.append((math.sin(a), 0.0, math.cos(a)))
    for s in range(segments):
        i = 2 * s
        idx += [i, i + 2, i + 1, i + 1, i + 2, i + 3]
    for y, normal in ((1.0, 1.0), (-1.0, -1.0)):  # caps: a centre and a ring
        centre = len(pos)
        pos.append((0.0, y, 0.0))
        nor.append((0.0, normal, 0.0))
        for a in angles:
            pos.append((math.sin(a), y, math.cos(a)))
            nor.append((0.0, normal, 0.0))
        for s in range(segments):
            a, b = centre + 1 + s, centre + 2 + s
            idx += [centre, a, b] if normal > 0 else [centre, b, a]
    return (np.array(pos, dtype=np.float32), np.array(nor, dtype=np.float32),
            np.array(idx, dtype=np.uint16))


# --- the character ---------------------------------------------------------------------------

MATERIALS = {
    # name: (base colour sRGB, metallic, roughness, emissive sRGB or None)
    "body": ("#3BB8C4", 0.05, 0.45, None),
    "belly": ("#F4ECD8", 0.0, 0.6, None),
    "skin": ("#FFE2C6", 0.0, 0.55, None),
    "eye_white": ("#FFFFFF", 0.0, 0.25, None),
    "pupil": ("#1E2235", 0.0, 0.2, None),
    "mouth": ("#7A2636", 0.0, 0.6, None),
    "cheek": ("#FF8FA3", 0.0, 0.7, None),
    "legs": ("#2E5C8A", 0.05, 0.55, None),
    "shoes": ("#2B303B", 0.1, 0.5, None),
    "metal": ("#A7B1BC", 0.7, 0.3, None),
    "glow": ("#FF6B6B", 0.0, 0.4, "#FF6B6B"),
}


@dataclass
class Part:
    """A node. ``shape`` (sphere/cylinder) with ``size`` makes a child mesh node, so the
    node's own scale stays free for animation."""
    name: str
    parent: str | None
    translation: Vec3 = (0.0, 0.0, 0.0)
    rotation: Vec3 = (0.0, 0.0, 0.0)  # euler degrees, XYZ
    shape: str | None = None
    size: Vec3 = (1.0, 1.0, 1.0)
    offset: Vec3 = (0.0, 0.0, 0.0)  # of the mesh node inside the part
    material: str | None = None


def _mirror(parts: list[Part]) -> list[Part]:
    """The right-hand side of left-hand parts (names ending in L, x negated)."""
    out = []
    for p in parts:
        name = p.name[:-1] + "R"
        parent = p.parent[:-1] + "R" if p.parent and p.parent.endswith("L") else p.parent
        tx, ty, tz = p.translation
        rx, ry, rz = p.rotation
        ox, oy, oz = p.offset
        out.append(Part(name, parent, (-tx, ty, tz), (rx, -ry, -rz), p.shape, p.size, (-ox, oy, oz), p.material))
    return out


def character() -> list[Part]:
    left = [
        Part("LegL", "Hips", (0.11, 0.0, 0.0), shape="sphere", size=(0.075, 0.2, 0.075),
             offset=(0.0, -0.19, 0.0), material="legs"),
        Part("FootL", "LegL", (0.0, -0.37, 0.035), shape="sphere", size=(0.085, 0.05, 0.12), material="shoes"),
        Part("ArmL", "Spine", (0.27, 0.42, 0.0), (0.0, 0.0, 8.0), shape="sphere", size=(0.06, 0.17, 0.06),
             offset=(0.0, -0.15, 0.0), material="body"),
        Part("HandL", "ArmL", (0.0, -0.33, 0.0), shape="sphere", size=(0.065, 0.065, 0.065), material="skin"),
        Part("ThumbL", "HandL", (-0.02, 0.0, 0.05), shape="sphere", size=(0.022, 0.022, 0.042),
             offset=(0.0, 0.0, 0.012), material="skin"),
        Part("EarL", "Head", (0.285, 0.25, 0.0), shape="sphere", size=(0.04, 0.085, 0.085), material="body"),
        Part("EyeL", "Head", (0.1, 0.29, 0.232), shape="sphere", size=(0.055, 0.07, 0.035), material="eye_white"),
        Part("PupilL", "EyeL", (0.0, -0.005, 0.027), shape="sphere", size=(0.03, 0.04, 0.016), material="pupil"),
        Part("GlintL", "PupilL", (0.011, 0.016, 0.013), shape="sphere", size=(0.009, 0.009, 0.005),
             material="eye_white"),
        Part("CheekL", "Head", (0.175, 0.17, 0.2), (0.0, 35.0, 0.0), shape="sphere", size=(0.045, 0.028, 0.012),
             material="cheek"),
    ]
    return [
        Part("Avatar", None),
        Part("Hips", "Avatar", (0.0, 0.42, 0.0)),
        Part("Spine", "Hips", (0.0, 0.0, 0.0)),
        Part("Torso", "Spine", (0.0, 0.24, 0.0), shape="sphere", size=(0.26, 0.3, 0.2), material="body"),
        Part("Belly", "Torso", (0.0, -0.03, 0.14), shape="sphere", size=(0.17, 0.19, 0.07), material="belly"),
        Part("Head", "Spine", (0.0, 0.5, 0.0)),
        Part("Face", "Head", (0.0, 0.25, 0.0), shape="sphere", size=(0.3, 0.27, 0.27), material="skin"),
        Part("Mouth", "Head", (0.0, 0.145, 0.243), (-15.0, 0.0, 0.0), shape="sphere", size=(0.055, 0.018, 0.02),
             material="mouth"),
        Part("Antenna", "Head", (0.0, 0.5, 0.0), shape="cylinder", size=(0.012, 0.07, 0.012),
             offset=(0.0, 0.07, 0.0), material="metal"),
        Part("AntennaTip", "Antenna", (0.0, 0.16, 0.0), shape="sphere", size=(0.042, 0.042, 0.042), material="glow"),
        *left,
        *_mirror(left),
    ]


# --- the clips -------------------------------------------------------------------------------

@dataclass
class ClipSpec:
    name: str
    duration: float
    # (part, "rotation" | "translation" | "scale") -> offset from rest: euler degrees added,
    # translation added, scale multiplied
    tracks: dict[tuple[str, str], Track] = field(default_factory=dict)

    def rot(self, part: str, fn: Track) -> "ClipSpec":
        self.tracks[(part, "rotation")] = fn
        return self

    def move(self, part: str, fn: Track) -> "ClipSpec":
        self.tracks[(part, "translation")] = fn
        return self

    def scale(self, part: str, fn: Track) -> "ClipSpec":
        self.tracks[(part, "scale")] = fn
        return self


def _both(clip: ClipSpec, kind: str, part: str, fn: Track, mirror: bool = True) -> None:
    """The same motion on the L and R part; rotations about y and z mirror."""
    getattr(clip, kind)(part + "L", fn)
    if kind == "rot" and mirror:
        getattr(clip, kind)(part + "R", lambda t: (lambda v: (v[0], -v[1], -v[2]))(fn(t)))
    elif kind == "move" and mirror:
        getattr(clip, kind)(part + "R", lambda t: (lambda v: (-v[0], v[1], v[2]))(fn(t)))
    else:
        getattr(clip, kind)(part + "R", fn)


def _breathing(clip: ClipSpec, cycles: int = 1) -> None:
    d = clip.duration
    clip.move("Spine", lambda t: (0.0, 0.008 * cycle(t, d, cycles), 0.0))
    clip.scale("Torso", lambda t: (1 + 0.01 * cycle(t, d, cycles), 1 + 0.015 * cycle(t, d, cycles), 1.0))


def _wave_arm(clip: ClipSpec, side: str, *, lift: float = 128.0, swing: float = 18.0, waves: float = 3.0,
              rise: float = 0.35, fall: float = 0.4) -> None:
    """Arm up beside the head, forearm-less wave from the shoulder, hand waggling."""
    d = clip.duration
    sign = 1 if side == "L" else -1
    # a small positive x tilt brings a raised arm forward, beside the face rather than behind it
    clip.rot("Arm" + side, lambda t: (8 * env(t, d, rise, fall), 0.0,
                                      sign * (lift + swing * cycle(t, d, waves)) * env(t, d, rise, fall)))
    clip.rot("Hand" + side, lambda t: (0.0, 0.0, sign * 20 * cycle(t, d, waves, 0.8) * env(t, d, rise, fall)))


def clips() -> list[ClipSpec]:
    out: dict[str, ClipSpec] = {}

    def clip(name: str, duration: float) -> ClipSpec:
        out[name] = ClipSpec(name, duration)
        return out[name]

    # idle: breathing bob, a slow look around, the antenna wobbling (loops)
    c = clip("idle", 4.0)
    _breathing(c)
    c.rot("Head", lambda t: (1.5 * cycle(t, 4, 1, 1.0), 4 * cycle(t, 4, 1), 2 * cycle(t, 4, 1, 0.5)))
    c.rot("Antenna", lambda t: (0.0, 0.0, 6 * cycle(t, 4, 2)))
    _both(c, "rot", "Arm", lambda t: (2 * cycle(t, 4, 1), 0.0, 2 * cycle(t, 4, 1, 0.4)))

    # blink: quick and short, meant to be played over the others now and then
    c = clip("blink", 0.3)
    _both(c, "scale", "Eye", lambda t: (1.0, 1 - 0.92 * math.sin(math.pi * t / 0.3) ** 2, 1.0))

    # talk: the mouth opens and closes irregularly (two rhythms), the head follows (loops)
    c = clip("talk", 2.0)
    _breathing(c, 2)
    # the mouth itself follows the words through its viseme shapes (VISEME_SHAPES), so the
    # loop moves only the head and arms; a model without visemes keeps a talking mouth here
    c.rot("Head", lambda t: (3 * cycle(t, 2, 2), 3 * cycle(t, 2, 1), 2 * cycle(t, 2, 1, 0.7)))
    c.rot("ArmR", lambda t: (-14 - 8 * cycle(t, 2, 2), 0.0, 6))
    c.rot("ArmL", lambda t: (-6 - 4 * cycle(t, 2, 1, 2.0), 0.0, -2))

    # listen: head tilted, leaning in, antenna perked (loops)
    c = clip("listen", 3.0)
    _breathing(c)
    c.rot("Head", lambda t: (5.0, -4.0, 11 + 2 * cycle(t, 3, 1)))
    c.rot("Spine", lambda t: (5.0, 0.0, 0.0))
    c.rot("Antenna", lambda t: (-12.0, 0.0, -8 + 4 * cycle(t, 3, 2)))

    # think: right hand to the chin, eyes up and aside (loops)
    c = clip("think", 3.0)
    _breathing(c)
    c.rot("ArmR", lambda t: (-132 + 3 * cycle(t, 3, 3), 0.0, 53.0))
    c.rot("Head", lambda t: (-10.0, -5.0, -6 + 2 * cycle(t, 3, 1)))
    _both(c, "move", "Pupil", lambda t: (-0.008, 0.014, 0.0), mirror=False)
    c.rot("Antenna", lambda t: (0.0, 0.0, 10 * cycle(t, 3, 3)))

    # greet: a wave with a hop and a tilt of the head
    c = clip("greet", 2.2)
    _wave_arm(c, "R")
    c.move("Hips", lambda t: (0.0, 0.05 * max(0.0, math.sin(math.pi * t / 0.5)) if t < 0.5 else 0.0, 0.0))
    c.rot("Head", lambda t: (0.0, -6 * env(t, 2.2), 10 * env(t, 2.2)))
    _both(c, "scale", "Eye", lambda t: (1.0, 1 - 0.3 * env(t, 2.2), 1.0))

    # wave: just the arm
    c = clip("wave", 2.0)
    _wave_arm(c, "R")
    c.rot("Head", lambda t: (0.0, 0.0, 5 * env(t, 2.0)))

    # nod: yes, twice
    c = clip("nod", 1.2)
    c.rot("Head", lambda t: (16 * math.sin(2 * math.pi * t / 0.6) ** 2 * (1 if t < 1.2 else 0), 0.0, 0.0))

    # shake_head: no, three times, dying away
    c = clip("shake_head", 1.4)
    c.rot("Head", lambda t: (0.0, 24 * math.sin(2 * math.pi * 3 * t / 1.4) * (1 - t / 1.4), 0.0))
    c.rot("Antenna", lambda t: (0.0, 0.0, -10 * math.sin(2 * math.pi * 3 * t / 1.4 - 0.6) * (1 - t / 1.4)))

    # thumbs_up: right arm forward, the thumb grows, a little bounce
    c = clip("thumbs_up", 2.0)
    c.rot("ArmR", lambda t: (-72 * env(t, 2.0), 0.0, 22 * env(t, 2.0)))
    c.rot("HandR", lambda t: (0.0, -20 * env(t, 2.0), 0.0))
    c.scale("ThumbR", lambda t: (1.0, 1.0, 1 + 0.7 * env(t, 2.0, 0.5)))
    c.rot("Head", lambda t: (0.0, 0.0, 7 * env(t, 2.0)))
    c.move("Hips", lambda t: (0.0, 0.02 * max(0.0, cycle(t, 2.0, 2)) * env(t, 2.0), 0.0))
    _both(c, "scale", "Eye", lambda t: (1.0, 1 - 0.35 * env(t, 2.0), 1.0))

    # happy: bouncing, arms out, smiling eyes and a wide mouth
    c = clip("happy", 2.0)
    c.move("Hips", lambda t: (0.0, 0.05 * abs(cycle(t, 2.0, 2)) * env(t, 2.0, 0.15, 0.2), 0.0))
    _both(c, "rot", "Arm", lambda t: (0.0, 0.0, 28 * env(t, 2.0)))
    c.rot("Head", lambda t: (-4 * env(t, 2.0), 0.0, 8 * cycle(t, 2.0, 1) * env(t, 2.0)))
    _both(c, "scale", "Eye", lambda t: (1.0, 1 - 0.45 * env(t, 2.0), 1.0))
    c.scale("Mouth", lambda t: (1 + 0.5 * env(t, 2.0), 1 + 1.6 * env(t, 2.0), 1.0))
    c.rot("Antenna", lambda t: (0.0, 0.0, 15 * cycle(t, 2.0, 4) * env(t, 2.0)))

    # sad: head and shoulders drop, antenna droops, a small mouth
    c = clip("sad", 2.6)
    # enough to read as sad from the front, not so much the face disappears
    c.rot("Head", lambda t: (13 * env(t, 2.6, 0.5, 0.5), 0.0, -5 * env(t, 2.6, 0.5, 0.5)))
    c.rot("Spine", lambda t: (5 * env(t, 2.6, 0.5, 0.5), 0.0, 0.0))
    c.move("Spine", lambda t: (0.0, -0.025 * env(t, 2.6, 0.5, 0.5), 0.0))
    _both(c, "rot", "Arm", lambda t: (-10 * env(t, 2.6, 0.5, 0.5), 0.0, -7 * env(t, 2.6, 0.5, 0.5)))
    c.rot("Antenna", lambda t: (40 * env(t, 2.6, 0.6, 0.5), 0.0, 0.0))
    c.scale("Mouth", lambda t: (1 - 0.3 * env(t, 2.6), 1 - 0.3 * env(t, 2.6), 1.0))
    _both(c, "scale", "Eye", lambda t: (1.0, 1 - 0.3 * env(t, 2.6), 1.0))

    # surprised: eyes and mouth wide, a jump back, arms up
    c = clip("surprised", 1.6)
    _both(c, "scale", "Eye", lambda t: (1 + 0.3 * env(t, 1.6, 0.12), 1 + 0.35 * env(t, 1.6, 0.12), 1.0))
    c.scale("Mouth", lambda t: (1 - 0.3 * env(t, 1.6, 0.12), 1 + 3.5 * env(t, 1.6, 0.12), 1.0))
    c.move("Hips", lambda t: (0.0, 0.06 * math.sin(math.pi * t / 0.4) if t < 0.4 else 0.0,
                              -0.04 * env(t, 1.6, 0.2)))
    c.rot("Head", lambda t: (-10 * env(t, 1.6, 0.15), 0.0, 0.0))
    _both(c, "rot", "Arm", lambda t: (-25 * env(t, 1.6, 0.15), 0.0, 55 * env(t, 1.6, 0.15)))
    c.scale("Antenna", lambda t: (1.0, 1 + 0.35 * env(t, 1.6, 0.12), 1.0))

    # confused: head tilts one way then the other, left hand scratches the head
    c = clip("confused", 2.6)
    c.rot("Head", lambda t: (0.0, 6 * env(t, 2.6), 14 * cycle(t, 2.6, 1) * env(t, 2.6, 0.2, 0.3)))
    c.rot("ArmL", lambda t: (28 * env(t, 2.6), 0.0, (148 + 6 * cycle(t, 2.6, 6)) * env(t, 2.6, 0.4, 0.4)))
    c.rot("Antenna", lambda t: (0.0, 0.0, 25 * cycle(t, 2.6, 2)))
    _both(c, "move", "Pupil", lambda t: (0.008 * cycle(t, 2.6, 1) * env(t, 2.6), 0.006 * env(t, 2.6), 0.0),
          mirror=False)
    c.scale("Mouth", lambda t: (1 - 0.4 * env(t, 2.6), 1.0, 1.0))

    # laugh: head back, shoulders shaking, mouth open, eyes shut tight
    c = clip("laugh", 2.2)
    c.rot("Head", lambda t: ((-16 + 4 * cycle(t, 2.2, 8)) * env(t, 2.2, 0.2), 0.0, 0.0))
    c.move("Spine", lambda t: (0.0, 0.014 * cycle(t, 2.2, 8) * env(t, 2.2, 0.2), 0.0))
    c.rot("Spine", lambda t: (-5 * env(t, 2.2), 0.0, 0.0))
    c.scale("Mouth", lambda t: (1 + 0.3 * env(t, 2.2), 1 + (1.8 + 1.2 * cycle(t, 2.2, 8)) * env(t, 2.2, 0.2), 1.0))
    _both(c, "scale", "Eye", lambda t: (1.0, 1 - 0.75 * env(t, 2.2, 0.2), 1.0))
    _both(c, "rot", "Arm", lambda t: (-30 * env(t, 2.2), 0.0, -14 * env(t, 2.2)))

    # bow: a polite bow from the hips
    c = clip("bow", 2.4)
    c.rot("Spine", lambda t: (40 * env(t, 2.4, 0.6, 0.7), 0.0, 0.0))
    c.rot("Head", lambda t: (12 * env(t, 2.4, 0.6, 0.7), 0.0, 0.0))
    _both(c, "rot", "Arm", lambda t: (0.0, 0.0, -6 * env(t, 2.4, 0.6, 0.7)))

    # point: right arm straight forward, body turning with it
    c = clip("point", 2.0)
    c.rot("ArmR", lambda t: (-88 * env(t, 2.0, 0.35), 0.0, 4 * env(t, 2.0)))
    c.scale("ThumbR", lambda t: (1.0, 1.0, 1 - 0.5 * env(t, 2.0)))
    c.rot("Spine", lambda t: (0.0, -10 * env(t, 2.0), 0.0))
    c.rot("Head", lambda t: (-3 * env(t, 2.0), -8 * env(t, 2.0), 0.0))

    # shrug: shoulders up, arms out, head tilted
    c = clip("shrug", 1.8)
    _both(c, "move", "Arm", lambda t: (0.0, 0.045 * env(t, 1.8, 0.3, 0.4), 0.0))
    _both(c, "rot", "Arm", lambda t: (-30 * env(t, 1.8, 0.3, 0.4), 0.0, 32 * env(t, 1.8, 0.3, 0.4)))
    _both(c, "rot", "Hand", lambda t: (0.0, -40 * env(t, 1.8, 0.3, 0.4), 0.0))
    c.rot("Head", lambda t: (-4 * env(t, 1.8), 0.0, 12 * env(t, 1.8)))
    c.scale("Mouth", lambda t: (1 - 0.3 * env(t, 1.8), 1.0, 1.0))

    # celebrate: two jumps with both arms up, waving
    c = clip("celebrate", 2.4)
    c.move("Hips", lambda t: (0.0, 0.12 * max(0.0, math.sin(2 * math.pi * 2 * t / 2.4)) ** 0.8 if t > 0.2 else 0.0,
                              0.0))
    _both(c, "rot", "Arm", lambda t: (0.0, 0.0, (155 + 15 * cycle(t, 2.4, 4)) * env(t, 2.4, 0.25, 0.35)))
    c.rot("Head", lambda t: (-8 * env(t, 2.4), 0.0, 0.0))
    c.scale("Mouth", lambda t: (1 + 0.4 * env(t, 2.4), 1 + 2.5 * env(t, 2.4), 1.0))
    _both(c, "scale", "Eye", lambda t: (1.0, 1 - 0.5 * env(t, 2.4), 1.0))
    c.rot("Antenna", lambda t: (0.0, 0.0, 20 * cycle(t, 2.4, 6)))

    # goodbye: a slow wave with a nod
    c = clip("goodbye", 2.6)
    _wave_arm(c, "R", lift=135.0, swing=20.0, waves=2.0, rise=0.45, fall=0.5)
    c.rot("Head", lambda t: (8 * math.sin(math.pi * t / 2.6) ** 2, 0.0, 8 * env(t, 2.6)))
    c.rot("Spine", lambda t: (6 * env(t, 2.6, 0.5, 0.5), 0.0, 0.0))
    _both(c, "scale", "Eye", lambda t: (1.0, 1 - 0.3 * env(t, 2.6), 1.0))

    missing = set(BEHAVIOURS) - set(out)
    assert not missing, f"no clip for {missing}"
    return [out[name] for name in BEHAVIOURS]


# --- the mouth's viseme shapes ----------------------------------------------------------------

# The 15 Oculus visemes as morph targets of the mouth (a flattened unit sphere): how far it
# opens (height), widens and rounds (narrower, pushed forward). Named viseme_<name>, as Ready
# Player Me names them, so the widget drives the default avatar like any model that has them.
VISEME_SHAPES = {
    # name: (open, wide, round)
    "sil": (0.0, 0.0, 0.0), "PP": (-0.5, 0.05, 0.1), "FF": (0.5, 0.15, 0.0), "TH": (0.9, 0.1, 0.0),
    "DD": (1.2, 0.2, 0.0), "kk": (1.5, 0.1, 0.0), "CH": (1.1, -0.1, 0.6), "SS": (0.6, 0.45, 0.0),
    "nn": (1.0, 0.15, 0.0), "RR": (1.1, -0.05, 0.5), "aa": (3.4, 0.2, 0.0), "E": (2.2, 0.55, 0.0),
    "I": (1.4, 0.7, 0.0), "O": (2.6, -0.3, 0.8), "U": (1.4, -0.45, 1.1),
}


def viseme_targets(pos: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """(name, position displacements) for each viseme shape of a unit-sphere mouth."""
    out = []
    for name, (opening, wide, rounding) in VISEME_SHAPES.items():
        factor = np.array([1 + wide - 0.35 * rounding, 1 + opening, 1 + 1.2 * rounding], dtype=np.float32)
        moved = pos * factor
        moved[:, 1] -= 0.35 * opening  # the lower lip drops, the upper stays
        out.append((f"viseme_{name}", (moved - pos).astype(np.float32)))
    return out


# --- glTF output -----------------------------------------------------------------------------

class _Writer:
    """Accessors over one binary buffer, 4-byte aligned."""

    def __init__(self, gltf: pygltflib.GLTF2):
        self.gltf = gltf
        self.blob = bytearray()

    def accessor(self, array: np.ndarray, kind: str, *, target: int | None = None,
                 min_max: bool = False) -> int:
        data = array.tobytes()
        while len(self.blob) % 4:
            self.blob.append(0)
        self.gltf.bufferViews.append(pygltflib.BufferView(
            buffer=0, byteOffset=len(self.blob), byteLength=len(data), target=target))
        self.blob.extend(data)
        component = {np.dtype(np.float32): pygltflib.FLOAT, np.dtype(np.uint16): pygltflib.UNSIGNED_SHORT}[array.dtype]
        flat = array.reshape(len(array), -1)
        self.gltf.accessors.append(pygltflib.Accessor(
            bufferView=len(self.gltf.bufferViews) - 1, componentType=component, count=len(array), type=kind,
            min=flat.min(axis=0).tolist() if min_max else None,
            max=flat.max(axis=0).tolist() if min_max else None))
        return len(self.gltf.accessors) - 1


def build_gltf() -> pygltflib.GLTF2:
    gltf = pygltflib.GLTF2(asset=pygltflib.Asset(version="2.0", generator=GENERATOR), scene=0,
                           extras={"behaviours": list(BEHAVIOURS)})
    w = _Writer(gltf)

    material_index = {}
    for name, (colour, metallic, roughness, emissive) in MATERIALS.items():
        material_index[name] = len(gltf.materials)
        gltf.materials.append(pygltflib.Material(
            name=name, pbrMetallicRoughness=pygltflib.PbrMetallicRoughness(
                baseColorFactor=srgb(colour), metallicFactor=metallic, roughnessFactor=roughness),
            emissiveFactor=srgb(emissive)[:3] if emissive else None))

    geometry = {}
    # the mouth is small on screen: a coarser sphere keeps its 15 viseme shapes to ~25 KB
    mouth_sphere = uv_sphere(16, 10)
    for shape, (pos, nor, idx) in {"sphere": uv_sphere(), "cylinder": cylinder(), "mouth": mouth_sphere}.items():
        geometry[shape] = (w.accessor(pos, "VEC3", target=pygltflib.ARRAY_BUFFER, min_max=True),
                           w.accessor(nor, "VEC3", target=pygltflib.ARRAY_BUFFER),
                           w.accessor(idx, "SCALAR", target=pygltflib.ELEMENT_ARRAY_BUFFER))
    meshes = {}

    def mesh(shape: str, material: str) -> int:
        if material == "mouth":
            shape = "mouth"
        key = (shape, material)
        if key not in meshes:
            pos, nor, idx = geometry[shape]
            meshes[key] = len(gltf.meshes)
            primitive = pygltflib.Primitive(attributes=pygltflib.Attributes(POSITION=pos, NORMAL=nor), indices=idx,
                                            material=material_index[material])
            extras = None
            if material == "mouth":
                targets = viseme_targets(mouth_sphere[0])
                primitive.targets = [{"POSITION": w.accessor(delta, "VEC3", target=pygltflib.ARRAY_BUFFER,
                                                             min_max=True)} for _, delta in targets]
                extras = {"targetNames": [name for name, _ in targets]}
            gltf.meshes.append(pygltflib.Mesh(name=material if shape == material else f"{material}_{shape}",
                                              primitives=[primitive], extras=extras,
                                              weights=[0.0] * len(primitive.targets) if extras else None))
        return meshes[key]

    parts = character()
    node_index: dict[str, int] = {}
    rest: dict[str, Part] = {}
    for part in parts:
        node_index[part.name] = len(gltf.nodes)
        rest[part.name] = part
        gltf.nodes.append(pygltflib.Node(
            name=part.name, translation=list(part.translation),
            rotation=quat_from_euler(*part.rotation).tolist() if any(part.rotation) else None))
        if part.parent is not None:
            gltf.nodes[node_index[part.parent]].children.append(node_index[part.name])
        if part.shape:
            gltf.nodes[node_index[part.name]].children.append(len(gltf.nodes))
            gltf.nodes.append(pygltflib.Node(name=f"{part.name}_mesh", mesh=mesh(part.shape, part.material),
                                             translation=list(part.offset) if any(part.offset) else None,
                                             scale=list(part.size)))
    gltf.scenes.append(pygltflib.Scene(name="Avatar", nodes=[node_index["Avatar"]]))

    for spec in clips():
        frames = max(2, round(spec.duration * FPS) + 1)
        times = np.linspace(0.0, spec.duration, frames).astype(np.float32)
        time_accessor = w.accessor(times, "SCALAR", min_max=True)
        animation = pygltflib.Animation(name=spec.name)
        for (part_name, path), fn in spec.tracks.items():
            part = rest[part_name]
            values = [fn(float(t)) for t in times]
            if path == "rotation":
                out = np.array([quat_from_euler(*(np.add(part.rotation, v))) for v in values], dtype=np.float32)
                kind = "VEC4"
            elif path == "translation":
                out = np.array([np.add(part.translation, v) for v in values], dtype=np.float32)
                kind = "VEC3"
            else:
                out = np.array(values, dtype=np.float32)
                kind = "VEC3"
            animation.samplers.append(pygltflib.AnimationSampler(
                input=time_accessor, output=w.accessor(out, kind), interpolation="LINEAR"))
            animation.channels.append(pygltflib.AnimationChannel(
                sampler=len(animation.samplers) - 1,
                target=pygltflib.AnimationChannelTarget(node=node_index[part_name], path=path)))
        gltf.animations.append(animation)

    gltf.buffers.append(pygltflib.Buffer(byteLength=len(w.blob)))
    gltf.set_binary_blob(bytes(w.blob))
    return gltf


def build_glb() -> bytes:
    """The default avatar as .glb bytes (deterministic: same code, same bytes)."""
    return b"".join(build_gltf().save_to_bytes())


def write_default_avatar(path: Path) -> Path:
    """Write the default avatar to ``path`` atomically (a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(build_glb())
    tmp.replace(path)
    return path
