import { defineConfig } from "vite";

// `npm run dev` serves the studio with hot reload and forwards gRPC-web calls
// (every path under /cadenza.v1.*) to a gateway, CADENZA_GATEWAY_URL or
// http://127.0.0.1:8080. The production build is served by the gateway itself,
// on the same origin as the API.
// (Read without @types/node: the config runs in Node, the app does not.)
const env = (globalThis as { process?: { env: Record<string, string | undefined> } }).process?.env;
const gateway = env?.CADENZA_GATEWAY_URL ?? "http://127.0.0.1:8080";

export default defineConfig({
  build: {
    target: "es2022",
    sourcemap: false,
    assetsInlineLimit: 0,
  },
  server: {
    proxy: {
      "^/cadenza\\.v1\\.": { target: gateway, changeOrigin: false },
    },
  },
});
