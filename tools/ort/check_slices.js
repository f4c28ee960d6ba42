#!/usr/bin/env node
// check_slices.js: check that a sliced model computes what the whole model does.
//
//   node tools/ort/check_slices.js MODEL.onnx SLICE_DIR [--tol 1e-5] [--min-scale S]
//        [--seed N] [--input NAME=FILE.npy ...] [--write-ref DIR] [--batch N]
//
// Reads SLICE_DIR/manifest.json, written by lamina's slicer:
//   {"inputs":  [{"name", "dtype", "shape"}],      the model's inputs
//    "outputs": [{"name", "dtype", "shape"}],      the model's outputs
//    "slices":  [{"index", "file", "inputs": [...], "outputs": [...],
//                 "nodes", "flops", "param_bytes", "output_bytes"}]}
// with `file` relative to SLICE_DIR, numpy dtype names and int shapes (a
// dimension that is not a positive number is taken as 1 for generated data).
// Shapes are at the manifest's "batch" (1 when absent); a tensor with a
// "batch_axis" holds shape[batch_axis] / batch rows per sample there, and
// with --batch N the check runs at batch N: generated inputs have N times
// those rows and every slice input is checked at N (the whole model must
// take N too: exported with a symbolic batch).
//
// It makes deterministic inputs (float: uniform in [-1, 1]; integers: small
// non-negative values; from a seeded PRNG) unless --input gives them, runs the
// whole model, checks each slice's session input/output names against the
// manifest, runs the slices in index order (each input comes from the model
// inputs or an earlier slice's outputs), and compares every model output
// relative to its own scale:
//   rel_err = max|slices - model| / max|model|   must be <= tol
// (an all-zero output must be matched exactly).  With --min-scale S every
// output must also say something: max|model| > S and not all values equal,
// so a test model that squashes its outputs cannot pass any slicing.
// Prints "output NAME rel_err=... max_ref=..." per output, then "OK N
// slices" (exit 0) or "FAIL: reason" (exit 1).  --write-ref DIR saves the
// inputs and the whole model's outputs as DIR/input_<i>.npy,
// DIR/output_<i>.npy (manifest order) with DIR/ref.json listing {name,
// file, dtype, shape} for each.
'use strict';

const fs = require('fs');
const path = require('path');
const npy = require('./npy.js');
const {
  createSession, toTensor, fromTensor, parseNamedFile, resolveNames, checkInput,
  runOnce,
} = require('./run.js');

const fail = (msg) => { throw new Error(msg); };

function usage() {
  return 'usage: node tools/ort/check_slices.js MODEL.onnx SLICE_DIR [--tol 1e-5] ' +
    '[--min-scale S] [--seed N] [--input NAME=FILE.npy ...] [--write-ref DIR] ' +
    '[--batch N]';
}

function parseArgs(argv) {
  const opts = {
    model: null, dir: null, tol: 1e-5, minScale: null, seed: 1, inputs: [], writeRef: null,
    batch: null,
  };
  const positional = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => {
      if (i + 1 >= argv.length) fail(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--tol') {
      opts.tol = Number(next());
      if (!(opts.tol >= 0)) fail('--tol needs a non-negative number');
    } else if (a === '--min-scale') {
      // outputs must be larger than this and not constant
      opts.minScale = Number(next());
      if (!(opts.minScale >= 0)) fail('--min-scale needs a non-negative number');
    } else if (a === '--seed') {
      const v = next();
      if (!/^\d+$/.test(v)) fail('--seed needs a non-negative integer');
      opts.seed = Number(v);
    } else if (a === '--batch') {
      const v = next();
      if (!/^[1-9]\d*$/.test(v)) fail('--batch needs a positive integer');
      opts.batch = Number(v);
    } else if (a === '--input') opts.inputs.push(parseNamedFile(next()));
    else if (a === '--write-ref') opts.writeRef = next();
    else if (a === '-h' || a === '--help') { console.log(usage()); process.exit(0); }
    else if (a.startsWith('-')) fail(`unknown option ${a} (see --help)`);
    else positional.push(a);
  }
  if (positional.length !== 2) fail(usage());
  [opts.model, opts.dir] = positional;
  return opts;
}

// ---- manifest ------------------------------------------------------------

function checkValueList(list, where) {
  if (!Array.isArray(list)) fail(`manifest: ${where} must be an array`);
  list.forEach((v, i) => {
    const at = `${where}[${i}]`;
    if (!v || typeof v.name !== 'string' || !v.name) fail(`manifest: ${at}.name missing`);
    if (!npy.DTYPES.includes(v.dtype)) {
      fail(`manifest: ${at} (${v.name}) has unsupported dtype ${JSON.stringify(v.dtype)}`);
    }
    if (!Array.isArray(v.shape) || !v.shape.every(Number.isInteger)) {
      fail(`manifest: ${at} (${v.name}) shape must be an array of integers`);
    }
  });
}

function readManifest(dir) {
  const file = path.join(dir, 'manifest.json');
  let text;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    fail(`cannot read ${file}: ${e.code === 'ENOENT' ? 'no such file' : e.message}`);
  }
  let m;
  try {
    m = JSON.parse(text);
  } catch (e) {
    fail(`${file}: invalid JSON: ${e.message}`);
  }
  checkValueList(m.inputs, 'inputs');
  checkValueList(m.outputs, 'outputs');
  if (!Array.isArray(m.slices) || m.slices.length === 0) fail('manifest: no slices');
  m.slices.forEach((s, i) => {
    if (!s || !Number.isInteger(s.index)) fail(`manifest: slices[${i}].index missing`);
    if (typeof s.file !== 'string' || !s.file) fail(`manifest: slice ${s.index} has no file`);
    checkValueList(s.inputs, `slice ${s.index} inputs`);
    checkValueList(s.outputs, `slice ${s.index} outputs`);
  });
  const slices = [...m.slices].sort((a, b) => a.index - b.index);
  slices.forEach((s, i) => {
    if (i && s.index === slices[i - 1].index) fail(`manifest: slice index ${s.index} repeated`);
  });
  const batch = m.batch === undefined ? 1 : m.batch;
  if (!Number.isInteger(batch) || batch < 1) fail('manifest: "batch" is not a batch size');
  return { inputs: m.inputs, outputs: m.outputs, slices, batch };
}

// A manifest tensor's shape at batch n: its batch axis scaled.
function shapeAt(v, batch0, n) {
  const shape = [...v.shape];
  const a = v.batch_axis;
  if (Number.isInteger(a) && a >= 0 && a < shape.length) shape[a] = shape[a] / batch0 * n;
  return shape;
}

// ---- deterministic inputs ------------------------------------------------

// mulberry32: a small 32-bit PRNG; the same seed gives the same stream on
// every machine.
function makeRng(seed) {
  let state = (seed >>> 0) ^ 0x9e3779b9;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296; // [0, 1)
  };
}

const SMALL_INT = 4; // integer inputs are drawn from [0, SMALL_INT)

function randomArray(dtype, shape, rng) {
  const dims = shape.map((d) => (d > 0 ? d : 1));
  const count = dims.reduce((a, b) => a * b, 1);
  let data;
  switch (dtype) {
    case 'float32':
    case 'float64':
      data = (dtype === 'float32' ? Float32Array : Float64Array).from(
        { length: count }, () => rng() * 2 - 1);
      break;
    case 'int64':
      data = BigInt64Array.from({ length: count }, () => BigInt(Math.floor(rng() * SMALL_INT)));
      break;
    case 'int32':
    case 'int8':
    case 'uint8': {
      const Typed = { int32: Int32Array, int8: Int8Array, uint8: Uint8Array }[dtype];
      data = Typed.from({ length: count }, () => Math.floor(rng() * SMALL_INT));
      break;
    }
    case 'bool':
      data = Uint8Array.from({ length: count }, () => (rng() < 0.5 ? 1 : 0));
      break;
    default:
      fail(`cannot generate inputs of dtype ${dtype}`);
  }
  return { dtype, shape: dims, data };
}

// ---- comparison ----------------------------------------------------------

const sameList = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);

function relError(name, ref, got) {
  if (ref.type !== got.type) fail(`output ${name}: slices give ${got.type}, model ${ref.type}`);
  if (!sameList(Array.from(ref.dims), Array.from(got.dims))) {
    fail(`output ${name}: slices give shape [${got.dims}], model [${ref.dims}]`);
  }
  // Equal values (including equal infinities and NaN against NaN) count as
  // no difference; any other NaN/inf mismatch is an infinite error.  The
  // scale is the largest finite |ref|.
  let maxDiff = 0;
  let maxRef = 0;
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < ref.data.length; i++) {
    const r = Number(ref.data[i]);
    const g = Number(got.data[i]);
    if (Number.isFinite(r)) {
      maxRef = Math.max(maxRef, Math.abs(r));
      lo = Math.min(lo, r);
      hi = Math.max(hi, r);
    }
    if (r === g || (Number.isNaN(r) && Number.isNaN(g))) continue;
    const d = Math.abs(r - g);
    if (!Number.isFinite(d)) return { rel: Infinity, maxRef, constant: false };
    maxDiff = Math.max(maxDiff, d);
  }
  const rel = maxRef > 0 ? maxDiff / maxRef : (maxDiff > 0 ? Infinity : 0);
  return { rel, maxRef, constant: !(hi > lo) };
}

function writeRef(dir, manifest, feeds, results) {
  fs.mkdirSync(dir, { recursive: true });
  const ref = { inputs: [], outputs: [] };
  const save = (kind, list, tensors) => {
    list.forEach((v, i) => {
      const array = fromTensor(tensors[v.name]);
      const file = `${kind}_${i}.npy`;
      npy.writeNpy(path.join(dir, file), array);
      ref[`${kind}s`].push({ name: v.name, file, dtype: array.dtype, shape: array.shape });
    });
  };
  save('input', manifest.inputs, feeds);
  save('output', manifest.outputs, results);
  fs.writeFileSync(path.join(dir, 'ref.json'), JSON.stringify(ref, null, 2) + '\n');
}

// ---- main ----------------------------------------------------------------

async function main(argv) {
  const opts = parseArgs(argv);
  const manifest = readManifest(opts.dir);
  const batch = opts.batch === null ? manifest.batch : opts.batch;
  const model = await createSession(opts.model, 1);

  const names = (list) => list.map((v) => v.name);
  if (!sameList(model.inputNames, names(manifest.inputs))) {
    fail(`model inputs [${model.inputNames}] != manifest inputs [${names(manifest.inputs)}]`);
  }
  if (!sameList(model.outputNames, names(manifest.outputs))) {
    fail(`model outputs [${model.outputNames}] != manifest outputs [${names(manifest.outputs)}]`);
  }

  // Load and check every slice before running anything.
  const sessions = [];
  for (const s of manifest.slices) {
    let session;
    try {
      session = await createSession(path.resolve(opts.dir, s.file), 1);
    } catch (e) {
      fail(`slice ${s.index}: ${e.message}`);
    }
    for (const kind of ['input', 'output']) {
      const got = session[`${kind}Names`];
      const want = names(s[`${kind}s`]);
      if (!sameList(got, want)) {
        fail(`slice ${s.index} (${s.file}): session ${kind}s [${got}] != manifest [${want}]`);
      }
    }
    sessions.push(session);
  }

  // Model inputs: from --input files, the rest generated.
  const feeds = {};
  const given = resolveNames(opts.inputs, model.inputNames, 'input');
  for (const { name, file } of given) {
    const array = npy.readNpy(file);
    checkInput(model, name, array);
    feeds[name] = toTensor(array);
  }
  const rng = makeRng(opts.seed);
  for (const v of manifest.inputs) {
    if (!(v.name in feeds)) {
      feeds[v.name] = toTensor(randomArray(v.dtype, shapeAt(v, manifest.batch, batch), rng));
    }
  }

  const reference = await runOnce(model, feeds);
  if (opts.writeRef) writeRef(opts.writeRef, manifest, feeds, reference);

  // Run the slices; `available` holds every tensor produced so far.
  const available = { ...feeds };
  for (const [i, s] of manifest.slices.entries()) {
    const sliceFeeds = {};
    for (const v of s.inputs) {
      const t = available[v.name];
      if (!t) {
        fail(`slice ${s.index} input '${v.name}' is neither a model input ` +
          'nor an output of an earlier slice');
      }
      if (t.type !== v.dtype) {
        fail(`slice ${s.index} input '${v.name}': manifest says ${v.dtype}, tensor is ${t.type}`);
      }
      const dims = Array.from(t.dims);
      const want = shapeAt(v, manifest.batch, batch);
      const fits = dims.length === want.length &&
        want.every((d, k) => d <= 0 || d === dims[k]);
      if (!fits) {
        fail(`slice ${s.index} input '${v.name}': manifest shape [${want}] at batch ` +
          `${batch}, tensor [${dims}]`);
      }
      sliceFeeds[v.name] = t;
    }
    let out;
    try {
      out = await runOnce(sessions[i], sliceFeeds);
    } catch (e) {
      fail(`slice ${s.index} (${s.file}): ${e.message}`);
    }
    for (const v of s.outputs) available[v.name] = out[v.name];
  }

  let worst = null;
  for (const v of manifest.outputs) {
    if (!available[v.name]) fail(`model output '${v.name}' is not produced by any slice`);
    const { rel, maxRef, constant } = relError(v.name, reference[v.name], available[v.name]);
    console.log(`output ${v.name} rel_err=${rel.toExponential(3)} ` +
      `max_ref=${maxRef.toExponential(3)}`);
    if (!(rel <= opts.tol) && !worst) {
      worst = { name: v.name, what: `rel_err=${rel.toExponential(3)} > tol ${opts.tol}` };
    }
    if (opts.minScale !== null && !worst && (!(maxRef > opts.minScale) || constant)) {
      worst = {
        name: v.name,
        what: `is degenerate (max_ref=${maxRef.toExponential(3)}` +
          `${constant ? ', every value equal' : ''}): a test model that cannot tell a wrong answer`,
      };
    }
  }
  if (worst) fail(`output ${worst.name} ${worst.what}`);
  console.log(`OK ${manifest.slices.length} slices`);
}

if (require.main === module) {
  main(process.argv.slice(2)).catch((e) => {
    // Every failure, expected or not, is one line with a FAIL: prefix.
    console.log(`FAIL: ${e.message.split('\n')[0]}`);
    process.exit(1);
  });
}
