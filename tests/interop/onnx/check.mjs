// Checks a model pruned by `sparsity prune` with ONNX Runtime and with a mask computed here from the
// dense weights, independently of sparsity's code:
//   1. the masks file names exactly the expected tensors, and each mask equals the one this script
//      computes from the config (WeightNorm: L2 block pruning, or N zeros in every block);
//   2. ONNX Runtime runs the pruned model; its output equals, within 1e-5, the output of the dense graph
//      (weights as inputs) run on the dense weights masked here, and differs from the unmasked one;
//   3. the pruned files differ from the dense ones only inside the pruned weights' data, which holds
//      exactly the masked values (+0.0 where pruned): the graph and every other tensor are unchanged.
// usage: node check.mjs --dir WORK --dense mlp.onnx --pruned OUT/mlp.onnx --masks OUT/masks.safetensors
//                       --config CONFIG.json --targets a,b,c [--data mlp_ext.onnx.data]
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createRequire } from 'node:module';

const ort = createRequire(import.meta.url)('onnxruntime-node');

function args() {
  const a = {};
  for (let i = 2; i < process.argv.length; i += 2) a[process.argv[i].replace(/^--/, '')] = process.argv[i + 1];
  for (const k of ['dir', 'dense', 'pruned', 'masks', 'config', 'targets']) {
    if (a[k] === undefined) throw new Error(`missing --${k}`);
  }
  return a;
}

let failures = 0;
function check(ok, what) {
  if (!ok) {
    failures++;
    console.error(`FAIL: ${what}`);
  }
}

// safetensors: 8-byte little-endian header length, JSON header, data buffer.
function readSafetensors(path) {
  const buf = readFileSync(path);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8'));
  const out = {};
  for (const [name, e] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    if (e.dtype !== 'U8') throw new Error(`mask ${name} has dtype ${e.dtype}`);
    out[name] = { shape: e.shape, data: buf.subarray(8 + n + e.data_offsets[0], 8 + n + e.data_offsets[1]) };
  }
  return out;
}

// WeightNorm's mask of a (rows, cols) matrix in its stored layout, computed from its definition: tiles
// of (br, bc) anchored at (0, 0); with zeros == br*bc, the round(level * tiles) tiles of smallest mean
// square are pruned whole; with fewer zeros and level 1, the `zeros` smallest |w| of every tile.
// (The test's shapes are multiples of the blocks and its random weights have no ties.)
function weightNormMask(w, rows, cols, br, bc, level, zeros) {
  const mask = new Uint8Array(rows * cols).fill(1);
  const tiles = [];
  for (let r = 0; r < rows; r += br) {
    for (let c = 0; c < cols; c += bc) {
      const idx = [];
      for (let i = r; i < r + br; i++) for (let j = c; j < c + bc; j++) idx.push(i * cols + j);
      tiles.push(idx);
    }
  }
  if (zeros === br * bc) {
    const score = (t) => t.reduce((s, i) => s + w[i] * w[i], 0) / t.length;
    const k = Math.round(level * tiles.length);
    const order = tiles.map((t, i) => [score(t), i]).sort((a, b) => a[0] - b[0]);
    for (let n = 0; n < k; n++) for (const i of tiles[order[n][1]]) mask[i] = 0;
  } else {
    if (level !== 1) throw new Error('this check computes N:M masks at sparsity_level 1 only');
    for (const t of tiles) {
      const byMagnitude = [...t].sort((a, b) => Math.abs(w[a]) - Math.abs(w[b]));
      for (let n = 0; n < zeros; n++) mask[byMagnitude[n]] = 0;
    }
  }
  return mask;
}

async function run(modelPath, feeds) {
  const session = await ort.InferenceSession.create(modelPath);
  const out = await session.run(feeds);
  return out[session.outputNames[0]].data;
}

function maxAbsDiff(a, b) {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

// Every occurrence of `needle` in `hay`.
function occurrences(hay, needle) {
  const at = [];
  for (let i = hay.indexOf(needle); i >= 0; i = hay.indexOf(needle, i + 1)) at.push(i);
  return at;
}

async function main() {
  const a = args();
  const data = JSON.parse(readFileSync(join(a.dir, 'weights.json'), 'utf8'));
  const config = JSON.parse(readFileSync(a.config, 'utf8'));
  const targets = a.targets.split(',');
  const masks = readSafetensors(a.masks);

  // 1. The masks.
  check(JSON.stringify(Object.keys(masks).sort()) === JSON.stringify([...targets].sort()),
        `masks name ${Object.keys(masks).sort()} instead of ${[...targets].sort()}`);
  const masked = {};
  for (const [name, wt] of Object.entries(data.weights)) {
    const w = Float32Array.from(wt.data);
    masked[name] = { dense: w, values: Float32Array.from(w), shape: wt.shape };
    if (!targets.includes(name)) continue;
    const opts = { ...config.defaults, ...((config.config || []).find((e) => e.tensor_fqn === name) || {}) };
    const [br, bc] = opts.sparse_block_shape;
    const zeros = opts.zeros_per_block ?? br * bc;
    // Blocks are given in torch's (out, in) orientation: a weight stored (in, out) is pruned as its
    // transpose, so its mask is computed on the transpose and transposed back.
    const [rows, cols] = wt.shape;
    const transpose = (a, r, c) => {
      const t = new a.constructor(a.length);
      for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) t[j * r + i] = a[i * c + j];
      return t;
    };
    const want = wt.transposed
      ? transpose(weightNormMask(transpose(w, rows, cols), cols, rows, br, bc, opts.sparsity_level, zeros), cols, rows)
      : weightNormMask(w, rows, cols, br, bc, opts.sparsity_level, zeros);
    const got = masks[name]?.data;
    check(got && got.length === want.length && want.every((v, i) => (got[i] !== 0) === (v !== 0)),
          `${name}: the mask differs from WeightNorm's (block ${br}x${bc}, ${zeros} zeros, level ${opts.sparsity_level})`);
    for (let i = 0; i < want.length; i++) if (!want[i]) masked[name].values[i] = 0;
  }

  // 2. ONNX Runtime on the pruned model and on the reference graph with the weights as inputs.
  const X = new ort.Tensor('float32', Float32Array.from(data.X.data), data.X.shape);
  const feeds = (which) => Object.fromEntries([['X', X], ...Object.entries(masked).map(
      ([k, v]) => [k, new ort.Tensor('float32', v[which], v.shape)])]);
  const pruned = await run(a.pruned, { X });
  const reference = await run(join(a.dir, 'mlp_ref.onnx'), feeds('values'));
  const dense = await run(join(a.dir, 'mlp_ref.onnx'), feeds('dense'));
  const diff = maxAbsDiff(pruned, reference);
  check(diff <= 1e-5, `pruned model vs masked reference: max |difference| ${diff} > 1e-5`);
  check(maxAbsDiff(pruned, dense) > 1e-3, 'the pruned model computes what the dense one does: nothing was pruned');
  console.log(`onnxruntime ${ort.env.versions?.common ?? ''}: ${pruned.length} outputs, max |pruned - masked reference| = ${diff.toExponential(2)}`);

  // 3. Bytes: the dense files and the pruned ones (the model, and its external data when there is one).
  const pairs = [[join(a.dir, a.dense), a.pruned]];
  if (a.data) pairs.push([join(a.dir, a.data), join(dirname(a.pruned), a.data)]);
  const found = Object.fromEntries(targets.map((t) => [t, 0]));
  for (const [densePath, prunedPath] of pairs) {
    const before = readFileSync(densePath), after = readFileSync(prunedPath);
    check(before.length === after.length, `${prunedPath}: ${after.length} bytes, the input has ${before.length}`);
    const spans = [];
    for (const t of targets) {
      const bytes = Buffer.from(masked[t].dense.buffer);
      const at = occurrences(before, bytes);
      if (at.length === 0) continue;
      check(at.length === 1, `${t}: its bytes occur ${at.length} times in ${densePath}`);
      found[t] += at.length;
      spans.push([at[0], at[0] + bytes.length]);
      check(after.subarray(at[0], at[0] + bytes.length).equals(Buffer.from(masked[t].values.buffer)),
            `${t}: the pruned data is not the dense data masked (+0.0 where pruned)`);
    }
    let outside = 0;
    for (let i = 0; i < before.length && i < after.length; i++) {
      if (before[i] !== after[i] && !spans.some(([b, e]) => i >= b && i < e)) outside++;
    }
    check(outside === 0, `${prunedPath}: ${outside} bytes differ outside the pruned weights' data`);
  }
  for (const t of targets) check(found[t] === 1, `${t}: its dense bytes were found ${found[t]} times in the inputs`);

  if (failures) {
    console.error(`${failures} check(s) failed`);
    process.exit(1);
  }
  console.log(`OK: ${targets.length} pruned weights, masks as computed here, outputs within 1e-5, other bytes unchanged`);
}

main().catch((e) => {
  console.error(e.stack || String(e));
  process.exit(1);
});
