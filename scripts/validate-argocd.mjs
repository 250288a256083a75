#!/usr/bin/env node
// Validates ArgoCD objects against the JSON schemas of npm `@kubernetes-models/argo-cd`.
// Usage: validate-argocd.mjs < objects.json, where the input is a JSON array of
// {"path": ..., "object": ...} (the caller parses the YAML). Prints one line per object and
// exits 1 if any is invalid or of a kind the package does not know.
import { readFileSync } from "node:fs";
import * as argo from "@kubernetes-models/argo-cd/argoproj.io/v1alpha1";

const entries = JSON.parse(readFileSync(0, "utf8"));
if (!Array.isArray(entries) || entries.length === 0) {
  console.error("no ArgoCD objects given");
  process.exit(2);
}
let failures = 0;
for (const { path, object } of entries) {
  const Model = object.apiVersion === "argoproj.io/v1alpha1" ? argo[object.kind] : undefined;
  try {
    if (!Model) throw new Error(`no schema for ${object.apiVersion} ${object.kind}`);
    new Model(object).validate();
    console.log(`ok       ${path} ${object.kind}`);
  } catch (error) {
    failures += 1;
    console.log(`INVALID  ${path} ${object.kind}: ${error.message}`);
  }
}
process.exit(failures === 0 ? 0 : 1);
