"""Which way a model can move its mouth with the words, for the avatar's summary. The widget
finds the same things by the same names (frontend/src/widget/lipsync.js)."""
from __future__ import annotations

from common.visemes import VISEMES
from services.avatar.validation import ModelInfo

# VRM's five mouth shapes stand in for the Oculus vowels
VRM_VOWELS = {"aa": "aa", "E": "ee", "I": "ih", "O": "oh", "U": "ou"}
OPEN_SHAPES = ("jawopen", "mouthopen", "mouth_open", "jaw_open")


def viseme_names(viseme: str) -> list[str]:
    """Morph target names (compared in lower case) that mean ``viseme``."""
    names = [f"viseme_{viseme}", f"viseme{viseme}", f"v_{viseme}", viseme]
    if viseme in VRM_VOWELS:
        names.append(VRM_VOWELS[viseme])
    return [n.lower() for n in names]


def lipsync_summary(info: ModelInfo) -> dict:
    """``{"mode": "visemes" | "mouth_open" | "jaw" | "talk_clip" | "none", "visemes": [...],
    "jaw": node name or None}``: what the widget will drive, best first."""
    targets = {name.lower() for m in info.morph_targets for name in m.names}
    visemes = [v for v in VISEMES if any(n in targets for n in viseme_names(v))]
    if visemes:
        mode = "visemes"
    elif targets & set(OPEN_SHAPES):
        mode = "mouth_open"
    elif info.jaw:
        mode = "jaw"
    elif info.clips:
        mode = "talk_clip"
    else:
        mode = "none"
    return {"mode": mode, "visemes": visemes, "jaw": info.jaw}
