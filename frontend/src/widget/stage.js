// The stage a model stands on, shared by the widget's avatar and the console's viewer: a
// renderer in `container`, the same lights, and a camera framed from the model's own geometry.
import * as THREE from "three";
import { analyse } from "./framing.js";

export function createStage(container, gltf, rendererOptions = {}) {
  const renderer = new THREE.WebGLRenderer({ antialias: true, alpha: true, ...rendererOptions });
  renderer.setPixelRatio(Math.min(window.devicePixelRatio || 1, 2));
  renderer.outputColorSpace = THREE.SRGBColorSpace;
  container.appendChild(renderer.domElement);
  const scene = new THREE.Scene();
  scene.add(new THREE.HemisphereLight(0xffffff, 0x666677, 2.2));
  const key = new THREE.DirectionalLight(0xffffff, 2.0);
  key.position.set(1.5, 2.5, 3);
  scene.add(key);
  scene.add(gltf.scene);
  // framing.js: upright, head fully in view, whatever the model's size and orientation
  const camera = new THREE.PerspectiveCamera(30, 1, 0.01, 100);
  return { renderer, scene, camera, framing: analyse(gltf.scene) };
}

/** Play `action` (once, holding its last frame, or looped), cross-fading from `previous`. */
export function playClip(action, previous, once, fadeS) {
  action.reset();
  action.setLoop(once ? THREE.LoopOnce : THREE.LoopRepeat, once ? 1 : Infinity);
  action.clampWhenFinished = once;
  action.enabled = true;
  if (previous && previous !== action) action.crossFadeFrom(previous, fadeS, false);
  action.play();
}
