import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { NODE_ENV, NODE_FLAGS } from "../helpers/child.ts";

// The bridge starts the same way everywhere it is started for real: `npm start`, the Docker image, and the
// tests and bench (test/helpers/child.ts). Its memory bound (SPEC §8, bench/results.md) depends on these.

const root = new URL("../../", import.meta.url);
const read = (path: string): string => readFileSync(new URL(path, root), "utf8");

test("npm start runs node with the shipped flags and environment", () => {
  const pkg = JSON.parse(read("package.json")) as { scripts: Record<string, string> };
  const env = Object.entries(NODE_ENV).map(([k, v]) => `${k}=${v}`);
  assert.equal(pkg.scripts["start"], [...env, "node", ...NODE_FLAGS, "src/main.ts", "serve"].join(" "));
});

test("the Docker image runs node with the shipped flags and environment", () => {
  const dockerfile = read("Dockerfile");
  const entrypoint = /^ENTRYPOINT (\[.*\])$/m.exec(dockerfile)?.[1];
  assert.ok(entrypoint !== undefined, "the Dockerfile has an exec-form ENTRYPOINT");
  assert.deepEqual(JSON.parse(entrypoint), ["node", ...NODE_FLAGS, "src/main.ts"]);
  for (const [key, value] of Object.entries(NODE_ENV)) {
    assert.match(dockerfile, new RegExp(`^\\s+${key}=${value} \\\\$`, "m"), `ENV ${key}=${value}`);
  }
});
