// Lint BPMN files as Camunda Modeler does: bpmnlint's recommended rules and Camunda 8's own
// (bpmnlint-plugin-camunda-compat, chosen by the file's modeler:executionPlatformVersion).
// Usage: node lint_bpmn.cjs FILE...  Prints one JSON object: {file: [problem, ...]}.
const fs = require('node:fs');
const BpmnModdle = require('bpmn-moddle');
const { Linter } = require('bpmnlint');
const NodeResolver = require('bpmnlint/lib/resolver/node-resolver');
const zeebe = require('zeebe-bpmn-moddle/resources/zeebe.json');

async function lint(file) {
  const moddle = new BpmnModdle({ zeebe });
  const xml = fs.readFileSync(file, 'utf8');
  const { rootElement, warnings } = await moddle.fromXML(xml);
  const version = (rootElement.$attrs['modeler:executionPlatformVersion'] || '').split('.');
  const camunda = `plugin:camunda-compat/camunda-cloud-${version[0]}-${version[1]}`;
  const linter = new Linter({
    config: { extends: ['bpmnlint:recommended', camunda] },
    resolver: new NodeResolver({ require }),
  });
  const reports = await linter.lint(rootElement);
  const problems = warnings.map((w) => ({ rule: 'parse', message: w.message }));
  for (const [rule, found] of Object.entries(reports)) {
    for (const r of found) {
      problems.push({ rule, id: r.id, message: r.message, category: r.category });
    }
  }
  return problems;
}

(async () => {
  const out = {};
  for (const file of process.argv.slice(2)) out[file] = await lint(file);
  process.stdout.write(JSON.stringify(out, null, 1) + '\n');
})().catch((err) => { console.error(String(err && err.stack || err)); process.exit(2); });
