// The demo page, the chat frame and the tenant console (/console/), as plain multi-page build
// output in dist/: one `vite build`, so the Dockerfile and scripts/frontend.py need no new step.
// embed.js is built separately (vite.embed.config.js) as one classic script.
import { resolve } from "node:path";
import { defineConfig } from "vite";

export default defineConfig({
  base: "/",
  build: {
    outDir: "dist",
    emptyOutDir: true,
    target: "es2020",
    chunkSizeWarningLimit: 900, // three.js is most of it, loaded only when the chat opens
    rollupOptions: {
      input: {
        demo: resolve(import.meta.dirname, "index.html"),
        widget: resolve(import.meta.dirname, "widget/index.html"),
        console: resolve(import.meta.dirname, "console/index.html"),
      },
    },
  },
});
