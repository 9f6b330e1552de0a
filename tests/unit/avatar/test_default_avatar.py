import pygltflib

from tests.unit.avatar.avatar_samples import default_glb
from services.avatar.behaviours import BEHAVIOURS
from services.avatar.default_avatar import build_glb, write_default_avatar
from services.avatar.lipsync import lipsync_summary
from services.avatar.validation import validate_glb
from common.visemes import VISEMES


def channels(gltf: pygltflib.GLTF2, clip: str) -> set[tuple[str, str]]:
    animation = next(a for a in gltf.animations if a.name == clip)
    return {(gltf.nodes[c.target.node].name, c.target.path) for c in animation.channels}


def test_there_is_a_clip_named_after_every_behaviour():
    info = validate_glb(default_glb())
    assert sorted(info.clip_names) == sorted(BEHAVIOURS)
    assert len(BEHAVIOURS) == len(set(BEHAVIOURS)) >= 20


def test_the_talk_idle_and_blink_clips_move_what_they_should():
    gltf = pygltflib.GLTF2.load_from_bytes(default_glb())
    assert ("Head", "rotation") in channels(gltf, "talk")
    assert ("Mouth", "scale") not in channels(gltf, "talk")  # the visemes move the mouth instead
    assert ("Spine", "translation") in channels(gltf, "idle")  # the breathing bob
    assert {("EyeL", "scale"), ("EyeR", "scale")} <= channels(gltf, "blink")
    assert ("ArmR", "rotation") in channels(gltf, "wave")


def test_it_is_a_character_of_primitives_with_pbr_materials_and_no_third_party_asset():
    gltf = pygltflib.GLTF2.load_from_bytes(default_glb())
    names = {n.name for n in gltf.nodes}
    assert {"Head", "EyeL", "EyeR", "Mouth", "ArmL", "ArmR", "HandL", "HandR", "Antenna", "Torso"} <= names
    assert not gltf.skins and not gltf.images and not gltf.textures
    assert len(gltf.materials) >= 8
    assert all(m.pbrMetallicRoughness.baseColorFactor for m in gltf.materials)
    head = next(n for n in gltf.nodes if n.name == "Head")
    assert any(gltf.nodes[c].name == "EyeL" for c in head.children)  # a hierarchy, not a soup


def test_generation_is_deterministic_and_writes_atomically(tmp_path):
    assert build_glb() == default_glb()
    path = write_default_avatar(tmp_path / "nested" / "default.glb")
    assert path.read_bytes() == default_glb()
    assert [p.name for p in path.parent.iterdir()] == ["default.glb"]


def test_its_mouth_has_the_15_oculus_visemes_as_morph_targets_that_change_its_shape():
    info = validate_glb(default_glb())
    assert lipsync_summary(info) == {"mode": "visemes", "visemes": list(VISEMES), "jaw": None}
    gltf = pygltflib.GLTF2.load_from_bytes(default_glb())
    mouth = next(m for m in gltf.meshes if m.extras and m.extras.get("targetNames"))
    targets = mouth.primitives[0].targets
    extents = {}
    for name, target in zip(mouth.extras["targetNames"], targets):
        accessor = gltf.accessors[target["POSITION"]]
        extents[name] = max(abs(v) for v in accessor.max + accessor.min)
    assert extents["viseme_sil"] == 0  # rest
    assert extents["viseme_aa"] > extents["viseme_I"] > extents["viseme_PP"] > 0  # open > narrow > closed
