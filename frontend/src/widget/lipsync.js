// Lip-sync: plays viseme tracks ([viseme, text offset, ms], from the avatar.visemes stream
// event) on whatever the model has to move its mouth, best first: viseme morph targets found
// by name (Ready Player Me `viseme_aa`, Oculus `aa`, VRM `aa ih ou ee oh`), one "mouth open"
// shape, a jaw bone. A model with none of these keeps its talk clip. services/avatar/lipsync.py
// names the same things for the avatar's summary.
import * as THREE from "three";

export const VISEMES = ["sil", "PP", "FF", "TH", "DD", "kk", "CH", "SS", "nn", "RR", "aa", "E", "I", "O", "U"];
const VRM_VOWELS = { aa: "aa", E: "ee", I: "ih", O: "oh", U: "ou" };
const OPEN_SHAPES = ["jawopen", "mouthopen", "mouth_open", "jaw_open"];
// how far each viseme opens the mouth, for the one-shape and jaw fallbacks
const OPENNESS = { sil: 0, PP: 0, FF: 0.15, TH: 0.25, DD: 0.3, kk: 0.35, CH: 0.3, SS: 0.15, nn: 0.25, RR: 0.3,
  aa: 1, E: 0.65, I: 0.45, O: 0.8, U: 0.4 };
const JAW_OPEN_RAD = 0.32;
const BLEND_S = 0.06; // how quickly one mouth shape melts into the next
const MAX_LAG_MS = 700; // the mouth never trails the newest text by more than this

function visemeNames(viseme) {
  const names = [`viseme_${viseme}`, `viseme${viseme}`, `v_${viseme}`, viseme];
  if (VRM_VOWELS[viseme]) names.push(VRM_VOWELS[viseme]);
  return names.map((n) => n.toLowerCase());
}

/** What moves the mouth of ``root``: {mode, visemes, apply(weights), read()}. */
export function findMouth(root) {
  const byViseme = new Map();
  const openShapes = [];
  let jaw = null;
  root.traverse((object) => {
    if (!jaw && /jaw/i.test(object.name) && !/end$/i.test(object.name)) jaw = object;
    if (!object.isMesh || !object.morphTargetDictionary) return;
    const lower = new Map(Object.entries(object.morphTargetDictionary).map(([name, index]) => [name.toLowerCase(), index]));
    for (const viseme of VISEMES) {
      const name = visemeNames(viseme).find((n) => lower.has(n));
      if (name !== undefined) {
        if (!byViseme.has(viseme)) byViseme.set(viseme, []);
        byViseme.get(viseme).push([object, lower.get(name)]);
      }
    }
    for (const name of OPEN_SHAPES) if (lower.has(name)) openShapes.push([object, lower.get(name)]);
  });
  if (byViseme.size) {
    return {
      mode: "visemes",
      visemes: VISEMES.filter((v) => byViseme.has(v)),
      apply(weights) {
        for (const [viseme, targets] of byViseme) {
          for (const [mesh, index] of targets) mesh.morphTargetInfluences[index] = weights[viseme] || 0;
        }
      },
      read() {
        const out = {};
        for (const [viseme, targets] of byViseme) out[viseme] = targets[0][0].morphTargetInfluences[targets[0][1]];
        return out;
      },
    };
  }
  const openness = (weights) => VISEMES.reduce((sum, v) => sum + (weights[v] || 0) * OPENNESS[v], 0);
  if (openShapes.length) {
    return {
      mode: "mouth_open",
      visemes: [],
      apply(weights) {
        const open = Math.min(1, openness(weights));
        for (const [mesh, index] of openShapes) mesh.morphTargetInfluences[index] = open;
      },
      read() {
        const [mesh, index] = openShapes[0];
        return { open: mesh.morphTargetInfluences[index] };
      },
    };
  }
  if (jaw) {
    const rest = jaw.quaternion.clone();
    const turn = new THREE.Quaternion();
    const axis = new THREE.Vector3(1, 0, 0);
    let angle = 0;
    return {
      mode: "jaw",
      visemes: [],
      apply(weights) {
        angle = Math.min(1, openness(weights)) * JAW_OPEN_RAD;
        jaw.quaternion.copy(rest).multiply(turn.setFromAxisAngle(axis, angle));
      },
      read() {
        return { open: angle / JAW_OPEN_RAD };
      },
    };
  }
  return { mode: "none", visemes: [], apply() {}, read: () => ({}) };
}

/** Schedules viseme tracks at their own pace and blends the mouth from shape to shape. */
export class LipSync {
  constructor(mouth) {
    this.mouth = mouth;
    this.pending = []; // [viseme, ms], not started yet
    this.current = null; // {viseme, until}
    this.weights = Object.fromEntries(VISEMES.map((v) => [v, 0]));
    this.active = false;
  }

  /** More visemes for text that just appeared. */
  speak(track) {
    for (const [viseme, , ms] of track) this.pending.push([viseme, ms]);
    // keep up with the text: skip the oldest shapes rather than trail behind it
    let waiting = this.pending.reduce((sum, [, ms]) => sum + ms, 0);
    while (waiting > MAX_LAG_MS && this.pending.length > 1) waiting -= this.pending.shift()[1];
    this.active = true;
  }

  /** The reply ended or was stopped: the mouth closes. */
  hush() {
    this.pending = [];
    this.current = null;
  }

  update(now, dt) {
    while (!this.current || now >= this.current.until) {
      const next = this.pending.shift();
      if (!next) {
        this.current = null;
        break;
      }
      const from = this.current && now - this.current.until < 100 ? this.current.until : now;
      this.current = { viseme: next[0], until: from + next[1] };
    }
    const target = this.current ? this.current.viseme : "sil";
    const k = Math.min(1, dt / BLEND_S);
    let moving = false;
    for (const viseme of VISEMES) {
      const goal = viseme === target && viseme !== "sil" ? 1 : 0;
      this.weights[viseme] += (goal - this.weights[viseme]) * k;
      if (this.weights[viseme] < 0.002) this.weights[viseme] = 0;
      if (this.weights[viseme]) moving = true;
    }
    if (this.active) this.mouth.apply(this.weights);
    this.active = moving || Boolean(this.current); // once closed, leave the mouth to the clips
  }
}
