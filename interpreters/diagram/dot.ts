/**
 * Diagram interpreter, part 1: a network as Graphviz DOT.
 *
 * A total fold over the node union (`viewOf`) gives each node a title and an op family; the rest
 * is layout policy: nodes labelled with op, path and output shape, parameter counts on parametric
 * nodes, colours by family with a legend, inputs and outputs as distinct shapes, residual blocks
 * (path prefixes such as `encode.0`, `main.9`) as clusters, or as single boxes with `collapse`.
 * Nodes no output depends on (modules kept for their parameters) are drawn dashed and grey.
 *
 * Pure: no Graphviz here, only strings. Shape inference errors come back as values.
 */
import * as E from 'fp-ts/lib/Either.js';
import { absurd, type Result } from '../../dsl/errors.ts';
import type { Network, Node } from '../../dsl/ir.ts';
import { paramCountsByNode, stateOfNode } from '../../dsl/params.ts';
import { inferShapes, showShape, type Shape } from '../../dsl/shapes.ts';
import { operands, reachable, refsOf } from '../../dsl/walk.ts';

export interface DotOptions {
  /** Draw each block (e.g. `encode.0`) as one box with its in/out shapes and parameter total. */
  readonly collapse?: boolean;
  /** Layout direction; top-to-bottom by default (deep nets scroll vertically). */
  readonly direction?: 'TB' | 'LR';
  /** Heading of the picture; the network name by default (e.g. `stargan-v2 · generator`). */
  readonly title?: string;
}

// ---------------------------------------------------------------------------------------------
// Op families and the fold over the node union

export type Family = 'io' | 'conv' | 'norm' | 'act' | 'resample' | 'merge';

interface Palette {
  readonly fill: string;
  readonly border: string;
  readonly text: string;
  readonly legend: string;
}

export const PALETTE: Readonly<Record<Family, Palette>> = {
  io: { fill: '#34495e', border: '#22313f', text: '#ffffff', legend: 'input / output' },
  conv: { fill: '#d6e6f7', border: '#3d78b8', text: '#10253d', legend: 'conv / linear' },
  norm: { fill: '#fdf0c4', border: '#c49a1a', text: '#3d2f05', legend: 'normalisation' },
  act: { fill: '#fbe0cf', border: '#d0702d', text: '#40200a', legend: 'activation' },
  resample: { fill: '#e6def4', border: '#7859ad', text: '#26173f', legend: 'resampling' },
  merge: { fill: '#d3efe9', border: '#2b8a78', text: '#0b2d27', legend: 'merge / select / reshape' },
};

const FAMILY_ORDER: readonly Family[] = ['io', 'conv', 'norm', 'act', 'resample', 'merge'];

const DEAD: Palette = { fill: '#f4f4f4', border: '#a0a0a0', text: '#8a8a8a', legend: 'unused' };
const COND_EDGE = '#8e44ad';
const DATA_EDGE = '#4d5560';
/**
 * Graphviz sizes boxes from built-in metrics of a single named font (a comma list falls back to
 * Times, which is too narrow). Verdana and Courier New are the widest common faces, so labels fit
 * whatever the viewer substitutes; `withFontFallbacks` then widens the SVG's font-family lists.
 */
const FONT = 'Verdana';
const MONO = 'Courier New';

const FALLBACKS: Readonly<Record<string, string>> = {
  [FONT]: 'Verdana,DejaVu Sans,Bitstream Vera Sans,Segoe UI,Helvetica,Arial,sans-serif',
  [MONO]: 'Menlo,Consolas,DejaVu Sans Mono,Courier New,monospace',
};

/** Give the rendered SVG's fonts fallbacks of similar width (sizes were computed for FONT/MONO). */
export const withFontFallbacks = (svg: string): string =>
  svg.replace(/font-family="([^"]*)"/g, (m, f: string) => {
    const list = FALLBACKS[f];
    return list === undefined ? m : `font-family="${list}"`;
  });

export interface OpView {
  /** What the node computes, with its hyperparameters: `conv 4x4 s2 p1 · 64→128`. */
  readonly title: string;
  /** A short name for block summaries: `conv3x3`. */
  readonly short: string;
  readonly family: Family;
}

type Size2 = number | readonly [number, number];
const two = (v: Size2): readonly [number, number] => (typeof v === 'number' ? [v, v] : v);
const kxk = (k: Size2): string => `${two(k)[0]}x${two(k)[1]}`;
/** ` s2 p1`, ` s(1,2) p(0,3)`; stride 1 and padding 0 left out. */
const sp = (s: Size2, p: Size2): string => {
  const one = (v: Size2): string => (typeof v === 'number' || v[0] === v[1] ? `${two(v)[0]}` : `(${v[0]},${v[1]})`);
  return `${two(s).some((x) => x !== 1) ? ` s${one(s)}` : ''}${two(p).some((x) => x !== 0) ? ` p${one(p)}` : ''}`;
};
const num = (v: number): string => (Number.isInteger(v) ? `${v}` : `${Number(v.toPrecision(4))}`);

const scaleText = (scale: number): string =>
  scale === 1
    ? ''
    : Math.abs(scale - Math.SQRT1_2) < 1e-9
      ? ' ÷√2'
      : Math.abs(scale - 0.5) < 1e-12
        ? ' ÷2'
        : ` ×${num(scale)}`;

/** The fold: every op gets a title and a family; a new op fails to compile until it is drawn. */
export const viewOf = (n: Node, net: Network): OpView => {
  switch (n.op) {
    case 'input':
      return {
        title: `input ${n.name}`,
        short: n.name,
        family: 'io',
      };
    case 'conv2d':
      return {
        title: `conv ${kxk(n.kernel)}${sp(n.stride, n.padding)} · ${n.inChannels}→${n.outChannels}`,
        short: `conv${kxk(n.kernel)}`,
        family: 'conv',
      };
    case 'convTranspose2d':
      return {
        title: `conv⊤ ${kxk(n.kernel)}${sp(n.stride, n.padding)} · ${n.inChannels}→${n.outChannels}`,
        short: `conv⊤${kxk(n.kernel)}`,
        family: 'conv',
      };
    case 'instanceNorm':
      return { title: `instance norm · ${n.channels}${n.affine ? ' · affine' : ''}`, short: 'IN', family: 'norm' };
    case 'adain':
      return { title: `AdaIN · ${n.channels} ← style ${n.styleDim}`, short: 'AdaIN', family: 'norm' };
    case 'linear':
      return { title: `linear · ${n.inFeatures}→${n.outFeatures}`, short: 'linear', family: 'conv' };
    case 'relu':
      return { title: 'ReLU', short: 'ReLU', family: 'act' };
    case 'leakyRelu':
      return { title: `LeakyReLU ${num(n.alpha)}`, short: 'LReLU', family: 'act' };
    case 'tanh':
      return { title: 'tanh', short: 'tanh', family: 'act' };
    case 'avgPool':
      return { title: `avg pool ↓${n.size}`, short: `pool↓${n.size}`, family: 'resample' };
    case 'upsampleNearest':
      return { title: `upsample ↑${n.scale} nearest`, short: `up↑${n.scale}`, family: 'resample' };
    case 'batchNorm2d':
      return { title: `batch norm (eval) · ${n.channels}${n.affine ? '' : ' · no affine'}`, short: 'BN', family: 'norm' };
    case 'avgPool2d':
      return { title: `avg pool ${kxk(n.kernel)}${sp(n.stride, n.padding)}`, short: `avg${kxk(n.kernel)}`, family: 'resample' };
    case 'maxPool2d':
      return { title: `max pool ${kxk(n.kernel)}${sp(n.stride, n.padding)}`, short: `max${kxk(n.kernel)}`, family: 'resample' };
    case 'globalAvgPool':
      return { title: 'global avg pool', short: 'gap', family: 'resample' };
    case 'resizeBilinear': {
      const to = n.size !== null ? `→ ${kxk(n.size)}` : `×${num(n.scale ?? 1)}`;
      return { title: `bilinear ${to}${n.alignCorners ? ' · align corners' : ''}`, short: `bilinear${to}`, family: 'resample' };
    }
    case 'shiftRows':
      return { title: `shift rows ${n.rows >= 0 ? '↑' : '↓'}${Math.abs(n.rows)}`, short: `shift${n.rows}`, family: 'resample' };
    case 'concat':
      return { title: `concat ${n.inputs.length} (channels)`, short: 'concat', family: 'merge' };
    case 'sliceChannels':
      return { title: `channels ${n.start}:${n.end}`, short: `[${n.start}:${n.end}]`, family: 'merge' };
    case 'sumChannels':
      return { title: 'sum over channels', short: 'Σc', family: 'merge' };
    case 'zeroChannels':
      return { title: `zero ${n.channels.length} channels`, short: 'zero', family: 'merge' };
    case 'addCoords':
      return { title: `add coordinates (x, y${n.withRadius ? ', r' : ''})`, short: 'coords', family: 'merge' };
    case 'mul':
      return { title: 'multiply', short: '×', family: 'merge' };
    case 'sub':
      return { title: 'subtract', short: '−', family: 'merge' };
    case 'standardize':
      return { title: `(x − mean) / std · ${n.mean.length === 1 ? num(n.mean[0]!) : `${n.mean.length} ch`}`, short: 'std', family: 'norm' };
    case 'minMaxNorm':
      return { title: 'min-max norm (per channel)', short: 'minmax', family: 'norm' };
    case 'l2Normalize':
      return { title: 'L2 norm over channels', short: 'L2', family: 'norm' };
    case 'pow':
      return { title: `x^${num(n.exponent)}`, short: `^${num(n.exponent)}`, family: 'act' };
    case 'zeroBelow':
      return { title: `zero below ${num(n.threshold)}`, short: `<${num(n.threshold)}→0`, family: 'act' };
    case 'clamp':
      return { title: `clamp [${num(n.min)}, ${num(n.max)}]`, short: 'clamp', family: 'act' };
    case 'zeroWhereNaN':
      return { title: n.of === n.input ? 'NaN → 0' : 'zero where other is NaN', short: 'NaN→0', family: 'act' };
    case 'highPass':
      return { title: `high-pass 3x3 ÷${num(n.wHpf)} (depthwise)`, short: 'hpf', family: 'conv' };
    case 'concatLabel':
      return { title: 'concat label (tiled over H×W)', short: 'concat', family: 'merge' };
    case 'add':
      return {
        title: `add${n.inputs.length > 2 ? ` ×${n.inputs.length}` : ''}${scaleText(n.scale)}`,
        short: 'add',
        family: 'merge',
      };
    case 'flatten':
      return { title: 'flatten', short: 'flatten', family: 'merge' };
    case 'stack':
      return { title: `stack ${n.inputs.length} branches`, short: 'stack', family: 'merge' };
    case 'select': {
      const ix = net.nodes[n.index];
      const by = ix !== undefined && ix.op === 'input' ? ix.name : 'index';
      return { title: `select branch [${by}]`, short: 'select', family: 'merge' };
    }
    default:
      return absurd(n);
  }
};

// ---------------------------------------------------------------------------------------------
// Formatting helpers

/** 1234 -> 1.23k, 2360320 -> 2.36M. */
export const formatCount = (n: number): string => {
  if (n < 1000) return `${n}`;
  const [d, u] = n < 1e6 ? [1e3, 'k'] : n < 1e9 ? [1e6, 'M'] : [1e9, 'G'];
  return `${Number((n / d).toPrecision(3))}${u}`;
};

const withCommas = (n: number): string => n.toLocaleString('en-US');

/** Escape text for a Graphviz HTML-like label. */
const esc = (s: string): string =>
  s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** Quote a plain DOT string attribute. */
const q = (s: string): string => `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`;

const attrs = (a: Readonly<Record<string, string | number | undefined>>, sep = ', '): string =>
  Object.entries(a)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => (k === 'label' && typeof v === 'string' && v.startsWith('<') ? `${k}=${v}` : `${k}=${typeof v === 'number' ? v : q(v!)}`))
    .join(sep);

const font = (text: string, o: { size?: number; color?: string; face?: string } = {}): string =>
  `<font${o.face ? ` face="${o.face}"` : ''}${o.size ? ` point-size="${o.size}"` : ''}${o.color ? ` color="${o.color}"` : ''}>${text}</font>`;

const row = (cell: string, extra = ''): string => `<tr><td${extra}>${cell}</td></tr>`;

const table = (rows: readonly string[]): string =>
  `<<table border="0" cellborder="0" cellspacing="0" cellpadding="1">${rows.join('')}</table>>`;

// ---------------------------------------------------------------------------------------------
// Blocks and sections

/** Integer path segments mark ModuleList / Sequential elements: `encode.0`, `main.9`. */
const isIndex = (seg: string): boolean => /^\d+$/.test(seg);

interface Grouping {
  /** Block name of each node, or null for a node drawn on its own. */
  readonly blockOf: readonly (string | null)[];
  /** Section (top-level module) of each node, or null. */
  readonly sectionOf: readonly (string | null)[];
}

/**
 * A node's block is the shortest path prefix ending in an index segment that at least two nodes
 * share (`encode.0.conv1` -> `encode.0`; `main.3` alone is a plain layer). Sections are top-level
 * modules (`encode`, `decode`, `to_rgb`, `unshared`) and are drawn only when there are at least two
 * multi-node ones (a net that is one big `main` Sequential gains nothing from a frame around it).
 */
const groupNodes = (net: Network): Grouping => {
  const paths = net.nodes.map((n) => (n.op === 'input' ? null : n.path));
  const under = (prefix: string): number =>
    paths.filter((p) => p !== null && (p === prefix || p.startsWith(`${prefix}.`))).length;
  const memo = new Map<string, number>();
  const count = (prefix: string): number => {
    const hit = memo.get(prefix);
    if (hit !== undefined) return hit;
    const c = under(prefix);
    memo.set(prefix, c);
    return c;
  };
  const blockOf = paths.map((p) => {
    if (p === null || p === '') return null;
    const segs = p.split('.');
    for (let k = 2; k <= segs.length; k++) {
      if (!isIndex(segs[k - 1]!)) continue;
      const prefix = segs.slice(0, k).join('.');
      if (count(prefix) >= 2) return prefix;
    }
    return null;
  });
  const top = paths.map((p) => (p === null || p === '' ? null : p.split('.')[0]!));
  const sizes = new Map<string, number>();
  top.forEach((t) => t !== null && sizes.set(t, (sizes.get(t) ?? 0) + 1));
  const multi = [...sizes.entries()].filter(([, c]) => c >= 2).map(([t]) => t);
  const sectionOf = multi.length >= 2 ? top.map((t) => (t !== null && multi.includes(t) ? t : null)) : top.map(() => null);
  // A section of plain layers (`to_rgb`, the mapping network's `shared`) is itself a block.
  const flat = new Set(sectionOf.filter((t): t is string => t !== null && sectionOf.every((u, i) => u !== t || blockOf[i] === null)));
  return {
    blockOf: blockOf.map((b, i) => (sectionOf[i] !== null && flat.has(sectionOf[i]!) ? sectionOf[i]! : b)),
    sectionOf: sectionOf.map((t) => (t !== null && flat.has(t) ? null : t)),
  };
};

// ---------------------------------------------------------------------------------------------
// The DOT document

interface Ctx {
  readonly net: Network;
  readonly shapes: readonly Shape[];
  readonly live: readonly boolean[];
  readonly params: readonly number[];
  readonly views: readonly OpView[];
  /**
   * Inputs that condition many drawn items (StarGAN v2's style `s` feeds every AdaIN): instead of
   * edges across the whole picture, each consumer gets a small tag naming the input. Maps the
   * input's index to the number of tagged consumers.
   */
  readonly tagged: ReadonlyMap<number, number>;
  /** Nodes on the longest data path to the first output: kept in one straight column. */
  readonly spine: ReadonlySet<number>;
  /** Left-to-right layout: input and output arrows turn to point right. */
  readonly lr: boolean;
}

/**
 * The longest chain of data operands ending at the first output. Graphviz keeps nodes sharing a
 * `group` vertically aligned, so the main path stays straight and branches (shortcuts, unused
 * modules, tags) hang off to the sides instead of pushing later blocks into a staircase.
 */
const spineOf = (net: Network, live: readonly boolean[]): ReadonlySet<number> => {
  const depth: number[] = [];
  const prev: (number | null)[] = [];
  net.nodes.forEach((n, i) => {
    let best: number | null = null;
    for (const { ref, conditioning: cond } of operands(n))
      if (!cond && ref >= 0 && ref < i && (best === null || depth[ref]! > depth[best]!)) best = ref;
    depth.push(best === null ? 1 : depth[best]! + 1);
    prev.push(best);
  });
  const out = new Set<number>();
  let at: number | null = net.outputs[0]?.ref ?? null;
  while (at !== null && at >= 0 && at < net.nodes.length && live[at] && !out.has(at)) {
    out.add(at);
    at = prev[at] ?? null;
  }
  return out;
};

/** An input conditioning at least this many drawn items is drawn as tags beside them. */
const TAG_THRESHOLD = 3;

const nodeId = (i: number): string => `n${i}`;

const paramLine = (count: number, color: string): string =>
  font(`${formatCount(count)} params`, { size: 9, color });

const nodeStmt = (c: Ctx, i: number): string => {
  const n = c.net.nodes[i]!;
  const v = c.views[i]!;
  const live = c.live[i]!;
  const pal = live ? PALETTE[v.family] : DEAD;
  const shape = showShape(c.shapes[i]!);
  const sub = v.family === 'io' ? '#c9d6e3' : live ? '#55606b' : DEAD.text;
  const rows: string[] = [row(font(`<b>${esc(v.title)}</b>`, { size: 11, color: pal.text }))];
  if (n.op !== 'input') rows.push(row(font(esc(n.path), { size: 9, color: sub, face: MONO })));
  rows.push(
    row(
      font(esc(shape), { size: 9, color: pal.text }) +
        (n.op === 'input' && n.dtype === 'index' ? font('  ·  domain index', { size: 9, color: sub }) : '') +
        (c.params[i]! > 0 ? font(`  ·  ${formatCount(c.params[i]!)} params`, { size: 9, color: sub }) : ''),
    ),
  );
  if (!live) rows.push(row(font('<i>unused: kept for its parameters</i>', { size: 8, color: DEAD.text })));
  const tags = c.tagged.get(i);
  if (tags !== undefined)
    rows.push(row(font(`<i>→ ${tags} ‘${esc(v.short)}’ tags</i>`, { size: 8, color: sub })));
  const keys = stateOfNode(n).map((p) => `${p.key} [${p.shape.join(', ')}]${p.trainable ? '' : ' (buffer)'}`);
  const tooltip = [
    n.op === 'input' ? `input ${n.name} (${n.dtype})` : `${n.path} — ${v.title}`,
    `output ${shape}`,
    ...(c.params[i]! > 0 ? [`${withCommas(c.params[i]!)} parameters:`, ...keys.map((k) => `  ${k}`)] : []),
    ...(live ? [] : ['not reachable from any output: present only for its parameters']),
  ].join('\n');
  return `${nodeId(i)} [${attrs({
    shape: n.op === 'input' ? 'invhouse' : 'box',
    orientation: n.op === 'input' && c.lr ? 90 : undefined,
    group: c.spine.has(i) ? 'spine' : undefined,
    style: n.op === 'input' ? 'filled' : live ? 'rounded,filled' : 'rounded,filled,dashed',
    fillcolor: pal.fill,
    color: pal.border,
    penwidth: n.op === 'input' ? 1.2 : 1,
    margin: n.op === 'input' ? '0.05,0.02' : '0.1,0.04',
    tooltip,
    label: table(rows),
  })}];`;
};

const tagId = (input: number, at: string): string => `t${input}_${at}`;

/** A small marker standing for a tagged input right where it is consumed. */
const tagStmt = (c: Ctx, input: number, at: string): string => {
  const n = c.net.nodes[input]!;
  const name = n.op === 'input' ? n.name : n.path;
  return `${tagId(input, at)} [${attrs({
    shape: 'box',
    style: 'rounded,filled',
    fillcolor: PALETTE.io.fill,
    color: PALETTE.io.border,
    width: 0.3,
    height: 0.22,
    margin: '0.04,0.01',
    tooltip: `input ${name} ${showShape(c.shapes[input]!)}`,
    label: `<${font(`<b>${esc(name)}</b>`, { size: 9, color: PALETTE.io.text })}>`,
  })}];`;
};

interface Block {
  readonly name: string;
  readonly members: readonly number[];
  readonly section: string | null;
}

const blockParams = (c: Ctx, b: Block): number => b.members.reduce((a, i) => a + c.params[i]!, 0);

/** What a block does, from its contents: `residual · ↓2`, `AdaIN · ↑2`, `MLP`. */
const blockKind = (c: Ctx, b: Block): string => {
  const ops = new Set(b.members.map((i) => c.net.nodes[i]!.op));
  // A short plain sequence (`to_rgb`) is best described by its ops.
  if (b.members.length <= 4 && !ops.has('add') && !ops.has('stack'))
    return b.members.map((i) => c.views[i]!.short).join(' → ');
  const parts: string[] = [];
  if (ops.has('add')) parts.push('residual');
  if (ops.has('adain')) parts.push('AdaIN');
  else if (ops.has('instanceNorm')) parts.push('IN');
  if ([...ops].every((o) => o === 'linear' || o === 'relu' || o === 'leakyRelu' || o === 'tanh')) parts.push('MLP');
  const sel = b.members.map((i) => c.net.nodes[i]!).find((n) => n.op === 'stack');
  if (sel?.op === 'stack') parts.push(`${sel.inputs.length} heads`);
  const pool = b.members.map((i) => c.net.nodes[i]!).find((n) => n.op === 'avgPool');
  const up = b.members.map((i) => c.net.nodes[i]!).find((n) => n.op === 'upsampleNearest');
  if (pool?.op === 'avgPool') parts.push(`↓${pool.size}`);
  if (up?.op === 'upsampleNearest') parts.push(`↑${up.scale}`);
  return parts.length > 0 ? parts.join(' · ') : 'block';
};

/** Values entering and leaving a block (deduplicated, in node order). */
const blockBoundary = (c: Ctx, b: Block): { ins: number[]; outs: number[] } => {
  const inside = new Set(b.members);
  const ins = new Set<number>();
  const outs = new Set<number>();
  c.net.nodes.forEach((n, j) => {
    const mine = inside.has(j);
    for (const r of refsOf(n)) {
      if (mine && !inside.has(r) && c.live[j]) ins.add(r);
      if (!mine && inside.has(r) && c.live[j]) outs.add(r);
    }
  });
  c.net.outputs.forEach((o) => inside.has(o.ref) && outs.add(o.ref));
  const byOrder = (s: Set<number>): number[] => [...s].sort((a, z) => a - z);
  return { ins: byOrder(ins), outs: byOrder(outs) };
};

/** A collapsed block: name, kind, a strip of its ops coloured by family, shapes, parameters. */
const blockStmt = (c: Ctx, b: Block, id: string): string => {
  const live = b.members.some((i) => c.live[i]);
  const dead = b.members.filter((i) => !c.live[i]);
  const { ins, outs } = blockBoundary(c, b);
  const shapesOf = (rs: number[]): string =>
    rs
      .map((r) => showShape(c.shapes[r]!))
      .filter((s, k, all) => all.indexOf(s) === k)
      .join(', ');
  // Style / label inputs are conditioning: list only the data inputs on the in → out line.
  const dataIns = ins.filter((r) =>
    b.members.some((m) => operands(c.net.nodes[m]!).some((o) => o.ref === r && !o.conditioning)),
  );
  const strip = b.members
    .map((i) => {
      const pal = c.live[i] ? PALETTE[c.views[i]!.family] : DEAD;
      return `<td width="9" height="9" fixedsize="true" bgcolor="${pal.border}"></td>`;
    })
    .join('');
  const text = live ? '#1d2731' : DEAD.text;
  const sub = live ? '#55606b' : DEAD.text;
  const params = blockParams(c, b);
  const rows = [
    `<tr><td align="left">${font(`<b>${esc(b.name)}</b>`, { size: 12, color: text, face: MONO })}</td><td align="right">${font(esc(blockKind(c, b)), { size: 9, color: sub })}</td></tr>`,
    `<tr><td colspan="2" align="left"><table border="0" cellborder="0" cellspacing="2" cellpadding="0" fixedsize="true" width="${b.members.length * 11 + 2}" height="13"><tr>${strip}</tr></table></td></tr>`,
    `<tr><td colspan="2" align="left">${font(`${esc(shapesOf(dataIns) || '—')} → ${esc(shapesOf(outs) || '—')}`, { size: 9, color: text })}</td></tr>`,
    `<tr><td colspan="2" align="left">${paramLine(params, sub)}${font(`  ·  ${b.members.length} ops`, { size: 9, color: sub })}</td></tr>`,
  ];
  if (dead.length > 0 && live)
    rows.push(
      `<tr><td colspan="2" align="left">${font(`<i>unused (params only): ${esc(dead.map((i) => c.net.nodes[i]!.path.slice(b.name.length + 1)).join(', '))}</i>`, { size: 8, color: DEAD.text })}</td></tr>`,
    );
  const tooltip = [
    `${b.name} — ${blockKind(c, b)}, ${withCommas(params)} parameters`,
    ...b.members.map((i) => `  ${c.net.nodes[i]!.path}: ${c.views[i]!.title} → ${showShape(c.shapes[i]!)}${c.live[i] ? '' : ' (unused)'}`),
  ].join('\n');
  return `${id} [${attrs({
    shape: 'box',
    group: b.members.some((i) => c.spine.has(i)) ? 'spine' : undefined,
    style: live ? 'rounded,filled' : 'rounded,filled,dashed',
    fillcolor: live ? '#ffffff' : DEAD.fill,
    color: live ? '#5b6b7b' : DEAD.border,
    penwidth: 1.4,
    margin: '0.12,0.06',
    tooltip,
    label: `<<table border="0" cellborder="0" cellspacing="0" cellpadding="1">${rows.join('')}</table>>`,
  })}];`;
};

const legend = (c: Ctx, title: string, collapsed: number): string => {
  const total = c.params.reduce((a, b) => a + b, 0);
  const deadCount = c.live.filter((l) => !l).length;
  const hasCond = c.net.nodes.some((n) => operands(n).some((o) => o.conditioning));
  const swatch = (fill: string, border: string, color: string, text: string, style = ''): string =>
    `<td bgcolor="${fill}" border="1" color="${border}"${style ? ` style="${style}"` : ''} cellpadding="4">${font(esc(text), { size: 10, color })}</td>`;
  const cells = [
    ...FAMILY_ORDER.filter((f) => c.views.some((v) => v.family === f)).map((f) =>
      swatch(PALETTE[f].fill, PALETTE[f].border, PALETTE[f].text, PALETTE[f].legend),
    ),
    ...(deadCount > 0 ? [swatch(DEAD.fill, DEAD.border, DEAD.text, 'unused (params only)', 'dashed')] : []),
    ...(hasCond ? [`<td cellpadding="4">${font(`<b>⟶</b>  style / label / index input`, { size: 10, color: COND_EDGE })}</td>`] : []),
  ];
  const facts = [
    `${formatCount(total)} parameters (${withCommas(total)})`,
    `${c.net.nodes.length} nodes`,
    ...(deadCount > 0 ? [`${deadCount} unused`] : []),
    ...(collapsed > 0 ? [`${collapsed} blocks collapsed`] : []),
  ].join('  ·  ');
  return `<<table border="0" cellborder="0" cellspacing="3" cellpadding="0">
<tr><td align="left" colspan="${cells.length}">${font(`<b>${esc(title)}</b>`, { size: 18, color: '#1d2731' })}${font(`   ${esc(facts)}`, { size: 11, color: '#55606b' })}</td></tr>
<tr>${cells.join('')}</tr>
</table>>`;
};

/**
 * The network as a DOT digraph. Shape inference runs first: its errors are returned unchanged
 * (each names the node path), since a diagram of a net whose shapes do not check would mislead.
 */
export const toDot = (net: Network, opts: DotOptions = {}): Result<string> =>
  E.map(({ shapes }: { shapes: readonly Shape[] }) => render(net, shapes, opts))(inferShapes(net));

const render = (net: Network, shapes: readonly Shape[], opts: DotOptions): string => {
  const collapse = opts.collapse ?? false;
  const { blockOf, sectionOf } = groupNodes(net);

  // Blocks in first-appearance order.
  const blocks = new Map<string, { members: number[]; section: string | null }>();
  blockOf.forEach((b, i) => {
    if (b === null) return;
    const entry = blocks.get(b) ?? { members: [], section: sectionOf[i] ?? null };
    entry.members.push(i);
    blocks.set(b, entry);
  });
  const blockList: Block[] = [...blocks.entries()].map(([name, e]) => ({ name, ...e }));
  const blockIndex = new Map(blockList.map((b, k) => [b.name, k]));
  const blockId = (k: number): string => `b${k}`;
  /** Where a node is drawn: its own id, or its collapsed block's id. */
  const repr = (i: number): string => {
    const b = blockOf[i];
    return collapse && b !== null && b !== undefined ? blockId(blockIndex.get(b)!) : nodeId(i);
  };

  const live = reachable(net);
  const consumers = new Map<number, Set<string>>();
  net.nodes.forEach((n, j) => {
    if (!live[j]) return;
    for (const { ref, conditioning: cond } of operands(n))
      if (cond && net.nodes[ref]?.op === 'input') consumers.set(ref, (consumers.get(ref) ?? new Set()).add(repr(j)));
  });
  const tagged = new Map([...consumers].filter(([, s]) => s.size >= TAG_THRESHOLD).map(([r, s]) => [r, s.size]));
  const c: Ctx = {
    net,
    shapes,
    live,
    params: paramCountsByNode(net),
    views: net.nodes.map((n) => viewOf(n, net)),
    tagged,
    spine: spineOf(net, live),
    lr: opts.direction === 'LR',
  };
  /** Tags to draw next to a drawn item whose members are `members`. */
  const emitTags = (members: readonly number[], at: string, depth: number): void => {
    const refs = new Set<number>();
    for (const j of members)
      if (live[j]) for (const { ref, conditioning: cond } of operands(net.nodes[j]!)) if (cond && tagged.has(ref)) refs.add(ref);
    // The tag sits on its consumer's rank, to its right, with a short arrow pointing at it: no
    // extra rank, so the block it belongs to does not grow upwards into the previous one.
    refs.forEach((r) => {
      emit(tagStmt(c, r, at), depth);
      emit(`{ rank=same; ${at}; ${tagId(r, at)}; }`, depth);
      emit(`${at} -> ${tagId(r, at)} [${attrs({ dir: 'back', color: COND_EDGE, penwidth: 1, arrowsize: 0.6, minlen: 0.2 })}];`, depth);
    });
  };

  const lines: string[] = [];
  const emit = (s: string, depth = 1): void => {
    lines.push(`${'  '.repeat(depth)}${s}`);
  };

  // Nodes, sections and blocks. Drawn items in node order, grouped by section then block.
  const sections: string[] = [];
  sectionOf.forEach((s) => s !== null && !sections.includes(s) && sections.push(s));

  const emitBlock = (b: Block, depth: number): void => {
    const k = blockIndex.get(b.name)!;
    if (collapse) {
      emit(blockStmt(c, b, blockId(k)), depth);
      emitTags(b.members, blockId(k), depth);
      return;
    }
    const live = b.members.some((i) => c.live[i]);
    emit(`subgraph cluster_b${k} {`, depth);
    emit(
      attrs({
        label: `<${font(`<b>${esc(b.name)}</b>`, { size: 11, color: '#1d2731', face: MONO })}${font(`  ${esc(blockKind(c, b))} · ${formatCount(blockParams(c, b))} params`, { size: 10, color: '#55606b' })}>`,
        labeljust: 'l',
        style: live ? 'rounded,filled' : 'rounded,filled,dashed',
        fillcolor: '#ffffff',
        color: live ? '#8795a3' : DEAD.border,
        penwidth: 1.2,
        margin: 10,
      }, '; ') + ';',
      depth + 1,
    );
    b.members.forEach((i) => {
      emit(nodeStmt(c, i), depth + 1);
      emitTags([i], nodeId(i), depth + 1);
    });
    emit('}', depth);
  };

  const emitGroup = (section: string | null, depth: number): void => {
    const done = new Set<string>();
    net.nodes.forEach((n, i) => {
      if (n.op === 'input' || (sectionOf[i] ?? null) !== section) return;
      const b = blockOf[i];
      if (b === null || b === undefined) {
        emit(nodeStmt(c, i), depth);
        emitTags([i], nodeId(i), depth);
        return;
      }
      if (done.has(b)) return;
      done.add(b);
      emitBlock(blockList[blockIndex.get(b)!]!, depth);
    });
  };

  // Inputs first, on the first rank.
  const inputs = net.nodes.map((n, i) => (n.op === 'input' ? i : -1)).filter((i) => i >= 0);
  inputs.forEach((i) => emit(nodeStmt(c, i)));
  if (inputs.length > 1) emit(`{ rank=source; ${inputs.map(nodeId).join('; ')}; }`);

  emitGroup(null, 1);
  sections.forEach((s, k) => {
    const members = net.nodes.map((_, i) => i).filter((i) => sectionOf[i] === s);
    const params = members.reduce((a, i) => a + c.params[i]!, 0);
    const nBlocks = blockList.filter((b) => b.section === s).length;
    emit(`subgraph cluster_s${k} {`);
    emit(
      attrs({
        label: `<${font(`<b>${esc(s)}</b>`, { size: 14, color: '#2c3e50', face: MONO })}${font(`  ${nBlocks > 0 ? `${nBlocks} blocks · ` : ''}${formatCount(params)} params`, { size: 11, color: '#55606b' })}>`,
        labeljust: 'l',
        style: 'rounded,filled',
        fillcolor: '#f3f5f8',
        color: '#d5dbe2',
        penwidth: 1,
        margin: 14,
      }, '; ') + ';',
      2,
    );
    emitGroup(s, 2);
    emit('}');
  });

  // Outputs: pseudo-nodes on the last rank.
  net.outputs.forEach((o, k) => {
    emit(
      `o${k} [${attrs({
        shape: 'box',
        peripheries: 2,
        style: 'filled',
        fillcolor: PALETTE.io.fill,
        color: PALETTE.io.border,
        penwidth: 1.2,
        margin: '0.14,0.05',
        tooltip: `output ${o.name}: ${showShape(shapes[o.ref]!)}`,
        label: table([
          row(font(`<b>output ${esc(o.name)}</b>`, { size: 11, color: PALETTE.io.text })),
          row(font(esc(showShape(shapes[o.ref]!)), { size: 9, color: PALETTE.io.text })),
        ]),
      })}];`,
    );
  });
  if (net.outputs.length > 1) emit(`{ rank=sink; ${net.outputs.map((_, k) => `o${k}`).join('; ')}; }`);

  // Edges: deduplicated by drawn endpoints (collapsed blocks merge many edges into one).
  const edges = new Map<string, { from: string; to: string; cond: boolean; live: boolean; shape: string }>();
  net.nodes.forEach((n, j) => {
    for (const { ref, conditioning: cond } of operands(n)) {
      const to = repr(j);
      const from = repr(ref);
      if (from === to || (cond && c.live[j] && tagged.has(ref))) continue;
      const key = `${from}->${to}`;
      const prev = edges.get(key);
      edges.set(key, {
        from,
        to,
        cond: (prev?.cond ?? true) && cond,
        live: (prev?.live ?? false) || c.live[j]!,
        shape: showShape(shapes[ref]!),
      });
    }
  });
  net.outputs.forEach((o, k) => edges.set(`${repr(o.ref)}->o${k}`, { from: repr(o.ref), to: `o${k}`, cond: false, live: true, shape: '' }));
  for (const e of edges.values())
    emit(
      `${e.from} -> ${e.to} [${attrs({
        color: !e.live ? DEAD.border : e.cond ? COND_EDGE : DATA_EDGE,
        style: e.live ? undefined : 'dashed',
        penwidth: e.cond ? 1 : 1.3,
        arrowsize: 0.7,
        tooltip: e.shape || undefined,
      })}];`,
    );

  const direction = opts.direction ?? 'TB';
  const header = [
    `digraph ${q(net.name)} {`,
    `  graph [${attrs({
      rankdir: direction,
      newrank: 'true',
      compound: 'true',
      fontname: FONT,
      bgcolor: '#ffffff',
      pad: '0.4',
      nodesep: 0.25,
      ranksep: 0.25,
      labelloc: 't',
      labeljust: 'l',
      label: legend(c, opts.title ?? net.name, collapse ? blockList.length : 0),
    })}];`,
    `  node [${attrs({ fontname: FONT, fontsize: 10 })}];`,
    `  edge [${attrs({ fontname: FONT, fontsize: 8 })}];`,
  ];
  return [...header, ...lines, '}', ''].join('\n');
};
