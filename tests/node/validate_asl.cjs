// Validate Amazon States Language state machines as the AWS toolkits do, with asl-validator.
// Usage: node validate_asl.cjs FILE...  Prints one JSON object: {file: [error, ...]}.
const fs = require('node:fs');
const validator = require('asl-validator');

const out = {};
for (const file of process.argv.slice(2)) {
  const definition = JSON.parse(fs.readFileSync(file, 'utf8'));
  const { errors } = validator(definition, { checkPaths: true, checkArn: true });
  out[file] = errors.map((e) => ({ code: e['Error code'] || '', message: e.Message || String(e) }));
}
process.stdout.write(JSON.stringify(out, null, 1) + '\n');
