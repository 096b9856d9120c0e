// Validate Amazon States Language state machines as the AWS toolkits do, with asl-validator.
// Usage: node validate_asl.cjs FILE...  Prints one JSON object: {file: [error, ...]}.
const fs = require('node:fs');
// asl-validator makes a new Ajv and compiles its schemas at every call (about 0.25 CPU s
// a machine): one Ajv serves every call here, made by the first with the same schemas,
// formats and options (this script always passes the same); a keyword already there is
// not added again (ajv would throw).
const ajv = require('ajv');
let shared = null;
class SharedAjv extends ajv.default {
  constructor(opts) {
    if (shared) return shared;
    super(opts);
    shared = this;
  }

  addKeyword(def, ...rest) {
    const name = typeof def === 'string' ? def : def.keyword;
    if (shared && [].concat(name).every((k) => this.getKeyword(k))) return this;
    return super.addKeyword(def, ...rest);
  }
}
ajv.default = SharedAjv;
const validator = require('asl-validator');

const out = {};
for (const file of process.argv.slice(2)) {
  const definition = JSON.parse(fs.readFileSync(file, 'utf8'));
  const { errors } = validator(definition, { checkPaths: true, checkArn: true });
  out[file] = errors.map((e) => ({ code: e['Error code'] || '', message: e.Message || String(e) }));
}
process.stdout.write(JSON.stringify(out, null, 1) + '\n');
