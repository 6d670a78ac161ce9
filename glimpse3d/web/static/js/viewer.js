// 3D viewer for Gaussian-splat models: Spark (SplatMesh on three.js, WebGL2) with a
// three.js point-cloud fallback parsed from the same .ply/.splat bytes.
//
// Conventions (docs/architecture.md, "Cameras"): world is Z-up, object centred at the origin within radius ~0.5;
// the start camera is view 0 (elevation 30°, azimuth 0°, distance 1.5, vertical FOV 49.1°).
// Renders on demand (after orbit/zoom, load, or Spark's own re-sort) to spare the CPU.

import * as THREE from "three";
import { OrbitControls } from "three/addons/controls/OrbitControls.js";

const START = { elevationDeg: 30, azimuthDeg: 0, distance: 1.5, fovDeg: 49.1 };
const BACKGROUND = 0xf4f5f7;
const DIRTY_RENDERS = 4;

/** Which splat format these bytes are: "ply" (magic), "spz" (gzip magic) or "splat" (32 B records). */
export function sniffFormat(bytes) {
  const b = new Uint8Array(bytes.buffer ?? bytes, bytes.byteOffset ?? 0, Math.min(4, bytes.byteLength));
  if (b[0] === 0x70 && b[1] === 0x6c && b[2] === 0x79) return "ply";
  if (b[0] === 0x1f && b[1] === 0x8b) return "spz";
  return "splat";
}

const SRGB_TO_LINEAR = new Float32Array(256).map((_, i) => {
  const c = i / 255;
  return c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
});
const SH_C0 = 0.28209479177387814;

/**
 * Points from a binary little-endian 3DGS .ply: positions (N×3) and linear RGB colours (N×3),
 * keeping gaussians with opacity > 0.05. Colour = 0.5 + SH_C0·f_dc (sRGB, clamped to [0,1]).
 */
export function parsePly(buffer) {
  const bytes = new Uint8Array(buffer);
  const headText = new TextDecoder().decode(bytes.subarray(0, Math.min(bytes.length, 64 * 1024)));
  const end = headText.indexOf("end_header");
  if (!headText.startsWith("ply") || end < 0) throw new Error("Not a PLY file.");
  const headerLen = headText.slice(0, end).length + "end_header".length + 1;
  const lines = headText.slice(0, end).split(/\r?\n/);
  if (!lines.some((l) => l.startsWith("format binary_little_endian"))) {
    throw new Error("Only binary little-endian PLY files are supported.");
  }
  const sizes = { char: 1, uchar: 1, int8: 1, uint8: 1, short: 2, ushort: 2, int16: 2, uint16: 2,
    int: 4, uint: 4, int32: 4, uint32: 4, float: 4, float32: 4, double: 8, float64: 8 };
  let count = 0;
  let inVertex = false;
  const props = {};
  let stride = 0;
  for (const line of lines) {
    const p = line.trim().split(/\s+/);
    if (p[0] === "element") { inVertex = p[1] === "vertex"; if (inVertex) count = parseInt(p[2], 10); }
    else if (p[0] === "property" && inVertex) {
      if (p[1] === "list") throw new Error("PLY vertex lists are not supported.");
      props[p[2]] = { type: p[1], offset: stride };
      stride += sizes[p[1]] ?? 4;
    }
  }
  const view = new DataView(buffer, headerLen);
  const readers = {
    float: (o) => view.getFloat32(o, true), float32: (o) => view.getFloat32(o, true),
    double: (o) => view.getFloat64(o, true), float64: (o) => view.getFloat64(o, true),
    uchar: (o) => view.getUint8(o), uint8: (o) => view.getUint8(o),
  };
  const reader = (name) => {
    const prop = props[name];
    if (!prop) return null;
    const fn = readers[prop.type];
    if (!fn) throw new Error(`PLY property ${name} has unsupported type ${prop.type}.`);
    return (i) => fn(i * stride + prop.offset);
  };
  const [x, y, z] = ["x", "y", "z"].map(reader);
  if (!x || !y || !z) throw new Error("PLY has no x/y/z.");
  const dc = ["f_dc_0", "f_dc_1", "f_dc_2"].map(reader);
  const rgb8 = ["red", "green", "blue"].map(reader);
  const opacity = reader("opacity");
  const pos = new Float32Array(count * 3);
  const col = new Float32Array(count * 3);
  let n = 0;
  for (let i = 0; i < count; i++) {
    if (opacity && 1 / (1 + Math.exp(-opacity(i))) < 0.05) continue;
    pos[3 * n] = x(i); pos[3 * n + 1] = y(i); pos[3 * n + 2] = z(i);
    for (let c = 0; c < 3; c++) {
      let v8 = 200;
      if (dc[c]) v8 = Math.round(255 * Math.min(1, Math.max(0, 0.5 + SH_C0 * dc[c](i))));
      else if (rgb8[c]) v8 = rgb8[c](i);
      col[3 * n + c] = SRGB_TO_LINEAR[v8];
    }
    n++;
  }
  return { positions: pos.subarray(0, 3 * n), colors: col.subarray(0, 3 * n), count: n };
}

/** Points from a .splat file (32 bytes each: xyz f32×3, scale f32×3, RGBA u8×4, rot u8×4). */
export function parseSplat(buffer) {
  if (buffer.byteLength % 32 !== 0) throw new Error("Not a .splat file (size is not a multiple of 32 bytes).");
  const count = buffer.byteLength / 32;
  const f = new Float32Array(buffer);
  const u = new Uint8Array(buffer);
  const pos = new Float32Array(count * 3);
  const col = new Float32Array(count * 3);
  let n = 0;
  for (let i = 0; i < count; i++) {
    if (u[32 * i + 27] < 13) continue; // alpha < 0.05
    pos[3 * n] = f[8 * i]; pos[3 * n + 1] = f[8 * i + 1]; pos[3 * n + 2] = f[8 * i + 2];
    col[3 * n] = SRGB_TO_LINEAR[u[32 * i + 24]];
    col[3 * n + 1] = SRGB_TO_LINEAR[u[32 * i + 25]];
    col[3 * n + 2] = SRGB_TO_LINEAR[u[32 * i + 26]];
    n++;
  }
  return { positions: pos.subarray(0, 3 * n), colors: col.subarray(0, 3 * n), count: n };
}

export class SplatViewer {
  /**
   * @param {HTMLElement} root element that gets data-state (empty|loading|ready|error) and data-renderer
   * @param {HTMLCanvasElement} canvas
   * @param {{onInfo?: (text: string) => void, prefer?: "spark"|"points"}} options
   */
  constructor(root, canvas, options = {}) {
    this.root = root;
    this.canvas = canvas;
    this.onInfo = options.onInfo || (() => {});
    this.prefer = options.prefer || "spark";
    this.object = null;
    this.loadToken = 0;
    this.frames = 0;
    this.dirtyBudget = 0;
    this.rendered = 0; // frames drawn so far (exposed as data-frames for tests)
    this.spark = null; // the Spark module once imported
    this.sparkRenderer = null;
    this.setState("empty");

    this.renderer = new THREE.WebGLRenderer({ canvas, antialias: false, preserveDrawingBuffer: true });
    this.renderer.setPixelRatio(Math.min(window.devicePixelRatio || 1, 2));
    this.scene = new THREE.Scene();
    this.scene.background = new THREE.Color(BACKGROUND);
    this.camera = new THREE.PerspectiveCamera(START.fovDeg, 4 / 3, 0.01, 50);
    this.camera.up.set(0, 0, 1);
    this.controls = new OrbitControls(this.camera, canvas);
    this.controls.enableDamping = false;
    this.controls.minDistance = 0.3;
    this.controls.maxDistance = 8;
    this.controls.addEventListener("change", () => this.requestRender());
    this.resetView();

    this.onKey = (e) => this.handleKey(e);
    canvas.addEventListener("keydown", this.onKey);
    this.resizeObserver = new ResizeObserver(() => this.resize());
    this.resizeObserver.observe(canvas);
    this.resize();
    this.loop = () => {
      this.raf = requestAnimationFrame(this.loop);
      if (this.frames > 0) {
        this.frames--;
        this.renderer.render(this.scene, this.camera);
        this.rendered++;
        this.root.dataset.frames = String(this.rendered);
      }
    };
    this.raf = requestAnimationFrame(this.loop);
  }

  setState(state, renderer) {
    this.root.dataset.state = state;
    if (renderer !== undefined) this.root.dataset.renderer = renderer;
  }

  /** Render the next `frames` animation frames (Spark sorts asynchronously, so a few are needed). */
  requestRender(frames = 2) {
    this.frames = Math.max(this.frames, frames);
    // Spark re-sorts after a view change and then reports itself dirty; honour that a few
    // times only, or sort -> dirty -> render -> sort would keep the CPU busy forever.
    this.dirtyBudget = DIRTY_RENDERS;
  }

  onSparkDirty() {
    if (this.dirtyBudget > 0) {
      this.dirtyBudget--;
      this.frames = Math.max(this.frames, 1);
    }
  }

  resize() {
    const w = Math.max(1, this.canvas.clientWidth);
    const h = Math.max(1, this.canvas.clientHeight);
    this.renderer.setSize(w, h, false);
    this.camera.aspect = w / h;
    this.camera.updateProjectionMatrix();
    this.requestRender();
  }

  /** Back to view 0: elevation 30°, azimuth 0°, distance 1.5, looking at the origin. */
  resetView() {
    const e = THREE.MathUtils.degToRad(START.elevationDeg);
    const a = THREE.MathUtils.degToRad(START.azimuthDeg);
    const d = START.distance;
    this.camera.position.set(d * Math.cos(e) * Math.cos(a), d * Math.cos(e) * Math.sin(a), d * Math.sin(e));
    this.controls.target.set(0, 0, 0);
    this.camera.lookAt(0, 0, 0);
    this.controls.update();
    this.requestRender();
  }

  /** Arrow keys orbit (15° steps), +/- zoom, 0 / Home resets. */
  handleKey(e) {
    const step = THREE.MathUtils.degToRad(15);
    const target = this.controls.target;
    const offset = this.camera.position.clone().sub(target);
    const up = new THREE.Vector3(0, 0, 1);
    let handled = true;
    if (e.key === "ArrowLeft") offset.applyAxisAngle(up, -step);
    else if (e.key === "ArrowRight") offset.applyAxisAngle(up, step);
    else if (e.key === "ArrowUp" || e.key === "ArrowDown") {
      const axis = new THREE.Vector3().crossVectors(offset, up).normalize();
      const next = offset.clone().applyAxisAngle(axis, e.key === "ArrowUp" ? -step : step);
      const elev = Math.asin(next.z / next.length());
      if (Math.abs(elev) < THREE.MathUtils.degToRad(85)) offset.copy(next);
    } else if (e.key === "+" || e.key === "=") offset.multiplyScalar(0.85);
    else if (e.key === "-" || e.key === "_") offset.multiplyScalar(1 / 0.85);
    else if (e.key === "0" || e.key === "Home") { e.preventDefault(); this.resetView(); return; }
    else handled = false;
    if (!handled) return;
    e.preventDefault();
    const len = THREE.MathUtils.clamp(offset.length(), this.controls.minDistance, this.controls.maxDistance);
    offset.setLength(len);
    this.camera.position.copy(target).add(offset);
    this.camera.lookAt(target);
    this.controls.update();
    this.requestRender();
  }

  async loadSpark() {
    if (!this.spark) {
      this.spark = await import("@sparkjsdev/spark");
      this.sparkRenderer = new this.spark.SparkRenderer({
        renderer: this.renderer,
        onDirty: () => this.onSparkDirty(),
      });
      this.scene.add(this.sparkRenderer);
    }
    return this.spark;
  }

  clearObject() {
    if (!this.object) return;
    this.scene.remove(this.object);
    if (typeof this.object.dispose === "function") {
      this.object.dispose(); // SplatMesh frees its own GPU resources
    } else {
      this.object.geometry?.dispose();
      this.object.material?.dispose();
    }
    this.object = null;
  }

  /**
   * Load a model from a URL (.ply, .splat or .spz bytes; the format is sniffed). Uses Spark unless
   * it fails or `prefer` is "points", then the point-cloud fallback. Resolves to
   * {renderer, count}; a newer load() call supersedes an older one.
   */
  async load(url) {
    const token = ++this.loadToken;
    this.setState("loading");
    this.onInfo("Loading model…");
    const response = await fetch(url);
    if (!response.ok) {
      this.setState("error");
      throw new Error(`The model could not be downloaded (${response.status}).`);
    }
    const buffer = await response.arrayBuffer();
    if (token !== this.loadToken) return null;
    const format = sniffFormat(new Uint8Array(buffer));
    let result = null;
    let sparkError = null;
    if (this.prefer !== "points") {
      try {
        result = await this.showSpark(buffer, format, token);
      } catch (err) {
        sparkError = err;
        console.warn("Spark renderer unavailable, using the point-cloud fallback:", err);
      }
    }
    if (token !== this.loadToken) return null;
    if (!result) {
      if (format === "spz") {
        this.setState("error");
        throw new Error(`Cannot display .spz without Spark (${sparkError?.message ?? "disabled"}).`);
      }
      result = this.showPoints(buffer, format);
    }
    if (result.renderer === "spark") await this.whenDisplayed(this.object);
    else await this.frames_(2);
    if (token !== this.loadToken) return null;
    this.setState("ready", result.renderer);
    const label = result.renderer === "spark" ? "Spark (Gaussian splats)" : "three.js points (fallback)";
    this.onInfo(`${label} · ${result.count.toLocaleString()} gaussians`);
    this.requestRender(3);
    return result;
  }

  /** Resolve after `n` animation frames, rendering each. */
  async frames_(n) {
    for (let i = 0; i < n; i++) {
      this.requestRender(2);
      await new Promise((resolve) => requestAnimationFrame(resolve));
    }
  }

  /**
   * Resolve once Spark shows `mesh`: it is in the displayed accumulator and no sort is pending,
   * for 3 frames in a row (or after `timeoutMs`). Spark generates and sorts asynchronously, so
   * the first frames after adding a mesh can still show the previous one.
   */
  async whenDisplayed(mesh, timeoutMs = 20000) {
    const spark = this.sparkRenderer;
    const t0 = performance.now();
    let stable = 0;
    while (performance.now() - t0 < timeoutMs && this.object === mesh) {
      await this.frames_(1);
      const mapping = spark?.display?.mapping;
      const shown = Array.isArray(mapping) ? mapping.some((m) => m.node === mesh) : true;
      const settled = !spark?.sorting && !spark?.sortDirty;
      stable = shown && settled ? stable + 1 : 0;
      if (stable >= 3) return true;
    }
    return false;
  }

  async showSpark(buffer, format, token) {
    const spark = await this.loadSpark();
    const fileType = { ply: spark.SplatFileType.PLY, splat: spark.SplatFileType.SPLAT, spz: spark.SplatFileType.SPZ }[format];
    const mesh = new spark.SplatMesh({ fileBytes: new Uint8Array(buffer), fileType });
    await mesh.initialized;
    if (token !== this.loadToken) { mesh.dispose(); return null; }
    const count = mesh.packedSplats?.numSplats ?? mesh.splats?.getNumSplats?.() ?? 0;
    if (!count) { mesh.dispose(); throw new Error("Spark decoded no splats."); }
    this.clearObject();
    this.object = mesh;
    this.scene.add(mesh);
    return { renderer: "spark", count };
  }

  showPoints(buffer, format) {
    const data = format === "ply" ? parsePly(buffer) : parseSplat(buffer);
    const geometry = new THREE.BufferGeometry();
    geometry.setAttribute("position", new THREE.BufferAttribute(data.positions, 3));
    geometry.setAttribute("color", new THREE.BufferAttribute(data.colors, 3));
    const material = new THREE.PointsMaterial({ size: 0.022, vertexColors: true, sizeAttenuation: true });
    this.clearObject();
    this.object = new THREE.Points(geometry, material);
    this.scene.add(this.object);
    return { renderer: "points", count: data.count };
  }

  dispose() {
    this.loadToken++;
    cancelAnimationFrame(this.raf);
    this.resizeObserver.disconnect();
    this.canvas.removeEventListener("keydown", this.onKey);
    this.controls.dispose();
    this.clearObject();
    if (this.sparkRenderer) this.scene.remove(this.sparkRenderer);
    this.renderer.dispose();
  }
}
