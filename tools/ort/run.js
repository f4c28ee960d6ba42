#!/usr/bin/env node
// run.js: run an ONNX model with onnxruntime-node on .npy inputs.
//
//   node tools/ort/run.js MODEL.onnx --input [NAME=]FILE.npy ...
//        --output [NAME=]FILE.npy ... [--threads T] [--repeat R] [--warmup W]
//        [--per-sample]
//
// The reference runtime for lamina's tests and benchmarks.  NAME may be left
// out when the model has a single input (or output).  With --repeat R the
// model is run once for real, W more times to warm up (default 3), then R
// timed times, and exactly one line is printed:
//   latency_ms median=X p90=Y min=Z
// Errors are printed as one line and exit with status 1.
//
// --per-sample runs a batch of N (every input's dim 0) one sample at a time
// through the same session and writes the outputs stacked on dim 0: the
// reference for a batch-1 model that lamina runs with --batch N, with no
// re-exported dynamic-batch model and one session load.
//
// It also exports the helpers that check_slices.js shares (session options,
// tensor conversion, NAME=FILE parsing).
'use strict';

const fs = require('fs');
const npy = require('./npy.js');

// onnxruntime-node 1.30's Linux library leaves a /tmp/mat-debug-PID.log
// behind on every run: empty, or its telemetry's failures to store events
// (nothing about the model); the tests run it thousands of times, so the
// process removes its own on exit.
function removeDebugLog() {
  try {
    fs.unlinkSync(`/tmp/mat-debug-${process.pid}.log`);
  } catch (e) { /* none made */ }
}

let ort = null;
function onnxruntime() {
  if (!ort) {
    try {
      ort = require('onnxruntime-node');
    } catch (e) {
      throw new Error('onnxruntime-node is not installed (run tools/setup)');
    }
    process.on('exit', removeDebugLog);
  }
  return ort;
}

// Session options used by every lamina tool, so timings and numerics are
// comparable: T intra-op threads, one inter-op thread, all optimisations,
// sequential execution, warnings silenced.
async function createSession(modelPath, threads = 1) {
  if (!fs.existsSync(modelPath)) throw new Error(`model not found: ${modelPath}`);
  try {
    return await onnxruntime().InferenceSession.create(modelPath, {
      intraOpNumThreads: threads,
      interOpNumThreads: 1,
      graphOptimizationLevel: 'all',
      executionMode: 'sequential',
      logSeverityLevel: 3,
    });
  } catch (e) {
    throw new Error(`cannot load ${modelPath}: ${firstLine(e)}`);
  }
}

function firstLine(e) {
  return String(e && e.message ? e.message : e).split('\n')[0];
}

function toTensor(array) {
  return new (onnxruntime().Tensor)(array.dtype, array.data, array.shape);
}

function fromTensor(tensor) {
  if (!npy.DTYPES.includes(tensor.type)) {
    throw new Error(`output type '${tensor.type}' cannot be saved as .npy`);
  }
  return { dtype: tensor.type, shape: Array.from(tensor.dims), data: tensor.data };
}

// Split "[NAME=]FILE" into {name, file}; name is null when absent.  The
// whole argument counts as a file when such a file exists, so paths with
// '=' work too.  Tensor names may contain '/', so split at the first '='.
function parseNamedFile(arg) {
  const eq = arg.indexOf('=');
  if (eq <= 0 || fs.existsSync(arg)) return { name: null, file: arg };
  return { name: arg.slice(0, eq), file: arg.slice(eq + 1) };
}

// Give each "[NAME=]FILE" a name from `names` (the model's inputs or
// outputs); `kind` is "input" or "output" for messages.
function resolveNames(entries, names, kind) {
  const out = [];
  for (const { name, file } of entries) {
    let n = name;
    if (n === null) {
      if (names.length !== 1) {
        throw new Error(`--${kind} ${file}: the model has ${names.length} ${kind}s ` +
          `(${names.join(', ')}); write NAME=FILE`);
      }
      n = names[0];
    }
    if (!names.includes(n)) {
      throw new Error(`unknown ${kind} name '${n}' (the model has: ${names.join(', ')})`);
    }
    if (out.some((e) => e.name === n)) throw new Error(`${kind} '${n}' given twice`);
    out.push({ name: n, file });
  }
  return out;
}

// Check an array against a session's input metadata (when the runtime
// provides it) so a mismatch gives a clear message.
function checkInput(session, name, array) {
  const meta = (session.inputMetadata || []).find((m) => m.name === name);
  if (!meta || !meta.isTensor) return;
  if (meta.type !== array.dtype) {
    throw new Error(`input '${name}' wants ${meta.type}, got ${array.dtype}`);
  }
  const want = meta.shape;
  const ok = want.length === array.shape.length &&
    want.every((d, i) => typeof d !== 'number' || d < 0 || d === array.shape[i]);
  if (want.length && !ok) {
    throw new Error(`input '${name}' wants shape [${want}], got [${array.shape}]`);
  }
}

async function runOnce(session, feeds) {
  try {
    return await session.run(feeds);
  } catch (e) {
    throw new Error(`inference failed: ${firstLine(e)}`);
  }
}

function usage() {
  return 'usage: node tools/ort/run.js MODEL.onnx --input [NAME=]FILE.npy ... ' +
    '--output [NAME=]FILE.npy ... [--threads T] [--repeat R] [--warmup W] ' +
    '[--per-sample]';
}

function parseArgs(argv) {
  const opts = {
    model: null, inputs: [], outputs: [], threads: 1, repeat: 0, warmup: 3, perSample: false,
  };
  const intArg = (flag, v, min) => {
    if (v === undefined || !/^\d+$/.test(v) || Number(v) < min) {
      throw new Error(`${flag} needs an integer >= ${min}`);
    }
    return Number(v);
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--input') opts.inputs.push(parseNamedFile(next()));
    else if (a === '--output') opts.outputs.push(parseNamedFile(next()));
    else if (a === '--threads') opts.threads = intArg(a, argv[++i], 1);
    else if (a === '--repeat') opts.repeat = intArg(a, argv[++i], 1);
    else if (a === '--warmup') opts.warmup = intArg(a, argv[++i], 0);
    else if (a === '--per-sample') opts.perSample = true;
    else if (a === '-h' || a === '--help') { console.log(usage()); process.exit(0); }
    else if (a.startsWith('-')) throw new Error(`unknown option ${a} (see --help)`);
    else if (opts.model === null) opts.model = a;
    else throw new Error(`unexpected argument ${a} (see --help)`);
  }
  if (opts.model === null) throw new Error(usage());
  return opts;
}

function percentile(sorted, p) {
  // Nearest-rank percentile of an ascending array.
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[rank - 1];
}

// Sample i (dim 0) of an array, as a batch-1 array sharing its data.
function sampleOf(array, i) {
  const n = array.shape[0];
  const per = array.data.length / n;
  return {
    dtype: array.dtype,
    shape: [1, ...array.shape.slice(1)],
    data: array.data.subarray(i * per, (i + 1) * per),
  };
}

// Run the batch one sample at a time; outputs stacked on dim 0.
async function runPerSample(session, arrays) {
  const names = Object.keys(arrays);
  const n = names.length ? arrays[names[0]].shape[0] : 0;
  for (const name of names) {
    const a = arrays[name];
    if (!a.shape.length || a.shape[0] !== n) {
      throw new Error(`--per-sample: input '${name}' has shape [${a.shape}], ` +
        `not a batch of ${n} on dim 0`);
    }
  }
  const parts = {};
  for (let i = 0; i < n; i++) {
    const feeds = {};
    for (const name of names) {
      const s = sampleOf(arrays[name], i);
      checkInput(session, name, s);
      feeds[name] = toTensor(s);
    }
    const out = await runOnce(session, feeds);
    for (const [name, t] of Object.entries(out)) (parts[name] = parts[name] || []).push(fromTensor(t));
  }
  const results = {};
  for (const [name, list] of Object.entries(parts)) {
    const total = list.reduce((k, a) => k + a.data.length, 0);
    const data = new list[0].data.constructor(total);
    let at = 0;
    for (const a of list) {
      data.set(a.data, at);
      at += a.data.length;
    }
    const shape = [list.reduce((k, a) => k + (a.shape[0] || 1), 0), ...list[0].shape.slice(1)];
    results[name] = { dtype: list[0].dtype, shape, data };
  }
  return results;
}

function median(sorted) {
  const n = sorted.length;
  return n % 2 ? sorted[(n - 1) / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
}

async function main(argv) {
  const opts = parseArgs(argv);
  // Check all files before the (slow) model load.
  for (const { file } of opts.inputs) {
    if (!fs.existsSync(file)) throw new Error(`input file not found: ${file}`);
  }
  const session = await createSession(opts.model, opts.threads);
  const inputs = resolveNames(opts.inputs, session.inputNames, 'input');
  const outputs = resolveNames(opts.outputs, session.outputNames, 'output');

  const feeds = {};
  const arrays = {};
  for (const { name, file } of inputs) {
    const array = npy.readNpy(file);
    arrays[name] = array;
    if (!opts.perSample) {
      checkInput(session, name, array);
      feeds[name] = toTensor(array);
    }
  }
  const missing = session.inputNames.filter((n) => !(n in arrays));
  if (missing.length) throw new Error(`missing --input for: ${missing.join(', ')}`);
  if (opts.perSample && opts.repeat > 0) throw new Error('--per-sample does not time (no --repeat)');

  let results;
  if (opts.perSample) {
    results = await runPerSample(session, arrays);
  } else {
    results = {};
    for (const [name, t] of Object.entries(await runOnce(session, feeds))) results[name] = fromTensor(t);
  }
  for (const { name, file } of outputs) {
    try {
      npy.writeNpy(file, results[name]);
    } catch (e) {
      throw new Error(`cannot write ${file}: ${firstLine(e)}`);
    }
  }

  if (opts.repeat > 0) {
    for (let i = 0; i < opts.warmup; i++) await runOnce(session, feeds);
    const times = [];
    for (let i = 0; i < opts.repeat; i++) {
      const t0 = process.hrtime.bigint();
      await runOnce(session, feeds);
      times.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
    times.sort((a, b) => a - b);
    console.log(`latency_ms median=${median(times).toFixed(3)} ` +
      `p90=${percentile(times, 90).toFixed(3)} min=${times[0].toFixed(3)}`);
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).catch((e) => {
    console.error(`run.js: ${e.message}`);
    process.exit(1);
  });
}

module.exports = {
  createSession, toTensor, fromTensor, parseNamedFile, resolveNames,
  checkInput, runOnce, firstLine,
};
