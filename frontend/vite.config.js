// The demo page and the chat frame, as plain multi-page build output in dist/.
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
      },
    },
  },
});
