// embed.js: one small classic script (an IIFE) that a tenant pastes with a <script> tag.
// It must stay a classic script: it reads document.currentScript for its data-* settings.
import { resolve } from "node:path";
import { defineConfig } from "vite";

export default defineConfig({
  build: {
    outDir: "dist",
    emptyOutDir: false,
    target: "es2018",
    lib: {
      entry: resolve(import.meta.dirname, "src/embed.js"),
      name: "AvatarChatEmbed",
      formats: ["iife"],
      fileName: () => "embed.js",
    },
  },
});
