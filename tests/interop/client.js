#!/usr/bin/env node
// A second, independent client of the gridshift Scheduler service, for the interop test
// (tests/test_interop_node.py). It shares no code with the Python implementation: it loads
// only the .proto files under protos/ (plus proto-loader's bundled google/protobuf types) and
// talks to the server with @grpc/grpc-js.
//
// Usage: node client.js HOST:PORT REQUEST.json [--deadline-s S] [--protos DIR]
//
// REQUEST.json is an OptimizeRequest in protobuf's JSON mapping (proto or lowerCamel field
// names, RFC 3339 timestamps). The client calls Optimize, then StreamOptimize, and prints
//   {"optimize": OptimizeResponse,
//    "stream": {"progress": [OptimizeProgress...], "result": OptimizeResponse,
//               "events": ["progress"|"result", ...]}}
// on stdout, with proto field names, enums as names and timestamps as RFC 3339 strings.
// On an RPC error it prints {"error": {"code", "details"}} on stderr and exits 1.
'use strict';

const fs = require('fs');
const path = require('path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const PACKAGE = 'gridshift.api.v1';
const TIMESTAMP = 'google.protobuf.Timestamp';
const MAX_MESSAGE_BYTES = 64 * 1024 * 1024;

function parseArgs(argv) {
  const args = {deadlineS: 120, protos: path.resolve(__dirname, '..', '..', 'protos')};
  const positional = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--deadline-s') args.deadlineS = Number(argv[++i]);
    else if (argv[i] === '--protos') args.protos = path.resolve(argv[++i]);
    else positional.push(argv[i]);
  }
  if (positional.length !== 2 || !(args.deadlineS > 0)) {
    process.stderr.write('usage: node client.js HOST:PORT REQUEST.json ' +
                         '[--deadline-s S] [--protos DIR]\n');
    process.exit(2);
  }
  [args.target, args.requestPath] = positional;
  return args;
}

// ---- Timestamps: RFC 3339 string <-> proto-loader's {seconds, nanos} object ----

const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$/;

function timestampFromString(text) {
  const m = RFC3339.exec(text);
  if (!m) throw new Error(`not an RFC 3339 timestamp: ${JSON.stringify(text)}`);
  const [, y, mo, d, h, mi, s, frac, zone] = m;
  let seconds = Date.UTC(+y, +mo - 1, +d, +h, +mi, +s) / 1000;
  if (zone !== 'Z' && zone !== 'z') {
    const sign = zone[0] === '-' ? -1 : 1;
    seconds -= sign * (Number(zone.slice(1, 3)) * 3600 + Number(zone.slice(4, 6)) * 60);
  }
  const nanos = frac ? Number(frac.slice(1).padEnd(9, '0')) : 0;
  return {seconds: String(seconds), nanos};
}

function pad(n, width) {
  return String(n).padStart(width, '0');
}

function timestampToString(ts) {
  const seconds = Number(ts.seconds || 0);
  const nanos = Number(ts.nanos || 0);
  const t = new Date(seconds * 1000);
  let text = `${pad(t.getUTCFullYear(), 4)}-${pad(t.getUTCMonth() + 1, 2)}-` +
             `${pad(t.getUTCDate(), 2)}T${pad(t.getUTCHours(), 2)}:${pad(t.getUTCMinutes(), 2)}:` +
             `${pad(t.getUTCSeconds(), 2)}`;
  if (nanos) {
    // Like protobuf's JSON mapping: 3, 6 or 9 fractional digits.
    let frac = pad(nanos, 9);
    while (frac.length > 3 && frac.endsWith('000')) frac = frac.slice(0, -3);
    text += `.${frac}`;
  }
  return `${text}Z`;
}

// ---- A walk over messages guided by the loaded descriptors ----

function camel(name) {
  return name.replace(/_([a-z0-9])/g, (_, c) => c.toUpperCase());
}

function fieldsOf(definition, typeName) {
  const entry = definition[typeName];
  if (!entry || !entry.type) throw new Error(`unknown message type ${typeName}`);
  return entry.type.field;
}

// The full name of a field's message type: descriptors name it relative to the scope of the
// message that holds the field (protobuf's scoping rules: innermost scope first).
function resolveType(definition, scope, typeName) {
  if (typeName.startsWith('.')) return typeName.slice(1);
  const parts = scope.split('.');
  for (let n = parts.length; n >= 0; n--) {
    const candidate = [...parts.slice(0, n), typeName].join('.');
    if (definition[candidate] && definition[candidate].type) return candidate;
  }
  throw new Error(`cannot resolve message type ${typeName} from ${scope}`);
}

// Request (JSON mapping) -> proto-loader object: proto field names, Timestamps as objects.
function toProtoObject(definition, typeName, value, where) {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new Error(`${where || typeName}: expected an object`);
  }
  const out = {};
  const known = new Set();
  for (const field of fieldsOf(definition, typeName)) {
    const keys = [field.name, camel(field.name)];
    known.add(field.name).add(camel(field.name));
    const key = keys.find((k) => Object.prototype.hasOwnProperty.call(value, k));
    if (key === undefined || value[key] === null) continue;
    const convert = (v, at) => {
      if (field.type !== 'TYPE_MESSAGE') return v;
      const sub = resolveType(definition, typeName, field.typeName);
      if (sub === TIMESTAMP) return typeof v === 'string' ? timestampFromString(v) : v;
      return toProtoObject(definition, sub, v, at);
    };
    const here = where ? `${where}.${field.name}` : field.name;
    out[field.name] = field.label === 'LABEL_REPEATED'
      ? value[key].map((v, i) => convert(v, `${here}[${i}]`))
      : convert(value[key], here);
  }
  for (const key of Object.keys(value)) {
    if (!known.has(key)) throw new Error(`${where || typeName}: unknown field ${key}`);
  }
  return out;
}

// proto-loader object -> JSON-able object: Timestamps as RFC 3339 strings, unset messages
// dropped, oneof case markers (the `oneofs: true` virtual fields) kept out.
function fromProtoObject(definition, typeName, value) {
  const out = {};
  for (const field of fieldsOf(definition, typeName)) {
    const v = value[field.name];
    if (v === null || v === undefined) continue;
    const convert = (x) => {
      if (field.type !== 'TYPE_MESSAGE') return x;
      const sub = resolveType(definition, typeName, field.typeName);
      return sub === TIMESTAMP ? timestampToString(x) : fromProtoObject(definition, sub, x);
    };
    out[field.name] = field.label === 'LABEL_REPEATED' ? v.map(convert) : convert(v);
  }
  return out;
}

// ---- Calls ----

function optimize(client, request, deadline) {
  return new Promise((resolve, reject) => {
    client.Optimize(request, {deadline}, (err, response) => (err ? reject(err) : resolve(response)));
  });
}

function streamOptimize(client, request, deadline) {
  return new Promise((resolve, reject) => {
    const progress = [];
    const events = [];
    let result = null;
    const call = client.StreamOptimize(request, {deadline});
    call.on('data', (event) => {
      events.push(event.event);
      if (event.event === 'progress') progress.push(event.progress);
      else if (event.event === 'result') result = event.result;
    });
    call.on('error', reject);
    call.on('end', () => {
      if (result === null) reject(new Error('StreamOptimize ended without a result'));
      else resolve({progress, result, events});
    });
  });
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const definition = protoLoader.loadSync('gridshift/api/v1/scheduler.proto', {
    includeDirs: [args.protos], keepCase: true, longs: String, enums: String, defaults: true,
    oneofs: true,
  });
  const proto = grpc.loadPackageDefinition(definition);
  const Scheduler = proto.gridshift.api.v1.Scheduler;
  const client = new Scheduler(args.target, grpc.credentials.createInsecure(), {
    'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
    'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
  });
  const json = JSON.parse(fs.readFileSync(args.requestPath, 'utf8'));
  const request = toProtoObject(definition, `${PACKAGE}.OptimizeRequest`, json, '');
  const deadline = () => new Date(Date.now() + args.deadlineS * 1000);
  try {
    const unary = await optimize(client, request, deadline());
    const stream = await streamOptimize(client, request, deadline());
    const responseType = `${PACKAGE}.OptimizeResponse`;
    const out = {
      optimize: fromProtoObject(definition, responseType, unary),
      stream: {
        progress: stream.progress.map(
          (p) => fromProtoObject(definition, `${PACKAGE}.OptimizeProgress`, p)),
        result: fromProtoObject(definition, responseType, stream.result),
        events: stream.events,
      },
    };
    process.stdout.write(`${JSON.stringify(out)}\n`);
  } catch (err) {
    const code = err.code !== undefined ? (grpc.status[err.code] || String(err.code)) : 'CLIENT';
    process.stderr.write(`${JSON.stringify({error: {code, details: err.details || err.message}})}\n`);
    process.exitCode = 1;
  } finally {
    client.close();
  }
}

main().catch((err) => {
  process.stderr.write(`${JSON.stringify({error: {code: 'CLIENT', details: String(err)}})}\n`);
  process.exitCode = 1;
});
