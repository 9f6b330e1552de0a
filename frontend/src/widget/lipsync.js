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
    if (this.timeline) return; // the voice leads the mouth while it speaks
    for (const [viseme, offset, ms] of track) this.pending.push([viseme, ms, offset]);
    // keep up with the text: skip the oldest shapes rather than trail behind it
    let waiting = this.pending.reduce((sum, [, ms]) => sum + ms, 0);
    while (waiting > MAX_LAG_MS && this.pending.length > 1) waiting -= this.pending.shift()[1];
    this.active = true;
  }

  /** Follow ``timeline`` ([{viseme, offset, start, end}], seconds) on ``clock`` (the audio's
   * time): the mouth moves with the voice, whatever the frame rate. */
  follow(timeline, clock) {
    this.hush();
    this.timeline = timeline;
    this.clock = clock;
    this.active = true;
  }

  /** The reply ended or was stopped: the mouth closes. */
  hush() {
    this.pending = [];
    this.current = null;
    this.timeline = null;
  }

  /** The word (its text offset) the mouth is on, or null. */
  get offset() {
    return this.current ? this.current.offset : null;
  }

  update(now, dt) {
    if (this.timeline) {
      const t = this.clock();
      const item = this.timeline.find((entry) => t >= entry.start && t < entry.end);
      this.current = item ? { viseme: item.viseme, until: Infinity, offset: item.offset } : null;
      this.frame = { time: t, offset: this.offset }; // what this frame shows, at which audio time
      if (t >= this.timeline[this.timeline.length - 1].end) this.timeline = null;
    }
    while (!this.timeline && (!this.current || now >= this.current.until)) {
      const next = this.pending.shift();
      if (!next) {
        this.current = null;
        break;
      }
      const from = this.current && now - this.current.until < 100 ? this.current.until : now;
      this.current = { viseme: next[0], until: from + next[1], offset: next[2] };
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

/**
 * A reply's viseme track laid on its audio: each word on its own voiced stretch of the audio
 * when the audio's pauses separate the words, otherwise the whole track stretched over the
 * speech. Returns [{viseme, offset, start, end}] in seconds.
 */
export function alignToAudio(track, buffer) {
  const words = [];
  for (const [viseme, offset, ms] of track) {
    if (viseme === "sil") continue;
    const last = words[words.length - 1];
    if (last && last.offset === offset) last.visemes.push([viseme, ms]);
    else words.push({ offset, visemes: [[viseme, ms]] });
  }
  const segments = voicedSegments(buffer);
  const timeline = [];
  const lay = (word, start, end) => {
    const total = word.visemes.reduce((sum, [, ms]) => sum + ms, 0) || 1;
    let t = start;
    for (const [viseme, ms] of word.visemes) {
      const length = ((end - start) * ms) / total;
      timeline.push({ viseme, offset: word.offset, start: t, end: t + length });
      t += length;
    }
  };
  if (words.length && segments.length === words.length) {
    words.forEach((word, i) => lay(word, segments[i][0], segments[i][1]));
    return timeline;
  }
  const start = segments.length ? segments[0][0] : 0;
  const end = segments.length ? segments[segments.length - 1][1] : buffer.duration;
  const total = track.reduce((sum, [, , ms]) => sum + ms, 0) || 1;
  const scale = (end - start) / (total / 1000);
  let t = start;
  for (const [viseme, offset, ms] of track) {
    const length = (ms / 1000) * scale;
    if (viseme !== "sil") timeline.push({ viseme, offset, start: t, end: t + length });
    t += length;
  }
  return timeline;
}

/** [start, end] seconds of the stretches where the audio is loud: 10 ms frames, gaps under
 * 60 ms bridged, blips under 40 ms dropped. */
export function voicedSegments(buffer) {
  const data = buffer.getChannelData(0);
  const frame = Math.max(1, Math.round(buffer.sampleRate / 100));
  const levels = [];
  for (let i = 0; i < data.length; i += frame) {
    let sum = 0;
    const end = Math.min(data.length, i + frame);
    for (let j = i; j < end; j += 1) sum += data[j] * data[j];
    levels.push(Math.sqrt(sum / (end - i)));
  }
  const loudest = Math.max(...levels, 0);
  if (!loudest) return [];
  const threshold = loudest * 0.08;
  const segments = [];
  levels.forEach((level, i) => {
    if (level < threshold) return;
    const last = segments[segments.length - 1];
    if (last && i - last[1] <= 6) last[1] = i + 1;
    else segments.push([i, i + 1]);
  });
  return segments.filter(([a, b]) => b - a >= 4).map(([a, b]) => [(a * frame) / buffer.sampleRate, (b * frame) / buffer.sampleRate]);
}
