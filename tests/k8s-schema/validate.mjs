// Runs each object's kubernetes-models validate(): the JSON Schema that package made
// from the Kubernetes OpenAPI definitions, compiled with ajv. It checks types, required
// fields, enums and formats (an int32 must be a whole number in range), but lets
// unknown fields through: tests/deploy_schema_test.py adds the TypeScript check for
// those. Reads a JSON array of objects on stdin; prints a JSON array holding, per
// object, the list of its errors (empty when valid).
import { readFileSync } from "node:fs";

const objects = JSON.parse(readFileSync(0, "utf8"));
const results = [];
for (const object of objects) {
  const path = `kubernetes-models/${object.apiVersion}/${object.kind}`;
  let model;
  try {
    model = (await import(path))[object.kind];
  } catch (e) {
    results.push([`no model for ${object.apiVersion} ${object.kind} (${path})`]);
    continue;
  }
  try {
    new model(object).validate();
    results.push([]);
  } catch (e) {
    results.push([String(e.message)]);
  }
}
process.stdout.write(JSON.stringify(results) + "\n");
