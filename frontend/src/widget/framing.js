// Framing any model from its own geometry: which way is up, where the head is, and a camera
// that keeps the head fully in view at any scale (centimetre exports), any origin and any
// proportions. See docs/avatar.md "Framing".
import * as THREE from "three";

// Node names that mean "head" across rigs: Mixamo `mixamorig:Head`, Ready Player Me / VRM
// `Head`, `J_Bip_C_Head`, Character Creator `CC_Base_Head`, 3ds Max `Bip01 Head`, Blender
// `head`, `Head.001`, `head_geo`, `DEF-head`. Not `forehead`, `HeadTop_End` or `headlight`.
const SUFFIX = /[_\s.-]?(geo|geom|mesh|jnt|joint|bone|bn|ctrl|grp|m|l0|\d+)$/;

export function isHeadName(name) {
  let n = String(name || "").toLowerCase();
  n = n.split(/[:|/]/).pop();
  for (let i = 0; i < 2; i += 1) n = n.replace(SUFFIX, "");
  return /(^|[^a-z])head$/.test(n);
}

/** The head node: a bone first, then any other node; the first in tree order. */
export function findHead(root) {
  let bone = null;
  let node = null;
  root.traverse((object) => {
    if (!isHeadName(object.name)) return;
    if (object.isBone && !bone) bone = object;
    else if (!object.isBone && !node) node = object;
  });
  return bone || node;
}

function descendants(object) {
  const found = new Set();
  object.traverse((child) => found.add(child));
  return found;
}

/** World box of the head: the skinned vertices that follow the head bone (or a bone below
 * it), else the meshes under the head node, else an estimate from the bone's position. */
export function headBox(root, head, bodyBox, up) {
  const box = new THREE.Box3();
  const below = descendants(head);
  const vertex = new THREE.Vector3();
  root.traverse((mesh) => {
    if (!mesh.isSkinnedMesh || !mesh.skeleton) return;
    const followers = new Set();
    mesh.skeleton.bones.forEach((bone, index) => {
      if (below.has(bone)) followers.add(index);
    });
    if (!followers.size) return;
    const { skinIndex, skinWeight } = mesh.geometry.attributes;
    if (!skinIndex || !skinWeight) return;
    for (let i = 0; i < skinIndex.count; i += 1) {
      let best = -1;
      let weight = 0;
      for (let k = 0; k < skinIndex.itemSize; k += 1) {
        const w = skinWeight.getComponent(i, k);
        if (w > weight) {
          weight = w;
          best = skinIndex.getComponent(i, k);
        }
      }
      if (!followers.has(best)) continue;
      mesh.getVertexPosition(i, vertex);
      box.expandByPoint(vertex.applyMatrix4(mesh.matrixWorld));
    }
  });
  if (!box.isEmpty()) return box;
  head.traverse((child) => {
    if (child.isMesh && !child.isSkinnedMesh) box.expandByObject(child, true);
  });
  if (!box.isEmpty()) return box;
  // a bone and nothing to measure: a head is about an eighth of a person, starting at the bone
  const height = bodyBox.getSize(new THREE.Vector3()).dot(up) / 8;
  const base = head.getWorldPosition(new THREE.Vector3());
  const centre = base.clone().addScaledVector(up, height / 2);
  return new THREE.Box3().setFromCenterAndSize(centre, new THREE.Vector3(height, height, height));
}

/** Turn a Z-up export upright (glTF says +Y up; some exporters leave Blender's +Z). */
function orient(root, head) {
  root.updateMatrixWorld(true);
  const body = new THREE.Box3().setFromObject(root, true);
  const size = body.getSize(new THREE.Vector3());
  const centre = body.getCenter(new THREE.Vector3());
  let axis = "y";
  let sign = 1;
  if (head) {
    const towards = headBox(root, head, body, new THREE.Vector3(0, 1, 0)).getCenter(new THREE.Vector3()).sub(centre);
    const dy = Math.abs(towards.y) / (size.y || 1);
    const dz = Math.abs(towards.z) / (size.z || 1);
    if (dz > dy * 1.5 && Math.abs(towards.z) > Math.abs(towards.y)) {
      axis = "z";
      sign = Math.sign(towards.z) || 1;
    } else {
      sign = Math.sign(towards.y) || 1;
    }
  } else if (size.z > size.y * 1.5 && size.z >= size.x) {
    axis = "z";
  }
  if (axis === "z") root.rotation.x += sign > 0 ? -Math.PI / 2 : Math.PI / 2;
  else if (sign < 0) root.rotation.x += Math.PI; // upside down
  root.updateMatrixWorld(true);
  return axis === "z" ? (sign > 0 ? "+z" : "-z") : sign > 0 ? "+y" : "-y";
}

function corners(box) {
  const { min, max } = box;
  const out = [];
  for (const x of [min.x, max.x]) for (const y of [min.y, max.y]) for (const z of [min.z, max.z]) out.push(new THREE.Vector3(x, y, z));
  return out;
}

function fitsIn(camera, points, margin) {
  camera.updateMatrixWorld(true);
  const p = new THREE.Vector3();
  return points.every((point) => {
    p.copy(point).project(camera);
    return Math.abs(p.x) <= margin && Math.abs(p.y) <= margin && p.z < 1 && p.z > -1;
  });
}

/**
 * Analyse the model once (after load, in its rest pose). Returns {up, head, body, headBox,
 * frame(camera, widthPx, heightPx)} where frame() places the camera for the current size.
 */
export function analyse(root) {
  const head = findHead(root);
  const up = orient(root, head);
  const body = new THREE.Box3().setFromObject(root, true);
  const upVector = new THREE.Vector3(0, 1, 0);
  const headWorld = head ? headBox(root, head, body, upVector) : null;
  const bodySize = body.getSize(new THREE.Vector3());
  const headSize = headWorld ? headWorld.getSize(new THREE.Vector3()) : null;

  function region(view) {
    if (view === "full" || !headWorld) return body.clone();
    // head and shoulders: from a little above the head to about two heads below its chin
    const h = Math.max(headSize.y, headSize.x * 0.8);
    const centre = headWorld.getCenter(new THREE.Vector3());
    const top = headWorld.max.y + h * 0.2;
    const bottom = Math.max(body.min.y, headWorld.min.y - h * 1.6);
    const half = Math.max(headSize.x * 1.25, h);
    return new THREE.Box3(
      new THREE.Vector3(Math.max(body.min.x, centre.x - half), bottom, headWorld.min.z),
      new THREE.Vector3(Math.min(body.max.x, centre.x + half), top, headWorld.max.z));
  }

  function place(camera, target, aspect) {
    const size = target.getSize(new THREE.Vector3());
    const centre = target.getCenter(new THREE.Vector3());
    const tan = Math.tan((camera.fov * Math.PI) / 360);
    let distance = Math.max(size.y / (2 * tan), size.x / (2 * tan * aspect), 1e-6) * 1.15 + size.z / 2;
    const keep = [...corners(target), ...(headWorld ? corners(headWorld) : [])];
    for (let i = 0; i < 40; i += 1) {
      camera.near = distance / 100;
      camera.far = distance * 100 + size.z * 2;
      camera.position.set(centre.x, centre.y, centre.z + distance);
      camera.lookAt(centre);
      camera.updateProjectionMatrix();
      if (fitsIn(camera, keep, 0.9)) break;
      distance *= 1.1;
    }
  }

  function frame(camera, width, height) {
    const aspect = width / height || 1;
    camera.aspect = aspect;
    let view = "full";
    if (headWorld) {
      // full body when the head still reads at that size, else head and shoulders: small
      // views (the compact header, a phone) want a larger face than a stage does
      const share = headSize.y / Math.max(bodySize.y, bodySize.x / aspect);
      const wanted = height < 200 ? 0.34 : 0.2;
      view = share >= wanted ? "full" : "portrait";
    }
    place(camera, region(view), aspect);
    return view;
  }

  return { up, head: head ? head.name : null, body, headBox: headWorld, frame };
}
