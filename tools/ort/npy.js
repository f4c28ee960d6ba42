// npy.js: read and write NumPy .npy files for lamina's Node.js tools.
//
// Supports format versions 1.0 and 2.0 (3.0 only differs in allowing utf-8
// in the header, which we also accept), little-endian, C order, for the
// dtypes float32, float64, int64, int32, int8, uint8 and bool.  Arrays are
// returned as {dtype, shape, data}, where data is a TypedArray:
//   float32 Float32Array   float64 Float64Array   int64 BigInt64Array
//   int32   Int32Array     int8    Int8Array      uint8 Uint8Array
//   bool    Uint8Array (0 or 1, which is what onnxruntime-node expects)
// Anything else (fortran_order True, big-endian, other dtypes, a size that
// does not match the shape) is rejected with an Error naming the problem.
'use strict';

const fs = require('fs');

const MAGIC = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]); // \x93NUMPY

// dtype name -> [descr written, descrs accepted, TypedArray]
const DTYPES = {
  float32: ['<f4', ['<f4'], Float32Array],
  float64: ['<f8', ['<f8'], Float64Array],
  int64: ['<i8', ['<i8'], BigInt64Array],
  int32: ['<i4', ['<i4'], Int32Array],
  int8: ['|i1', ['|i1', '<i1'], Int8Array],
  uint8: ['|u1', ['|u1', '<u1'], Uint8Array],
  bool: ['|b1', ['|b1', '<b1'], Uint8Array],
};

function dtypeFromDescr(descr, where) {
  for (const [name, [, accepted]] of Object.entries(DTYPES)) {
    if (accepted.includes(descr)) return name;
  }
  if (descr.startsWith('>')) {
    throw new Error(`${where}: big-endian dtype '${descr}' is not supported`);
  }
  throw new Error(`${where}: unsupported dtype '${descr}' ` +
    `(supported: ${Object.keys(DTYPES).join(', ')})`);
}

// Parse the header, a Python dict literal such as
//   {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
// Only these three keys, string/bool/int-tuple values, are allowed.
function parseHeader(text, where) {
  const bad = (why) => new Error(`${where}: bad .npy header (${why}): ${text.trim()}`);
  let pos = 0;
  const ws = () => { while (pos < text.length && /\s/.test(text[pos])) pos++; };
  const expect = (ch) => {
    ws();
    if (text[pos] !== ch) throw bad(`expected '${ch}' at ${pos}`);
    pos++;
  };
  const value = () => {
    ws();
    const c = text[pos];
    if (c === "'" || c === '"') {
      const end = text.indexOf(c, pos + 1);
      if (end < 0) throw bad('unterminated string');
      const s = text.slice(pos + 1, end);
      pos = end + 1;
      return s;
    }
    if (c === '(') {
      pos++;
      const items = [];
      for (;;) {
        ws();
        if (text[pos] === ')') { pos++; return items; }
        const m = /^\d+/.exec(text.slice(pos));
        if (!m) throw bad('shape must be a tuple of non-negative integers');
        items.push(Number(m[0]));
        pos += m[0].length;
        ws();
        if (text[pos] === ',') pos++;
        else if (text[pos] !== ')') throw bad("expected ',' or ')' in shape");
      }
    }
    for (const [word, v] of [['True', true], ['False', false]]) {
      if (text.startsWith(word, pos)) { pos += word.length; return v; }
    }
    throw bad(`unexpected value at ${pos}`);
  };

  const dict = {};
  expect('{');
  for (;;) {
    ws();
    if (text[pos] === '}') { pos++; break; }
    const key = value();
    if (typeof key !== 'string') throw bad('keys must be strings');
    expect(':');
    dict[key] = value();
    ws();
    if (text[pos] === ',') pos++;
    else if (text[pos] !== '}') throw bad("expected ',' or '}'");
  }
  if (text.slice(pos).trim() !== '') throw bad('trailing characters');
  const keys = Object.keys(dict).sort().join(',');
  if (keys !== 'descr,fortran_order,shape') throw bad(`unexpected keys ${keys}`);
  if (typeof dict.descr !== 'string') throw bad('descr must be a string');
  if (typeof dict.fortran_order !== 'boolean') throw bad('fortran_order must be True/False');
  if (!Array.isArray(dict.shape)) throw bad('shape must be a tuple');
  return dict;
}

// Decode the bytes of a .npy file.  `where` names the file in errors.
function parseNpy(buf, where = '<buffer>') {
  if (buf.length < 10 || !buf.subarray(0, 6).equals(MAGIC)) {
    throw new Error(`${where}: not a .npy file (bad magic)`);
  }
  const major = buf[6];
  let headerLen;
  let headerStart;
  if (major === 1) {
    headerLen = buf.readUInt16LE(8);
    headerStart = 10;
  } else if (major === 2 || major === 3) {
    if (buf.length < 12) throw new Error(`${where}: truncated .npy header`);
    headerLen = buf.readUInt32LE(8);
    headerStart = 12;
  } else {
    throw new Error(`${where}: unsupported .npy format version ${major}.${buf[7]}`);
  }
  const dataStart = headerStart + headerLen;
  if (dataStart > buf.length) throw new Error(`${where}: truncated .npy header`);
  const header = parseHeader(
    buf.subarray(headerStart, dataStart).toString(major === 3 ? 'utf8' : 'latin1'), where);
  if (header.fortran_order) {
    throw new Error(`${where}: fortran_order=True arrays are not supported (save in C order)`);
  }
  const dtype = dtypeFromDescr(header.descr, where);
  const shape = header.shape;
  const Typed = DTYPES[dtype][2];
  const count = shape.reduce((a, b) => a * b, 1);
  const nbytes = count * Typed.BYTES_PER_ELEMENT;
  if (buf.length - dataStart !== nbytes) {
    throw new Error(`${where}: data is ${buf.length - dataStart} bytes, ` +
      `shape [${shape}] of ${dtype} needs ${nbytes}`);
  }
  // Copy into a fresh, aligned buffer; the header length does not guarantee
  // 8-byte alignment of the data inside a Node Buffer.
  const bytes = new Uint8Array(nbytes);
  bytes.set(buf.subarray(dataStart));
  const data = new Typed(bytes.buffer, 0, count);
  if (dtype === 'bool' && data.some((v) => v > 1)) {
    throw new Error(`${where}: bool array holds values other than 0 and 1`);
  }
  return { dtype, shape, data };
}

function readNpy(path) {
  let buf;
  try {
    buf = fs.readFileSync(path);
  } catch (e) {
    throw new Error(`cannot read ${path}: ${e.code === 'ENOENT' ? 'no such file' : e.message}`);
  }
  return parseNpy(buf, path);
}

// Encode {dtype, shape, data} as .npy bytes (version 1.0, or 2.0 when the
// header would not fit in 1.0's 16-bit length).
function encodeNpy({ dtype, shape, data }) {
  const spec = DTYPES[dtype];
  if (!spec) throw new Error(`cannot write dtype '${dtype}' to .npy`);
  const dims = Array.from(shape, Number);
  if (dims.some((d) => !Number.isInteger(d) || d < 0)) {
    throw new Error(`bad shape [${shape}]`);
  }
  const count = dims.reduce((a, b) => a * b, 1);
  if (data.length !== count) {
    throw new Error(`data has ${data.length} elements, shape [${dims}] needs ${count}`);
  }
  let typed = data;
  if (dtype === 'bool') {
    typed = Uint8Array.from(data, (v) => (v ? 1 : 0));
  } else if (!(data instanceof spec[2])) {
    typed = dtype === 'int64' ? BigInt64Array.from(data, (v) => BigInt(v)) : spec[2].from(data);
  }
  const shapeText = dims.length === 1 ? `(${dims[0]},)` : `(${dims.join(', ')})`;
  let header = `{'descr': '${spec[0]}', 'fortran_order': False, 'shape': ${shapeText}, }`;
  // Pad with spaces and end with '\n' so that the data starts on a
  // 64-byte boundary, as NumPy does.
  let major = 1;
  let prefix = 10;
  if (header.length + 1 + prefix > 0xffff) { major = 2; prefix = 12; }
  const total = Math.ceil((prefix + header.length + 1) / 64) * 64;
  header = header.padEnd(total - prefix - 1, ' ') + '\n';
  const head = Buffer.alloc(prefix);
  MAGIC.copy(head, 0);
  head[6] = major;
  head[7] = 0;
  if (major === 1) head.writeUInt16LE(header.length, 8);
  else head.writeUInt32LE(header.length, 8);
  const body = Buffer.from(typed.buffer, typed.byteOffset, typed.byteLength);
  return Buffer.concat([head, Buffer.from(header, 'latin1'), body]);
}

function writeNpy(path, array) {
  fs.writeFileSync(path, encodeNpy(array));
}

module.exports = { parseNpy, readNpy, encodeNpy, writeNpy, DTYPES: Object.keys(DTYPES) };
