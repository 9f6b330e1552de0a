"""Generate the default avatar: ``python -m scripts.make_default_avatar [path] [--preview sheet.png]``.

Writes a .glb (default: <AVATAR_STORAGE_DIR or var/avatars>/default.glb), checks it with the
same validator as uploads, and prints its clips. The avatar service also does this at start-up
when the file is missing or out of date; the model is build output, never committed.

``--preview`` renders a contact sheet of the model (every clip at its most expressive moment,
front view) with a small numpy rasteriser, to look at it without a browser.
"""
from __future__ import annotations

import argparse
import math
import os
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import pygltflib

from services.avatar.default_avatar import write_default_avatar
from services.avatar.storage import DEFAULT_FILENAME
from services.avatar.validation import validate_glb

REPO_ROOT = Path(__file__).resolve().parents[1]


# --- preview ---------------------------------------------------------------------------------

def _accessor(gltf: pygltflib.GLTF2, blob: bytes, index: int) -> np.ndarray:
    acc = gltf.accessors[index]
    view = gltf.bufferViews[acc.bufferView]
    dtype = {5126: np.float32, 5123: np.uint16, 5125: np.uint32}[acc.componentType]
    width = {"SCALAR": 1, "VEC3": 3, "VEC4": 4}[acc.type]
    start = (view.byteOffset or 0) + (acc.byteOffset or 0)
    return np.frombuffer(blob, dtype=dtype, count=acc.count * width, offset=start).reshape(acc.count, width)


def _quat_matrix(q) -> np.ndarray:
    x, y, z, w = q
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def _pose(gltf: pygltflib.GLTF2, blob: bytes, clip: str | None, t: float) -> list[dict]:
    trs = [{"translation": np.array(n.translation or [0, 0, 0], float),
            "rotation": np.array(n.rotation or [0, 0, 0, 1], float),
            "scale": np.array(n.scale or [1, 1, 1], float)} for n in gltf.nodes]
    for animation in gltf.animations:
        if animation.name != clip:
            continue
        for channel in animation.channels:
            sampler = animation.samplers[channel.sampler]
            times = _accessor(gltf, blob, sampler.input)[:, 0]
            values = _accessor(gltf, blob, sampler.output)
            i = int(np.clip(np.searchsorted(times, t) - 1, 0, len(times) - 2))
            f = float(np.clip((t - times[i]) / max(times[i + 1] - times[i], 1e-9), 0, 1))
            value = values[i] * (1 - f) + values[i + 1] * f
            if channel.target.path == "rotation":
                value = value / np.linalg.norm(value)
            trs[channel.target.node][channel.target.path] = value
    return trs


def render(glb: bytes, clip: str | None, t: float, size: int = 240) -> np.ndarray:
    """A front view (orthographic, Lambert-shaded) as an RGB array."""
    gltf = pygltflib.GLTF2.load_from_bytes(glb)
    blob = gltf.binary_blob()
    trs = _pose(gltf, blob, clip, t)
    world: dict[int, np.ndarray] = {}

    def visit(index: int, parent: np.ndarray) -> None:
        local = np.eye(4)
        local[:3, :3] = _quat_matrix(trs[index]["rotation"]) * trs[index]["scale"]
        local[:3, 3] = trs[index]["translation"]
        world[index] = parent @ local
        for child in gltf.nodes[index].children or []:
            visit(child, world[index])

    for root in gltf.scenes[gltf.scene or 0].nodes:
        visit(root, np.eye(4))
    image = np.full((size, size, 3), 0.93)
    depth = np.full((size, size), -np.inf)
    light = np.array([0.35, 0.55, 1.0]) / np.linalg.norm([0.35, 0.55, 1.0])
    scale, centre_y = size / 1.9, 0.82
    for index, matrix in world.items():
        node = gltf.nodes[index]
        if node.mesh is None:
            continue
        for primitive in gltf.meshes[node.mesh].primitives:
            pos = _accessor(gltf, blob, primitive.attributes.POSITION).astype(float)
            nor = _accessor(gltf, blob, primitive.attributes.NORMAL).astype(float)
            tris = _accessor(gltf, blob, primitive.indices).reshape(-1, 3)
            material = gltf.materials[primitive.material]
            colour = np.array(material.pbrMetallicRoughness.baseColorFactor[:3])
            emissive = np.array(material.emissiveFactor or [0, 0, 0])
            p = pos @ matrix[:3, :3].T + matrix[:3, 3]
            n = nor @ np.linalg.inv(matrix[:3, :3])
            n /= np.linalg.norm(n, axis=1, keepdims=True) + 1e-12
            shade = 0.35 + 0.75 * np.clip(n @ light, 0, 1)
            sx = p[:, 0] * scale + size / 2
            sy = (centre_y - p[:, 1]) * scale + size / 2
            for a, b, c in tris:
                xs, ys = sx[[a, b, c]], sy[[a, b, c]]
                x0, x1 = max(int(xs.min()), 0), min(int(xs.max()) + 1, size - 1)
                y0, y1 = max(int(ys.min()), 0), min(int(ys.max()) + 1, size - 1)
                if x0 > x1 or y0 > y1:
                    continue
                det = (ys[1] - ys[2]) * (xs[0] - xs[2]) + (xs[2] - xs[1]) * (ys[0] - ys[2])
                if abs(det) < 1e-12:
                    continue
                gx, gy = np.meshgrid(np.arange(x0, x1 + 1) + 0.5, np.arange(y0, y1 + 1) + 0.5)
                w0 = ((ys[1] - ys[2]) * (gx - xs[2]) + (xs[2] - xs[1]) * (gy - ys[2])) / det
                w1 = ((ys[2] - ys[0]) * (gx - xs[2]) + (xs[0] - xs[2]) * (gy - ys[2])) / det
                w2 = 1 - w0 - w1
                inside = (w0 >= 0) & (w1 >= 0) & (w2 >= 0)
                if not inside.any():
                    continue
                z = w0 * p[a, 2] + w1 * p[b, 2] + w2 * p[c, 2]
                region = depth[y0:y1 + 1, x0:x1 + 1]
                closer = inside & (z > region)
                region[closer] = z[closer]
                s = w0 * shade[a] + w1 * shade[b] + w2 * shade[c]
                image[y0:y1 + 1, x0:x1 + 1][closer] = np.clip(colour * s[closer, None] + emissive, 0, 1)
    srgb_image = np.where(image <= 0.0031308, image * 12.92, 1.055 * image ** (1 / 2.4) - 0.055)
    return (np.clip(srgb_image, 0, 1) * 255).astype(np.uint8)


def write_png(path: Path, rgb: np.ndarray) -> None:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    height, width, _ = rgb.shape
    raw = b"".join(b"\0" + rgb[row].tobytes() for row in range(height))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def contact_sheet(glb: bytes, path: Path, columns: int = 5, size: int = 240) -> None:
    """Every clip, each at the moment it moves furthest from rest (the middle of one-shots)."""
    gltf = pygltflib.GLTF2.load_from_bytes(glb)
    blob = gltf.binary_blob()
    frames = []
    for animation in gltf.animations:
        duration = max(float(_accessor(gltf, blob, s.input).max()) for s in animation.samplers)
        moment = {"blink": duration / 2, "talk": 0.15}.get(animation.name, duration * 0.45)
        frames.append(render(glb, animation.name, moment, size))
    rows = math.ceil(len(frames) / columns)
    sheet = np.full((rows * size, columns * size, 3), 255, np.uint8)
    for i, frame in enumerate(frames):
        r, c = divmod(i, columns)
        sheet[r * size:(r + 1) * size, c * size:(c + 1) * size] = frame
    write_png(path, sheet)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    storage = Path(os.environ.get("AVATAR_STORAGE_DIR") or REPO_ROOT / "var" / "avatars")
    parser.add_argument("path", nargs="?", type=Path, default=storage / DEFAULT_FILENAME)
    parser.add_argument("--preview", type=Path, help="also render a PNG contact sheet of every clip here")
    args = parser.parse_args(argv)
    path = write_default_avatar(args.path)
    info = validate_glb(path.read_bytes())
    print(f"{path}: {info.size_bytes} bytes, {info.nodes} nodes, {info.triangles} triangles, "
          f"{len(info.clips)} clips: {', '.join(info.clip_names)}")
    if args.preview:
        contact_sheet(path.read_bytes(), args.preview)
        print(f"preview: {args.preview}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
