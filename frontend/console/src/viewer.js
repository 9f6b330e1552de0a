// An interactive look at an avatar model: three.js with OrbitControls (drag to turn, wheel or
// pinch to zoom) and the model's clips played on demand. The widget's own framing decides
// where the camera starts, so what the tenant sees here is how the widget will frame it.
// The clip playing is on the container's data-clip, as in the widget.
import * as THREE from "three";
import { GLTFLoader } from "three/examples/jsm/loaders/GLTFLoader.js";
import { OrbitControls } from "three/examples/jsm/controls/OrbitControls.js";
import { createStage, playClip } from "../../src/widget/stage.js";

const FADE_S = 0.3;

function webgl() {
  try {
    const canvas = document.createElement("canvas");
    return Boolean(canvas.getContext("webgl2") || canvas.getContext("webgl"));
  } catch {
    return false;
  }
}

/** Show the model at `url` in `container`; resolves to {clips, play(name), dispose()}. */
export async function createViewer(container, url) {
  if (!webgl()) throw new Error("This browser cannot show 3D models (WebGL is off).");
  const gltf = await new GLTFLoader().loadAsync(url);
  const { renderer, scene, camera, framing } = createStage(container, gltf);
  renderer.domElement.setAttribute("aria-hidden", "true");
  const controls = new OrbitControls(camera, renderer.domElement);
  controls.enableDamping = true;

  const mixer = new THREE.AnimationMixer(gltf.scene);
  const actions = new Map(gltf.animations.map((clip) => [clip.name, mixer.clipAction(clip)]));
  const clips = gltf.animations.map((clip) => ({ name: clip.name, duration: clip.duration }));
  const idle = actions.has("idle") ? "idle" : null;
  let current = null;

  function show(name) {
    container.dataset.clip = name;
  }
  function fadeTo(name, once) {
    const action = actions.get(name);
    if (!action) return false;
    playClip(action, current, once, FADE_S);
    current = action;
    show(name);
    return true;
  }
  mixer.addEventListener("finished", (event) => {
    if (event.action === current) {
      if (idle) fadeTo(idle, false);
      else show("none");
    }
  });
  if (idle) fadeTo(idle, false);
  else show("none");

  let sized = false;
  function resize() {
    const { width, height } = container.getBoundingClientRect();
    if (!width || !height) return;
    renderer.setSize(width, height, false);
    if (!sized) {
      // the widget's framing places the camera once; after that the person orbits freely
      framing.frame(camera, width, height);
      controls.target.copy(framing.body.getCenter(new THREE.Vector3()));
      sized = true;
    } else {
      camera.aspect = width / height;
      camera.updateProjectionMatrix();
    }
    controls.update();
  }
  const observer = new ResizeObserver(resize);
  observer.observe(container);
  resize();

  const clock = new THREE.Clock();
  let frame = 0;
  function loop() {
    mixer.update(Math.min(clock.getDelta(), 0.1));
    controls.update();
    renderer.render(scene, camera);
    frame = requestAnimationFrame(loop);
  }
  loop();

  return {
    clips,
    /** Play a clip once (then back to idle); idle itself loops. */
    play(name) {
      return fadeTo(name, name !== idle);
    },
    dispose() {
      cancelAnimationFrame(frame);
      observer.disconnect();
      controls.dispose();
      renderer.dispose();
      renderer.domElement.remove();
    },
  };
}
