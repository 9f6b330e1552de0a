import json
import struct

import pytest

from tests.unit.avatar.avatar_samples import (default_glb, json_of, mutate, with_clip_names, with_extra_nodes,
                                              with_json, without_meshes)
from services.avatar.lipsync import lipsync_summary
from services.avatar.validation import InvalidModel, Limits, validate_glb


def refused(data: bytes, limits: Limits = Limits()) -> InvalidModel:
    with pytest.raises(InvalidModel) as caught:
        validate_glb(data, limits)
    return caught.value


def test_the_default_avatar_is_a_valid_model():
    info = validate_glb(default_glb())
    assert info.meshes >= 1 and info.triangles > 1000 and info.textures == 0
    assert info.size_bytes == len(default_glb()) and len(info.sha256) == 64
    assert all(clip.duration_s > 0 and clip.channels >= 1 for clip in info.clips)


@pytest.mark.parametrize("data", [b"", b"hello", b"PK\x03\x04" + b"\0" * 100, bytes(range(256)) * 10])
def test_files_that_are_not_gltf_are_refused(data):
    assert refused(data).code == "not_gltf"


def test_a_gltf_json_file_is_refused_with_a_hint_to_export_glb():
    error = refused(json.dumps({"asset": {"version": "2.0"}}).encode())
    assert error.code == "not_gltf" and ".glb" in error.message


@pytest.mark.parametrize("keep", [11, 20, 1000, -1, -4096])
def test_truncated_files_are_refused(keep):
    error = refused(default_glb()[:keep])
    assert error.code in ("not_gltf", "truncated")


def test_a_header_that_lies_about_the_length_is_refused():
    data = bytearray(default_glb())
    struct.pack_into("<I", data, 8, len(data) - 8)
    assert refused(bytes(data)).code == "trailing_bytes"
    assert refused(default_glb() + b"\0" * 8).code == "trailing_bytes"


def test_a_chunk_running_past_the_end_is_refused():
    data = bytearray(default_glb())
    struct.pack_into("<I", data, 12, len(data))  # the JSON chunk claims the whole file
    assert refused(bytes(data)).code == "truncated"


def test_the_wrong_container_version_is_refused():
    data = bytearray(default_glb())
    struct.pack_into("<I", data, 4, 1)
    assert refused(bytes(data)).code == "unsupported_version"


def test_a_json_chunk_that_is_not_json_is_refused():
    assert refused(with_json(default_glb(), b"{not json")).code == "bad_json"
    assert refused(with_json(default_glb(), b'{"asset": {"version": "1.0"}}')).code == "unsupported_version"


def test_huge_files_are_refused_before_parsing():
    error = refused(default_glb(), Limits(max_bytes=100_000))
    assert error.code == "too_large" and error.status == 413


def test_a_model_without_a_mesh_is_refused():
    assert refused(without_meshes(default_glb())).code == "no_mesh"


def test_too_many_nodes_triangles_or_textures_are_refused():
    assert refused(with_extra_nodes(default_glb(), 50), Limits(max_nodes=100)).code == "too_many_nodes"
    assert refused(default_glb(), Limits(max_triangles=500)).code == "too_many_triangles"

    def add_textures(gltf):
        import pygltflib
        gltf.images = [pygltflib.Image(uri="data:image/png;base64,AAAA") for _ in range(3)]
        gltf.textures = [pygltflib.Texture(source=i) for i in range(3)]
    assert refused(mutate(default_glb(), add_textures), Limits(max_textures=2)).code == "too_many_textures"


def test_references_outside_the_file_are_refused():
    doc = json.loads(json_of(default_glb()))
    doc["buffers"][0]["uri"] = "https://example.com/steal.bin"
    assert refused(with_json(default_glb(), json.dumps(doc).encode())).code == "external_reference"

    def big_accessor(gltf):
        gltf.accessors[0].count = 10_000_000
    assert refused(mutate(default_glb(), big_accessor)).code == "bad_reference"

    def missing_mesh(gltf):
        next(n for n in gltf.nodes if n.mesh is not None).mesh = 999
    assert refused(mutate(default_glb(), missing_mesh)).code == "bad_reference"


def test_a_node_cycle_is_refused():
    def cycle(gltf):
        gltf.nodes[1].children.append(0)
    assert refused(mutate(default_glb(), cycle)).code == "bad_node_tree"


def test_unnamed_clips_get_the_names_three_js_gives_them():
    info = validate_glb(with_clip_names(default_glb(), ["Wave", None, "Armature|mixamo.com|Layer0"]))
    assert info.clip_names == ["Wave", "animation_1", "Armature|mixamo.com|Layer0"]


def test_morph_targets_are_listed_with_their_names():
    def add_targets(gltf):
        mesh = gltf.meshes[0]
        position = mesh.primitives[0].attributes.POSITION
        mesh.primitives[0].targets = [{"POSITION": position}, {"POSITION": position}]
        mesh.extras = {"targetNames": ["mouthOpen"]}
    info = validate_glb(mutate(default_glb(), add_targets))
    assert [(m.names) for m in info.morph_targets][0] == ["mouthOpen", "target_1"]
    assert info.morph_targets[-1].names[0] == "viseme_sil"  # and the default avatar's own mouth shapes
    assert lipsync_summary(info)["mode"] == "visemes"


def test_lipsync_summary_says_what_the_widget_can_drive():
    def no_visemes(gltf):
        for mesh in gltf.meshes:
            mesh.extras = None
            for primitive in mesh.primitives:
                primitive.targets = None
            mesh.weights = None

    def jawed(gltf):
        no_visemes(gltf)
        gltf.nodes[1].name = "mixamorig:Jaw"

    def vrm(gltf):
        mesh = next(m for m in gltf.meshes if m.extras)
        mesh.primitives[0].targets = mesh.primitives[0].targets[:5]
        mesh.extras = {"targetNames": ["Fcl_MTH_A", "aa", "ih", "ou", "oh"]}
        mesh.weights = [0.0] * 5

    assert lipsync_summary(validate_glb(mutate(default_glb(), jawed))) == {
        "mode": "jaw", "visemes": [], "jaw": "mixamorig:Jaw"}
    assert lipsync_summary(validate_glb(mutate(default_glb(), no_visemes)))["mode"] == "talk_clip"
    assert lipsync_summary(validate_glb(mutate(default_glb(), vrm)))["visemes"] == ["aa", "I", "O", "U"]


def test_required_extensions_the_widget_cannot_load_are_refused():
    doc = json.loads(json_of(default_glb()))
    doc["extensionsRequired"] = ["KHR_unknown_magic"]
    doc["extensionsUsed"] = ["KHR_unknown_magic"]
    assert refused(with_json(default_glb(), json.dumps(doc).encode())).code == "unsupported_extension"


def test_a_100k_node_chain_is_refused_by_counting_before_any_walk():
    import time

    from tests.unit.avatar.avatar_samples import with_node_chain

    data = with_node_chain(default_glb(), 100_000)
    started = time.perf_counter()
    error = refused(data)
    assert error.code == "too_many_nodes" and error.details["nodes"] > 100_000
    assert time.perf_counter() - started < 2  # it used to walk the chain quadratically first (32 s at 20k)


def test_walking_the_node_tree_is_linear_and_still_finds_cycles():
    import time

    import pygltflib

    from services.avatar.validation import _check_nodes

    n = 100_000
    chain = pygltflib.GLTF2(nodes=[pygltflib.Node(children=[i + 1]) for i in range(n - 1)] + [pygltflib.Node()])
    started = time.perf_counter()
    _check_nodes(chain)
    assert time.perf_counter() - started < 1  # the old walk took 32 s for a fifth of this
    chain.nodes[-1].children = [n // 2]  # the last link points back up the chain
    with pytest.raises(InvalidModel) as caught:
        _check_nodes(chain)
    assert caught.value.code == "bad_node_tree"


@pytest.mark.parametrize("count", [2 ** 31, 6_000_000])
def test_an_accessor_that_would_make_the_browser_allocate_gigabytes_is_refused(count):
    from tests.unit.avatar.avatar_samples import with_zero_accessor

    error = refused(with_zero_accessor(default_glb(), count))
    assert error.code == "too_large_accessor" and error.details["count"] == count


def test_refusals_survive_the_trip_back_from_the_worker_process():
    import pickle

    error = refused(with_json(default_glb(), b"{not json"))
    again = pickle.loads(pickle.dumps(error))
    assert (again.code, again.message, again.status) == (error.code, error.message, error.status)
