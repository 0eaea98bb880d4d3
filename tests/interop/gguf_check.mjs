// Checks a GGUF file pruned by `sparsity prune` with an independent reader, @huggingface/gguf:
//   node gguf_check.mjs MODEL.gguf PRUNED.gguf MASKS.safetensors CONFIG.json
// 1. both files parse; the input holds the fixture's metadata and tensor infos (make_gguf_model.cpp);
// 2. the pruned file's metadata, tensor infos and data offset equal the input's, byte for byte outside
//    the tensors' data too;
// 3. every pruned tensor equals its input weights masked with the masks file (F16/BF16 decoded here),
//    the masks have the configured pattern along ne[0], and every other tensor is unchanged.
import { readFileSync } from "node:fs";
import { isDeepStrictEqual } from "node:util";

let gguf;
try {
  ({ gguf } = await import("@huggingface/gguf"));
} catch (e) {
  console.error("cannot load @huggingface/gguf (run: bash .ci/install-deps): " + e.message);
  process.exit(1);
}

const [modelPath, prunedPath, masksPath, configPath] = process.argv.slice(2);
let failures = 0;
function check(ok, what) {
  if (!ok) {
    failures++;
    console.error("FAIL: " + what);
  }
}

// ---- the fixture, as make_gguf_model.cpp writes it ----------------------------------------------
const GGML = { F32: 0, F16: 1, Q8_0: 8, Q4_K: 12, I32: 26, BF16: 30 };
// Bytes per block and elements per block (ggml-common.h).
const BLOCK = { [GGML.F32]: [4, 1], [GGML.F16]: [2, 1], [GGML.BF16]: [2, 1], [GGML.I32]: [4, 1],
                [GGML.Q8_0]: [34, 32], [GGML.Q4_K]: [144, 256] };
const expectedInfos = [
  ["token_embd.weight", GGML.F32, [32n, 12n]],
  ["blk.0.attn_norm.weight", GGML.F32, [32n]],
  ["blk.0.attn_q.weight", GGML.Q8_0, [32n, 32n]],
  ["blk.0.attn_k.weight", GGML.Q4_K, [256n, 8n]],
  ["blk.0.ffn_up.weight", GGML.F32, [32n, 64n]],
  ["blk.0.ffn_gate.weight", GGML.BF16, [32n, 64n]],
  ["blk.0.ffn_down.weight", GGML.F16, [64n, 32n]],
  ["blk.0.layer_index", GGML.I32, [4n, 2n]],
  ["output_norm.weight", GGML.F32, [32n]],
  ["output.weight", GGML.F16, [32n, 12n]],
];
const f32 = (x) => Math.fround(x);
const expectedMetadata = {
  version: 3,
  tensor_count: BigInt(expectedInfos.length),
  kv_count: 24n,
  "general.architecture": "llama",
  "general.name": "tiny interop \u00e9\u20ac",
  "general.alignment": 64,
  "general.file_type": 1,
  "llama.block_count": 1,
  "llama.context_length": 4096n,
  "llama.embedding_length": 32,
  "llama.rope.freq_base": 10000,
  "llama.attention.layer_norm_rms_epsilon": f32(1e-5),
  "test.i8": -7,
  "test.u8": 250,
  "test.i16": -1234,
  "test.i32": -123456,
  "test.i64": -9007199254740993n,
  "test.u64": 18446744073709551615n,
  "test.f64": 0.1,
  "test.bool": true,
  "tokenizer.ggml.model": "llama",
  "tokenizer.ggml.tokens": ["<unk>", "<s>", "</s>", "\u2581the", "", "\u{1F600}"],
  "tokenizer.ggml.scores": [0, -1, -1, -2.5, -3.25, -1000],
  "tokenizer.ggml.token_type": [2, 3, 3, 1, 1, 1],
  "tokenizer.ggml.add_bos_token": false,
  "test.nested": [[1, 2, 3], [], [255]],
  "test.empty": [],
};
const expectedTypes = { "test.i8": 1, "test.u8": 0, "test.i16": 3, "test.i32": 5, "test.i64": 11, "test.u64": 10,
                        "test.f64": 12, "test.bool": 7, "llama.embedding_length": 2, "llama.context_length": 10,
                        "llama.rope.freq_base": 6, "tokenizer.ggml.tokens": 9, "test.nested": 9 };

// ---- parse both files ---------------------------------------------------------------------------------
const input = await gguf(modelPath, { allowLocalFile: true, typedMetadata: true });
const output = await gguf(prunedPath, { allowLocalFile: true, typedMetadata: true });

check(isDeepStrictEqual(input.metadata, expectedMetadata),
      "input metadata differs from the fixture's:\n" + JSON.stringify(input.metadata, (k, v) =>
        typeof v === "bigint" ? v.toString() + "n" : v));
for (const [key, type] of Object.entries(expectedTypes)) {
  check(input.typedMetadata[key]?.type === type, `input metadata ${key} has GGUF type ${input.typedMetadata[key]?.type}, not ${type}`);
}
check(input.typedMetadata["tokenizer.ggml.tokens"]?.subType === 8, "tokenizer.ggml.tokens is not an array of strings");
check(input.tensorInfos.length === expectedInfos.length, "input tensor count");
input.tensorInfos.forEach((t, i) => {
  const [name, dtype, shape] = expectedInfos[i] ?? [];
  check(t.name === name && t.dtype === dtype && isDeepStrictEqual(t.shape, shape) && t.n_dims === shape.length,
        `input tensor info ${i}: ${t.name} ${t.dtype} [${t.shape}]`);
  check(t.offset % 64n === 0n, `${t.name}: data offset ${t.offset} not aligned to general.alignment`);
});
check(input.tensorDataOffset % 64n === 0n, "data section not aligned");

check(isDeepStrictEqual(output.metadata, input.metadata), "pruned metadata differs from the input's");
check(isDeepStrictEqual(output.typedMetadata, input.typedMetadata), "pruned typed metadata differs from the input's");
check(isDeepStrictEqual(output.tensorInfos, input.tensorInfos), "pruned tensor infos differ from the input's");
check(output.tensorDataOffset === input.tensorDataOffset, "pruned data offset differs from the input's");

// ---- data ----------------------------------------------------------------------------------------------
const inBytes = readFileSync(modelPath);
const outBytes = readFileSync(prunedPath);
check(inBytes.length === outBytes.length, `file sizes differ: ${inBytes.length} vs ${outBytes.length}`);
const base = Number(input.tensorDataOffset);
check(inBytes.subarray(0, base).equals(outBytes.subarray(0, base)), "header bytes differ");

// The masks: a safetensors file (8-byte header length, JSON header, U8 data) read by hand.
const masksFile = readFileSync(masksPath);
const headerLength = Number(masksFile.readBigUInt64LE(0));
const masksHeader = JSON.parse(masksFile.subarray(8, 8 + headerLength).toString("utf8"));
const masksData = 8 + headerLength;
const config = JSON.parse(readFileSync(configPath, "utf8"));
const configOf = new Map(config.config.map((e) => [e.tensor_fqn, { ...config.defaults, ...e }]));

function decodeF16(h) {
  const sign = h & 0x8000 ? -1 : 1, exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 31) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}
function decodeBF16(b) {
  const v = new DataView(new ArrayBuffer(4));
  v.setUint32(0, b << 16, true);
  return v.getFloat32(0, true);
}
function values(bytes, dtype) {
  const n = bytes.length / BLOCK[dtype][0];
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  const out = new Array(n);
  for (let i = 0; i < n; i++) {
    out[i] = dtype === GGML.F32 ? v.getFloat32(4 * i, true)
           : dtype === GGML.F16 ? decodeF16(v.getUint16(2 * i, true))
           : decodeBF16(v.getUint16(2 * i, true));
  }
  return out;
}

const pruned = [];
const infos = input.tensorInfos;
const ends = [];
for (const t of infos) {
  const numel = t.shape.reduce((a, b) => a * Number(b), 1);
  const [bytes, block] = BLOCK[t.dtype];
  const size = (numel / block) * bytes;
  const begin = base + Number(t.offset);
  ends.push([begin, begin + size]);
  const a = inBytes.subarray(begin, begin + size), b = outBytes.subarray(begin, begin + size);
  const cfg = configOf.get(t.name);
  if (!cfg) {
    check(a.equals(b), `${t.name}: not pruned, but its bytes changed`);
    check(masksHeader[t.name] === undefined, `${t.name}: not pruned, but has a mask`);
    continue;
  }
  pruned.push(t.name);
  const m = masksHeader[t.name];
  const torchShape = [...t.shape].reverse().map(Number);
  check(m && m.dtype === "U8" && isDeepStrictEqual(m.shape, torchShape),
        `${t.name}: mask entry ${JSON.stringify(m)} is not U8 of torch shape [${torchShape}]`);
  const mask = masksFile.subarray(masksData + m.data_offsets[0], masksData + m.data_offsets[1]);
  const w = values(a, t.dtype), got = values(b, t.dtype);
  check(mask.length === numel && mask.every((x) => x === 0 || x === 1), `${t.name}: mask is not ${numel} bytes of 0/1`);
  let wrong = 0;
  for (let i = 0; i < numel; i++) {
    const expected = mask[i] ? w[i] : 0;  // masked weight: the weight where kept, +0 where pruned
    if (!Object.is(got[i], expected)) wrong++;
  }
  check(wrong === 0, `${t.name}: ${wrong} of ${numel} elements differ from the weights masked by the masks file`);
  // The pattern, along ne[0] (the contiguous dimension of the stored data): groups of `cols` hold
  // `zeros` pruned elements each, none larger in magnitude than a kept one of the group.
  const cols = cfg.sparse_block_shape[1], zeros = Math.round(cfg.zeros_per_block * cfg.sparsity_level);
  const group = cols === 1 ? numel : cols;
  const target = cols === 1 ? Math.round(cfg.sparsity_level * numel) : zeros;
  for (let g = 0; g < numel; g += group) {
    let prunedCount = 0, maxPruned = 0, minKept = Infinity;
    for (let i = g; i < g + group; i++) {
      if (mask[i]) minKept = Math.min(minKept, Math.abs(w[i]));
      else { prunedCount++; maxPruned = Math.max(maxPruned, Math.abs(w[i])); }
    }
    if (prunedCount !== target || maxPruned > minKept) {
      check(false, `${t.name}: group at element ${g} prunes ${prunedCount} (expected ${target}), largest pruned ${maxPruned} > smallest kept ${minKept}?`);
      break;
    }
  }
}
check(isDeepStrictEqual(pruned.sort(), [...configOf.keys()].sort()), `pruned ${pruned} instead of the config's tensors`);
check(Object.keys(masksHeader).filter((k) => k !== "__metadata__").length === configOf.size, "masks file holds other tensors");
// Bytes between and after the tensors' data (padding) are the input's.
ends.sort((x, y) => x[0] - y[0]);
let cursor = base;
for (const [b, e] of ends) {
  check(inBytes.subarray(cursor, b).equals(outBytes.subarray(cursor, b)), `padding bytes ${cursor}..${b} differ`);
  cursor = Math.max(cursor, e);
}
check(inBytes.subarray(cursor).equals(outBytes.subarray(cursor)), "bytes after the last tensor differ");

if (failures) {
  console.error(`${failures} check(s) failed`);
  process.exit(1);
}
console.log(`@huggingface/gguf read both files: ${infos.length} tensor infos and ${Object.keys(input.metadata).length - 3} ` +
            `metadata keys equal; ${pruned.length} pruned tensors equal the masked weights; all other bytes equal`);
