// ONNX Runtime as an independent reference and as the peer in benchmarks.
//
//   node ort_run.js run   MODEL IN.npy OUT.npy [THREADS]
//     (OUT with a %d in it: every output, %d its index; otherwise the first)
//   node ort_run.js bench MODEL BATCH ITERS THREADS [WARMUP]   -> one JSON line
//   node ort_run.js profile MODEL BATCH ITERS THREADS PREFIX  -> ORT's profile, a JSON
//     trace whose file name it prints (tests/bench/profile_vs_ort.py reads it)
//
// The module is looked up under $ORT_DIR (tests/tools/ort_install.sh puts it
// in build/ort). Sessions run sequentially with intra-op THREADS threads and
// ORT's full graph optimisations, its default for production use.
'use strict';
const fs = require('fs');
const path = require('path');
const ortDir = process.env.ORT_DIR || path.join(__dirname, '..', '..', 'build', 'ort');
const ort = require(path.join(ortDir, 'node_modules', 'onnxruntime-node'));

function readNpy(file) {
  const buf = fs.readFileSync(file);
  if (buf.toString('latin1', 1, 6) !== 'NUMPY') throw new Error(file + ': not .npy');
  const major = buf[6];
  const hlen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const start = major === 1 ? 10 : 12;
  const header = buf.toString('latin1', start, start + hlen);
  if (!/'descr':\s*'<f4'/.test(header)) throw new Error(file + ': expected float32');
  const shape = header.match(/'shape':\s*\(([^)]*)\)/)[1].split(',')
    .map((s) => s.trim()).filter((s) => s.length).map(Number);
  const off = start + hlen;
  const data = new Float32Array(buf.buffer.slice(buf.byteOffset + off, buf.byteOffset + buf.length));
  return { shape, data };
}

function writeNpy(file, shape, data) {
  let dict = `{'descr': '<f4', 'fortran_order': False, 'shape': (${shape.join(', ')}${shape.length === 1 ? ',' : ''}), }`;
  const total = 10 + dict.length + 1;
  dict += ' '.repeat((64 - (total % 64)) % 64) + '\n';
  const head = Buffer.alloc(10);
  head.write('\x93NUMPY', 0, 'latin1');
  head[6] = 1; head[7] = 0;
  head.writeUInt16LE(dict.length, 8);
  fs.writeFileSync(file, Buffer.concat([head, Buffer.from(dict, 'latin1'),
    Buffer.from(data.buffer, data.byteOffset, data.byteLength)]));
}

async function session(model, threads, extra) {
  return ort.InferenceSession.create(model, {
    intraOpNumThreads: threads, interOpNumThreads: 1, executionMode: 'sequential',
    graphOptimizationLevel: 'all', ...(extra || {}),
  });
}

// The same deterministic input as `bench` (and as visiond bench's own).
function benchInput(s, batch) {
  const meta = s.inputMetadata ? s.inputMetadata[0] : null;
  const dims = meta && meta.shape ? meta.shape.map((d, i) => (i === 0 || typeof d !== 'number' ? batch : d)) : null;
  if (!dims) throw new Error('cannot read the input shape');
  const n = dims.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n);
  let st = 42n;
  for (let i = 0; i < n; i++) {
    st = (st * 6364136223846793005n + 1442695040888963407n) & 0xffffffffffffffffn;
    data[i] = Number((st >> 40n) & 0xffffffn) / 0x800000 - 1;
  }
  return { [s.inputNames[0]]: new ort.Tensor('float32', data, dims) };
}

async function main() {
  const [cmd, model, ...rest] = process.argv.slice(2);
  if (cmd === 'run') {
    const [inFile, outFile, threads] = rest;
    const s = await session(model, Number(threads || 0));
    const x = readNpy(inFile);
    const feeds = { [s.inputNames[0]]: new ort.Tensor('float32', x.data, x.shape) };
    const r = await s.run(feeds);
    const names = outFile.includes('%d') ? s.outputNames : s.outputNames.slice(0, 1);
    names.forEach((name, i) => {
      const y = r[name];
      writeNpy(outFile.replace('%d', String(i)), y.dims, y.data);
    });
  } else if (cmd === 'profile') {
    const batch = Number(rest[0]), iters = Number(rest[1]), threads = Number(rest[2]);
    const s = await session(model, threads, { enableProfiling: true, profileFilePrefix: rest[3] });
    const feeds = benchInput(s, batch);
    for (let i = 0; i < iters; i++) await s.run(feeds);
    const file = s.endProfiling ? await s.endProfiling() : null;
    if (s.release) await s.release(); // the binding writes the profile as the session ends
    console.log(JSON.stringify({ profile: typeof file === 'string' ? file : null }));
  } else if (cmd === 'bench') {
    const batch = Number(rest[0]), iters = Number(rest[1]), threads = Number(rest[2]);
    const warmup = Number(rest[3] || 2);
    const s = await session(model, threads);
    const feeds = benchInput(s, batch);
    for (let i = 0; i < warmup; i++) await s.run(feeds);
    const times = [];
    for (let i = 0; i < iters; i++) {
      const t0 = process.hrtime.bigint();
      await s.run(feeds);
      times.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
    times.sort((a, b) => a - b);
    const median = iters % 2 ? times[(iters - 1) / 2] : (times[iters / 2 - 1] + times[iters / 2]) / 2;
    console.log(JSON.stringify({ median_ms: median, min_ms: times[0], iters, batch, threads }));
  } else {
    console.error('usage: ort_run.js run MODEL IN OUT [THREADS] | bench MODEL BATCH ITERS THREADS');
    process.exit(1);
  }
}

main().catch((e) => { console.error(String(e && e.stack || e)); process.exit(1); });
