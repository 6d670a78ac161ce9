// Validate .glb files with the Khronos glTF validator (npm "gltf-validator");
// prints one JSON report per file: {"file", "errors", "warnings", "messages"}.
// Usage: node tests/splat/validate_gltf.cjs FILE.glb [...]
const fs = require("fs");
const validator = require("gltf-validator");

(async () => {
  for (const file of process.argv.slice(2)) {
    const report = await validator.validateBytes(new Uint8Array(fs.readFileSync(file)), {
      maxIssues: 100,
    });
    const issues = report.issues;
    console.log(JSON.stringify({
      file,
      errors: issues.numErrors,
      warnings: issues.numWarnings,
      messages: issues.messages.map((m) => `${m.severity}:${m.code}:${m.pointer || ""}:${m.message}`),
      generator: report.info && report.info.generator,
    }));
  }
})().catch((e) => { console.error(e); process.exit(1); });
