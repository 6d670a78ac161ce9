// The mesh preview: the exported textured .glb shown in the splat viewer's scene, in place of the
// splats, for a side-by-side check of what a download looks like.
//
// The .glb is in glTF conventions (Y up, front +Z, resting on y = 0, scaled); its asset metadata
// carries `world_to_asset` (row-major 4x4), whose inverse puts the mesh exactly where the splats
// are in the viewer's Z-up world. Drawn unlit (the baked texture already holds the splats' light).

import * as THREE from "three";
import { GLTFLoader } from "three/addons/loaders/GLTFLoader.js";

/**
 * GLTFLoader plugin: decode textures embedded in the .glb straight from their bytes. (The stock
 * path fetches a blob: URL, which the workspace's Content-Security-Policy, connect-src 'self',
 * refuses.)
 */
function embeddedTextures(parser) {
  return {
    name: "glimpse3d_embedded_textures",
    async loadTexture(index) {
      const source = parser.json.images[parser.json.textures[index].source];
      const bytes = await parser.getDependency("bufferView", source.bufferView);
      const bitmap = await createImageBitmap(new Blob([bytes], { type: source.mimeType || "image/png" }));
      const texture = new THREE.Texture(bitmap);
      texture.flipY = false; // glTF's UV origin is the image's top-left
      texture.colorSpace = THREE.SRGBColorSpace;
      texture.needsUpdate = true;
      return texture;
    },
  };
}

export class MeshPreview {
  /** @param {import("./viewer.js").SplatViewer} viewer */
  constructor(viewer) {
    this.viewer = viewer;
    this.group = null;
    this.token = 0;
    this.faces = 0;
  }

  get shown() { return this.group !== null; }

  /** Fetch and show the .glb at `url` (hides the splats); resolves to the face count. */
  async show(url) {
    const token = ++this.token;
    const response = await fetch(url);
    if (!response.ok) {
      let detail = `${response.status} ${response.statusText}`;
      try { detail = (await response.json()).detail || detail; } catch { /* not JSON */ }
      throw new Error(detail);
    }
    const loader = new GLTFLoader();
    loader.register(embeddedTextures);
    const gltf = await loader.parseAsync(await response.arrayBuffer(), "");
    if (token !== this.token) return null; // superseded (hidden or another version)
    const group = new THREE.Group();
    const m = gltf.asset?.extras?.world_to_asset;
    if (Array.isArray(m) && m.length === 16) {
      const toWorld = new THREE.Matrix4().set(...m).invert(); // a rotation, scale and shift
      toWorld.decompose(group.position, group.quaternion, group.scale);
    }
    let faces = 0;
    gltf.scene.traverse((node) => {
      if (!node.isMesh) return;
      const old = node.material;
      node.material = new THREE.MeshBasicMaterial({
        map: old.map ?? null, vertexColors: Boolean(node.geometry.attributes.color), side: THREE.FrontSide,
      });
      old.dispose();
      faces += (node.geometry.index ? node.geometry.index.count : node.geometry.attributes.position.count) / 3;
    });
    group.add(gltf.scene);
    this.clear();
    this.group = group;
    this.faces = faces;
    this.viewer.scene.add(group);
    if (this.viewer.object) this.viewer.object.visible = false;
    this.viewer.root.dataset.mesh = "shown";
    this.viewer.requestRender();
    return faces;
  }

  clear() {
    if (!this.group) return;
    this.viewer.scene.remove(this.group);
    this.group.traverse((node) => {
      if (!node.isMesh) return;
      node.geometry.dispose();
      node.material.map?.dispose();
      node.material.dispose();
    });
    this.group = null;
  }

  /** Back to the splats. */
  hide() {
    this.token++;
    this.clear();
    if (this.viewer.object) this.viewer.object.visible = true;
    delete this.viewer.root.dataset.mesh;
    this.viewer.requestRender();
  }
}
