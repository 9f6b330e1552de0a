// The avatar: a glTF model played with three.js (GLTFLoader + AnimationMixer), cross-fading
// between clips; a 2D portrait when WebGL is missing. The current clip is exposed on the
// container's data-clip (and window.__avatarchat.clip) for tests and for curious tenants.
import * as THREE from "three";
import { GLTFLoader } from "three/examples/jsm/loaders/GLTFLoader.js";
import { createStage, playClip } from "./stage.js";
import { LipSync, findMouth } from "./lipsync.js";

const FADE_S = 0.35;

function webglAvailable() {
  try {
    const canvas = document.createElement("canvas");
    return Boolean(window.WebGLRenderingContext && (canvas.getContext("webgl2") || canvas.getContext("webgl")));
  } catch {
    return false;
  }
}

function expose(container, clip) {
  container.dataset.clip = clip;
  window.__avatarchat = { ...(window.__avatarchat || {}), clip };
}

/** Behaviour → clip name, through the chatbot's animation map, or by name. */
function resolver(clips, map) {
  const byLower = new Map(clips.map((name) => [name.toLowerCase(), name]));
  return (behaviour) => {
    const mapped = map && map[behaviour];
    if (mapped && clips.includes(mapped)) return mapped;
    return byLower.get(String(behaviour).toLowerCase()) || null;
  };
}

export async function createAvatar(container, { modelUrl, animationMap, reducedMotion }) {
  if (!modelUrl || !webglAvailable()) return createPortrait(container);
  let gltf;
  try {
    gltf = await new GLTFLoader().loadAsync(modelUrl);
  } catch (error) {
    console.warn("avatarchat: the avatar model did not load", error);
    return createPortrait(container);
  }
  const { renderer, scene, camera, framing } = createStage(container, gltf, { powerPreference: "low-power" });
  let view = "full";

  const mouth = findMouth(gltf.scene);
  const lipsync = new LipSync(mouth);
  const mixer = new THREE.AnimationMixer(gltf.scene);
  const clipNames = gltf.animations.map((clip) => clip.name);
  const actions = new Map(gltf.animations.map((clip) => [clip.name, mixer.clipAction(clip)]));
  const resolve = resolver(clipNames, animationMap);
  let current = null;
  let currentName = "none";
  let afterOnce = null;

  function fadeTo(name, { once = false } = {}) {
    const action = actions.get(name);
    if (!action) return false;
    if (current === action && !once) return true;
    playClip(action, current, once, FADE_S);
    current = action;
    currentName = name;
    expose(container, name);
    return true;
  }

  mixer.addEventListener("finished", (event) => {
    if (event.action === current && afterOnce) {
      const next = afterOnce;
      afterOnce = null;
      fadeTo(next);
    }
  });

  const idle = resolve("idle") || clipNames[0];
  if (idle) fadeTo(idle);

  // render only while visible: the panel open, the frame on screen, the tab in front
  let panelOpen = true;
  let onScreen = true;
  let frame = 0;
  let last = performance.now();
  const clock = {
    getDelta() {
      const now = performance.now();
      const delta = Math.min(0.1, (now - last) / 1000);
      last = now;
      return delta;
    },
  };
  function size_() {
    const { width, height } = container.getBoundingClientRect();
    if (width && height) {
      renderer.setSize(width, height, false);
      view = framing.frame(camera, width, height);
      container.dataset.view = view;
      if (!frame) renderer.render(scene, camera);
    }
  }
  function loop() {
    frame = 0;
    if (!running()) return;
    const delta = clock.getDelta();
    mixer.update(reducedMotion ? 0 : delta);
    lipsync.update(performance.now(), delta); // after the clips, so the mouth follows the words
    renderer.render(scene, camera);
    frame = requestAnimationFrame(loop);
  }
  function running() {
    return panelOpen && onScreen && !document.hidden;
  }
  function wake() {
    if (running() && !frame) {
      clock.getDelta();
      frame = requestAnimationFrame(loop);
    }
  }
  new IntersectionObserver((entries) => {
    onScreen = entries.some((entry) => entry.isIntersecting);
    wake();
  }).observe(container);
  document.addEventListener("visibilitychange", wake);
  new ResizeObserver(size_).observe(container);
  size_();
  wake();

  // Where the model lands on the canvas, in CSS pixels: for the browser tests, and for a
  // tenant checking a model in the console. Points are in the model's own glTF coordinates.
  function projected(worldPoints) {
    const { width, height } = container.getBoundingClientRect();
    const xs = [];
    const ys = [];
    for (const point of worldPoints) {
      const v = point.clone().project(camera);
      xs.push(((v.x + 1) / 2) * width);
      ys.push(((1 - v.y) / 2) * height);
    }
    return { left: Math.min(...xs), right: Math.max(...xs), top: Math.min(...ys), bottom: Math.max(...ys), width, height };
  }
  window.__avatarchat = {
    ...(window.__avatarchat || {}),
    framing: { up: framing.up, head: framing.head },
    mouth: () => ({ mode: mouth.mode, weights: mouth.read() }),
    project(points) {
      gltf.scene.updateMatrixWorld(true);
      return projected(points.map(([x, y, z]) => new THREE.Vector3(x, y, z).applyMatrix4(gltf.scene.matrixWorld)));
    },
    projectObject(name) {
      const object = gltf.scene.getObjectByName(name);
      if (!object) return null;
      const box = new THREE.Box3().setFromObject(object, true);
      const { min, max } = box;
      const points = [];
      for (const x of [min.x, max.x]) for (const y of [min.y, max.y]) for (const z of [min.z, max.z]) points.push(new THREE.Vector3(x, y, z));
      return projected(points);
    },
  };

  return {
    kind: "3d",
    clips: clipNames,
    lipsync: mouth.mode,
    /** Mouth shapes for words that just appeared (not under prefers-reduced-motion). */
    speak(track) {
      if (!reducedMotion && mouth.mode !== "none") lipsync.speak(track);
    },
    hush() {
      lipsync.hush();
    },
    /** Move the mouth with a voice: ``timeline`` from alignToAudio, ``clock`` the audio's time. */
    follow(timeline, clock) {
      if (!reducedMotion && mouth.mode !== "none") lipsync.follow(timeline, clock);
    },
    get mouthOffset() {
      return lipsync.offset;
    },
    /** The last frame drawn while following a voice: {time (audio seconds), offset (word)}. */
    get mouthFrame() {
      return lipsync.frame || null;
    },
    get clip() {
      return currentName;
    },
    get rendering() {
      return Boolean(frame);
    },
    talk() {
      afterOnce = null;
      fadeTo(resolve("talk") || idle);
    },
    /** Play a clip once, then go back to idle. */
    perform(clip) {
      const name = actions.has(clip) ? clip : resolve(clip);
      if (!name || (reducedMotion && name !== idle)) return this.idle();
      afterOnce = idle;
      fadeTo(name, { once: true });
    },
    idle() {
      afterOnce = null;
      if (idle) fadeTo(idle);
    },
    setVisible(open) {
      panelOpen = open;
      if (!open) lipsync.hush();
      wake();
    },
  };
}

function createPortrait(container) {
  const portrait = document.createElement("div");
  portrait.className = "portrait";
  portrait.innerHTML = `<svg viewBox="0 0 100 100" role="img" aria-label="Assistant">
      <circle cx="50" cy="50" r="40" fill="#fde68a" stroke="#f59e0b" stroke-width="3"/>
      <circle cx="37" cy="44" r="5" fill="#1f2937"/><circle cx="63" cy="44" r="5" fill="#1f2937"/>
      <ellipse class="mouth" cx="50" cy="66" rx="12" ry="5" fill="#b91c1c"/></svg>`;
  container.appendChild(portrait);
  let clip = "idle";
  const set = (name) => {
    clip = name;
    portrait.dataset.clip = name;
    expose(container, name);
  };
  set("idle");
  let timer = 0;
  return {
    kind: "2d",
    clips: ["idle", "talk"],
    get clip() {
      return clip;
    },
    rendering: false,
    lipsync: "none",
    speak() {},
    hush() {},
    follow() {},
    mouthOffset: null,
    mouthFrame: null,
    talk() {
      clearTimeout(timer);
      set("talk");
    },
    perform(name) {
      set(name);
      clearTimeout(timer);
      timer = setTimeout(() => set("idle"), 1500);
    },
    idle() {
      clearTimeout(timer);
      set("idle");
    },
    setVisible() {},
  };
}
