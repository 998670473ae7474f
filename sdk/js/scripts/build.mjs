// Builds the package: ESM and CommonJS for Node and bundlers (dist/index.mjs,
// dist/index.cjs, `ws` left external), declarations (tsc --emitDeclarationOnly), and the
// minified browser bundle dist/agora-rtm.min.js that defines the global `AgoraRTM` as
// Agora's CDN script does (`ws` is not in it: the browser's WebSocket is used). Prints
// the bundle's minified and gzip sizes and fails when the gzip size is over 60 KB.
import { build } from "esbuild";
import { execFileSync } from "node:child_process";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";

const root = resolve(fileURLToPath(new URL("..", import.meta.url)));
const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
const LIMIT = 60 * 1024;
const define = {
  __SB_VERSION__: JSON.stringify(pkg.version),
  __SB_BUILD__: JSON.stringify(`switchboard-rtm ${pkg.version} ${new Date().toISOString().slice(0, 10)}`),
};

rmSync(join(root, "dist"), { recursive: true, force: true });
const common = { entryPoints: [join(root, "src/index.ts")], bundle: true, define, logLevel: "warning" };
await build({ ...common, format: "esm", platform: "neutral", target: "es2022", external: ["ws"], outfile: join(root, "dist/index.mjs"), sourcemap: true });
await build({ ...common, entryPoints: [join(root, "src/internal.ts")], format: "esm", platform: "neutral", target: "es2022", external: ["ws"], outfile: join(root, "dist/internal.mjs") });
await build({ ...common, format: "cjs", platform: "node", target: "node20", external: ["ws"], outfile: join(root, "dist/index.cjs"), sourcemap: true });
await build({
  ...common,
  format: "iife",
  globalName: "AgoraRTM",
  platform: "browser",
  target: "es2020",
  minify: true,
  external: ["ws"],
  outfile: join(root, "dist/agora-rtm.min.js"),
  // `AgoraRTM` is the module namespace: `const { RTM } = AgoraRTM;` and AgoraRTM.default.
});
execFileSync(join(root, "node_modules/.bin/tsc"), ["-p", join(root, "tsconfig.build.json")], { stdio: "inherit" });
writeFileSync(
  join(root, "dist/index.d.ts"),
  'export * from "./types/index.js";\nexport { default } from "./types/index.js";\n',
);
writeFileSync(join(root, "dist/index.d.cts"), readFileSync(join(root, "dist/index.d.ts")));

const min = readFileSync(join(root, "dist/agora-rtm.min.js"));
const gz = gzipSync(min, { level: 9 }).length;
const kb = (n) => (n / 1024).toFixed(1) + " KB";
console.log(`dist/agora-rtm.min.js: ${kb(min.length)} minified, ${kb(gz)} minified+gzip (limit ${kb(LIMIT)})`);
if (gz > LIMIT) {
  console.error("the browser bundle is over the size limit");
  process.exit(1);
}
