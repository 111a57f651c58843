/**
 * models.py: every network of a spec as a PyTorch `nn.Module`, written as plain Python by a total
 * fold over the IR's node union; each op is emitted as the PyTorch call its doc comment in the op
 * table (dsl/ops.ts) names.
 *
 * - `__init__` places one module per parametric node at the node's path (containers for the path's
 *   prefixes), so `state_dict()` keys are exactly the spec's state keys (dsl/params.ts `stateDict`:
 *   parameters, then used buffers; the official names for the built-in specs). Nodes that share a
 *   path share the module (as the tfjs interpreter shares parameters by key).
 * - `forward` takes the inputs in the network's order and computes only the nodes some output
 *   depends on, one line per node (an unused branch keeps its parameters, as in the official code).
 * - Used buffers (BatchNorm's running statistics) are the module's own buffers: loaded strictly,
 *   read by forward, never trained. Ignored buffers (dsl/params.ts `ignoredKeys`: v1 InstanceNorm
 *   running statistics, `num_batches_tracked`, v2 `hpf.filter`) are registered too, so
 *   `load_state_dict(strict=True)` takes an official checkpoint; a file without them (starspec's
 *   weights files) loads strictly too: the absent ones are filled in, never used.
 * - The tables PARAMETERS and BUFFERS (from `parameters` and `stateDict`) tell train.py what to
 *   initialise, optimise, average and save.
 */
import * as E from 'fp-ts/lib/Either.js';
import { absurd, specError, type Result, type SpecError } from '../../dsl/errors.ts';
import type { Expr, Network, Node, Pipeline, Spec } from '../../dsl/ir.ts';
import { buffersOfNode, ignoredKeys, paramKey, parameterCount, parameters, stateDict, usedBuffersOfNode } from '../../dsl/params.ts';
import { findNetwork, inputsOf, reachable } from '../../dsl/walk.ts';
import { callsIn, isConstant, networksOf } from '../../dsl/pipelines.ts';
import { canon, valueCode, type ExprContext } from './exprs.ts';
import { className, identifier, indent, namer, pyNum, pyStr, pyTuple } from './python.ts';

/** The fixed part of models.py: containers, the two norm modules, and the network base class. */
const PRELUDE = `import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class Tree(nn.Module):
    """A named container: it holds modules at the spec's paths, so state_dict keys are the paths."""

    def forward(self, *args):
        raise RuntimeError('a Tree only holds parameters; call the network instead')


def put(root, path, module):
    """Place \`module\` at the dotted \`path\` under \`root\` (creating containers) and return it."""
    *parents, last = path.split('.')
    node = root
    for name in parents:
        child = node._modules.get(name)
        if child is None:
            child = node._modules[name] = Tree()
        node = child
    old = node._modules.get(last)
    if old is not None:  # a container made for a longer path: its children move to the module
        module._modules.update(old._modules)
    node._modules[last] = module
    return module


def buffer(root, path, value):
    """Register a buffer at the dotted \`path\` under \`root\` (creating containers)."""
    *parents, last = path.split('.')
    node = root
    for name in parents:
        child = node._modules.get(name)
        if child is None:
            child = node._modules[name] = Tree()
        node = child
    node.register_buffer(last, value)


def as_index(y):
    """Domain or class indices as int64 (float32 files hold them as whole numbers)."""
    return torch.round(y).long() if y.is_floating_point() else y.long()


def concat_label(x, c):
    """A label vector (N, L) replicated over the image grid and concatenated on channels."""
    return torch.cat([x, c.view(c.size(0), c.size(1), 1, 1).expand(-1, -1, x.size(2), x.size(3))], dim=1)


def select(stacked, y):
    """out[i] = stacked[i, y[i]]: each sample's own branch."""
    return stacked[torch.arange(stacked.size(0), device=stacked.device), y]


class InstanceNorm(nn.Module):
    """InstanceNorm2d that always uses instance statistics, as the official code runs StarGAN
    (its test code never calls eval()). With running_stats it carries the running_mean,
    running_var and num_batches_tracked buffers of official checkpoints, which are never used."""

    def __init__(self, channels, affine=True, eps=1e-5, running_stats=False):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels)) if affine else None
        self.bias = nn.Parameter(torch.zeros(channels)) if affine else None
        if running_stats:
            self.register_buffer('running_mean', torch.zeros(channels))
            self.register_buffer('running_var', torch.ones(channels))
            self.register_buffer('num_batches_tracked', torch.tensor(0, dtype=torch.long))

    def forward(self, x):
        return F.instance_norm(x, weight=self.weight, bias=self.bias, eps=self.eps)


class AdaIN(nn.Module):
    """Adaptive instance norm: [gamma, beta] = fc(s); out = (1 + gamma) * IN(x) + beta."""

    def __init__(self, style_dim, channels, eps=1e-5):
        super().__init__()
        self.eps = eps
        self.fc = nn.Linear(style_dim, 2 * channels)

    def forward(self, x, s):
        h = self.fc(s).view(s.size(0), -1, 1, 1)
        gamma, beta = torch.chunk(h, chunks=2, dim=1)
        return (1 + gamma) * F.instance_norm(x, eps=self.eps) + beta


class BatchNorm(nn.BatchNorm2d):
    """nn.BatchNorm2d in eval mode whatever the module's mode: (x - running_mean) /
    sqrt(running_var + eps) * weight + bias. The running statistics are read, never updated
    (train.py never optimises or averages them); num_batches_tracked is carried, never used."""

    def forward(self, x):
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)


def zero_channels(x, channels):
    """x.clone(); x[:, channels] = 0 (NaN and infinities there become 0 too)."""
    x = x.clone()
    x[:, channels] = 0
    return x


def add_coords(x, with_radius):
    """core/wing.py's AddCoordsTh (with_boundary off): torch.cat([x, xx, yy(, rr)], dim=1) with
    xx = 2h/(H-1) - 1 along the height, yy = 2w/(W-1) - 1 along the width, rr = sqrt(xx^2 + yy^2) / max(rr)."""
    n, _, h, w = x.shape
    xx = torch.arange(h, device=x.device).unsqueeze(1).expand(h, w).float()
    yy = torch.arange(w, device=x.device).unsqueeze(0).expand(h, w).float()
    xx = (xx / (h - 1)) * 2 - 1
    yy = (yy / (w - 1)) * 2 - 1
    parts = [xx, yy]
    if with_radius:
        rr = torch.sqrt(torch.pow(xx, 2) + torch.pow(yy, 2))
        parts.append(rr / torch.max(rr))
    coords = torch.stack(parts, dim=0).unsqueeze(0).expand(n, -1, -1, -1).to(x.dtype)
    return torch.cat([x, coords], dim=1)


def standardize(x, mean, std):
    """(x - mean[c]) / std[c] over dim 1, the lists as float32 constants (length 1: every channel)."""
    shape = (1, -1) + (1,) * (x.dim() - 2)
    m = torch.tensor(mean, dtype=torch.float32, device=x.device).view(shape)
    s = torch.tensor(std, dtype=torch.float32, device=x.device).view(shape)
    return (x - m) / s


def zero_where_nan(x, of):
    """x.clone(); x[of != of] = 0."""
    x = x.clone()
    x[of != of] = 0
    return x


def min_max_norm(x, eps):
    """core/wing.py's normalize: per sample and channel over H and W, (x - min) / (max - min + eps)."""
    n, c, h, w = x.shape
    flat = x.contiguous().view(n * c, -1)
    lo = flat.min(dim=1, keepdim=True)[0]
    hi = flat.max(dim=1, keepdim=True)[0]
    return ((flat - lo) / (hi - lo + eps)).view(n, c, h, w)


def l2_normalize(x, eps):
    """metrics/lpips.py's normalize: x * rsqrt(sum(x ** 2 over dim 1) + eps)."""
    return x * torch.rsqrt(torch.sum(x ** 2, dim=1, keepdim=True) + eps)


def high_pass(x, k):
    """core/model.py's HighPass: its (3, 3) 'filter' buffer k (fresh: [[-1, -1, -1], [-1, 8, -1],
    [-1, -1, -1]] / w_hpf; loaded from a checkpoint that holds it) on every channel."""
    c = x.size(1)
    return F.conv2d(x, k.view(1, 1, 3, 3).repeat(c, 1, 1, 1), padding=1, groups=c)


class Network(nn.Module):
    """Base of every network here: optional buffers (those official checkpoints carry and
    computation ignores) are taken from a state_dict when present, whatever their shape, and kept
    as they are when absent, so load_state_dict(strict=True) accepts files with or without them."""

    optional_buffers = ()

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        for key in self.optional_buffers:
            *parents, last = key.split('.')
            owner = self.get_submodule('.'.join(parents)) if parents else self
            if prefix + key in state_dict:
                old = owner._buffers.get(last)
                value = state_dict[prefix + key].detach().clone()
                owner._buffers[last] = value if old is None else value.to(old.device)
            else:
                state_dict[prefix + key] = owner._buffers[last]
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
`;

interface NetCode {
  readonly cls: string;
  readonly lines: readonly string[];
}

const pyBool = (b: boolean): string => (b ? 'True' : 'False');
/** PyTorch's `int or (h, w)` (kernel_size, stride, padding, size). */
const pySize = (v: number | readonly [number, number]): string => (typeof v === 'number' ? String(v) : pyTuple(v.map(String)));
/** A list of numbers as a Python list literal. */
const pyList = (v: readonly number[]): string => `[${v.map(pyNum).join(', ')}]`;

/**
 * The constructor expression of a node's module (its parameters and buffers live there), or null
 * for a node without state. A module registers the node's ignored buffers itself
 * (InstanceNorm's running statistics, BatchNorm's num_batches_tracked); a node without a module
 * that has ignored buffers (HighPass's filter) gets empty placeholders (see networkClass).
 */
const moduleOf = (n: Node): string | null => {
  switch (n.op) {
    case 'conv2d':
      return `nn.Conv2d(${n.inChannels}, ${n.outChannels}, ${pySize(n.kernel)}, stride=${pySize(n.stride)}, padding=${pySize(n.padding)}, bias=${pyBool(n.bias)})`;
    case 'convTranspose2d':
      return `nn.ConvTranspose2d(${n.inChannels}, ${n.outChannels}, ${pySize(n.kernel)}, stride=${pySize(n.stride)}, padding=${pySize(n.padding)}, bias=${pyBool(n.bias)})`;
    case 'instanceNorm':
      return n.affine || n.runningStats
        ? `InstanceNorm(${n.channels}, affine=${pyBool(n.affine)}, eps=${pyNum(n.eps)}, running_stats=${pyBool(n.runningStats)})`
        : null;
    case 'batchNorm2d':
      return `BatchNorm(${n.channels}, eps=${pyNum(n.eps)}, affine=${pyBool(n.affine)})`;
    case 'adain':
      return `AdaIN(${n.styleDim}, ${n.channels}, eps=${pyNum(n.eps)})`;
    case 'linear':
      return `nn.Linear(${n.inFeatures}, ${n.outFeatures}, bias=${pyBool(n.bias)})`;
    case 'input':
    case 'relu':
    case 'leakyRelu':
    case 'tanh':
    case 'avgPool':
    case 'avgPool2d':
    case 'maxPool2d':
    case 'globalAvgPool':
    case 'upsampleNearest':
    case 'resizeBilinear':
    case 'concat':
    case 'sliceChannels':
    case 'sumChannels':
    case 'zeroChannels':
    case 'addCoords':
    case 'shiftRows':
    case 'mul':
    case 'sub':
    case 'standardize':
    case 'pow':
    case 'zeroBelow':
    case 'clamp':
    case 'zeroWhereNaN':
    case 'minMaxNorm':
    case 'l2Normalize':
    case 'highPass':
    case 'concatLabel':
    case 'add':
    case 'flatten':
    case 'stack':
    case 'select':
      return null;
    default:
      return absurd(n);
  }
};

/** Names models.py defines at module level, which forward's local variables must not shadow. */
const PRELUDE_NAMES = [
  'math', 'torch', 'nn', 'F', 'Tree', 'put', 'buffer', 'as_index', 'concat_label', 'select', 'InstanceNorm', 'AdaIN', 'BatchNorm',
  'zero_channels', 'add_coords', 'standardize', 'zero_where_nan', 'min_max_norm', 'l2_normalize', 'high_pass', 'Network',
];

/** One network as a class. */
const networkClass = (net: Network, cls: string, specName: string): Result<NetCode> => {
  const errors: SpecError[] = [];
  const where = (n: Node): string => `${net.name}/${n.path}`;
  const live = reachable(net);
  const inputs = inputsOf(net);
  const argNames = namer(['self', 'L', ...PRELUDE_NAMES]);
  const args = new Map(inputs.map((i) => [i, argNames(i.name)] as const));

  // __init__: one module per parametric path.
  const init: string[] = [];
  const modules = new Map<string, string>();
  const placeholders: string[] = [];
  for (const n of net.nodes) {
    const m = moduleOf(n);
    if (m === null) {
      placeholders.push(...buffersOfNode(n));
      continue;
    }
    if (n.path.split('.').some((p) => p === ''))
      errors.push(specError(where(n), `path '${n.path}' has an empty component`, 'a PyTorch module path is names joined by dots'));
    const seen = modules.get(n.path);
    if (seen === undefined) {
      modules.set(n.path, m);
      init.push(`L[${pyStr(n.path)}] = put(self, ${pyStr(n.path)}, ${m})`);
    } else if (seen !== m)
      errors.push(specError(where(n), `path '${n.path}' names two different layers (${seen} and ${m})`, 'give each layer its own path'));
  }
  // Ignored buffers no module registers: empty placeholders, so official checkpoints load strictly.
  const optional = [...ignoredKeys(net)];
  for (const b of new Set([...placeholders, ...net.ignoredBuffers])) init.push(`buffer(self, ${pyStr(b)}, torch.zeros(0))  # ignored by computation`);
  // Used buffers with a fixed value on module-less nodes (HighPass's filter): registered at their
  // value, read by forward, taken from a state_dict that holds them (official checkpoints do).
  const constants = new Set<string>();
  for (const n of net.nodes)
    if (moduleOf(n) === null)
      for (const p of usedBuffersOfNode(n))
        if (p.value !== null && !constants.has(p.key)) {
          constants.add(p.key);
          optional.push(p.key);
          init.push(`buffer(self, ${pyStr(p.key)}, torch.tensor(${pyTuple(p.value.map(pyNum))}, dtype=torch.float32).view(${pyTuple(p.shape.map(String))}))`);
        }

  // forward: one line per live node.
  const vars: string[] = net.nodes.map(() => '');
  const body: string[] = [];
  const names = namer([...args.values(), 'self', 'L', ...PRELUDE_NAMES]);
  net.nodes.forEach((n, i) => {
    if (n.op === 'input') {
      vars[i] = args.get(n)!;
      if (n.dtype === 'index' && live[i]) body.push(`${vars[i]} = as_index(${vars[i]})`);
      return;
    }
    if (!live[i]) return;
    const v = (r: number): string => vars[r]!;
    const at = `L[${pyStr(n.path)}]`;
    const code = ((): string => {
      switch (n.op) {
        case 'conv2d':
        case 'convTranspose2d':
        case 'linear':
        case 'batchNorm2d':
          return `${at}(${v(n.input)})`;
        case 'instanceNorm':
          return n.affine || n.runningStats ? `${at}(${v(n.input)})` : `F.instance_norm(${v(n.input)}, eps=${pyNum(n.eps)})`;
        case 'adain':
          return `${at}(${v(n.input)}, ${v(n.style)})`;
        case 'relu':
          return `F.relu(${v(n.input)})`;
        case 'leakyRelu':
          return `F.leaky_relu(${v(n.input)}, ${pyNum(n.alpha)})`;
        case 'tanh':
          return `torch.tanh(${v(n.input)})`;
        case 'avgPool':
          return `F.avg_pool2d(${v(n.input)}, ${n.size})`;
        case 'avgPool2d':
          return `F.avg_pool2d(${v(n.input)}, ${pySize(n.kernel)}, stride=${pySize(n.stride)}, padding=${pySize(n.padding)}, count_include_pad=${pyBool(n.countIncludePad)})`;
        case 'maxPool2d':
          return `F.max_pool2d(${v(n.input)}, ${pySize(n.kernel)}, stride=${pySize(n.stride)}, padding=${pySize(n.padding)})`;
        case 'globalAvgPool':
          return `F.adaptive_avg_pool2d(${v(n.input)}, 1)`;
        case 'upsampleNearest':
          return `F.interpolate(${v(n.input)}, scale_factor=${n.scale}, mode='nearest')`;
        case 'resizeBilinear': {
          const to = n.size !== null ? `size=${pySize(n.size)}` : `scale_factor=${pyNum(n.scale ?? 1)}`;
          return `F.interpolate(${v(n.input)}, ${to}, mode='bilinear', align_corners=${pyBool(n.alignCorners)})`;
        }
        case 'concat':
          return `torch.cat([${n.inputs.map(v).join(', ')}], dim=1)`;
        case 'sliceChannels':
          return `${v(n.input)}[:, ${n.start}:${n.end}]`;
        case 'sumChannels':
          return `${v(n.input)}.sum(dim=1, keepdim=True)`;
        case 'zeroChannels':
          return `zero_channels(${v(n.input)}, ${pyList(n.channels)})`;
        case 'addCoords':
          return `add_coords(${v(n.input)}, ${pyBool(n.withRadius)})`;
        case 'shiftRows':
          return `torch.roll(${v(n.input)}, ${-n.rows}, dims=2)`;
        case 'mul':
          return `${v(n.a)} * ${v(n.b)}`;
        case 'sub':
          return `${v(n.a)} - ${v(n.b)}`;
        case 'standardize':
          return `standardize(${v(n.input)}, ${pyList(n.mean)}, ${pyList(n.std)})`;
        case 'pow':
          return `${v(n.input)} ** ${pyNum(n.exponent)}`;
        case 'zeroBelow':
          return `torch.where(${v(n.input)} < ${pyNum(n.threshold)}, torch.zeros_like(${v(n.input)}), ${v(n.input)})`;
        case 'clamp':
          return `torch.clamp(${v(n.input)}, ${pyNum(n.min)}, ${pyNum(n.max)})`;
        case 'zeroWhereNaN':
          return `zero_where_nan(${v(n.input)}, ${v(n.of)})`;
        case 'minMaxNorm':
          return `min_max_norm(${v(n.input)}, ${pyNum(n.eps)})`;
        case 'l2Normalize':
          return `l2_normalize(${v(n.input)}, ${pyNum(n.eps)})`;
        case 'highPass':
          return `high_pass(${v(n.input)}, self.get_buffer(${pyStr(paramKey(n, 'filter'))}))`;
        case 'concatLabel':
          return `concat_label(${v(n.input)}, ${v(n.label)})`;
        case 'add': {
          const sum = n.inputs.map(v).join(' + ');
          if (n.scale === 1) return sum;
          if (n.scale === Math.SQRT1_2) return `(${sum}) / math.sqrt(2)`;
          return `(${sum}) * ${pyNum(n.scale)}`;
        }
        case 'flatten':
          return `${v(n.input)}.flatten(1)`;
        case 'stack':
          return `torch.stack([${n.inputs.map(v).join(', ')}], dim=1)`;
        case 'select':
          return `select(${v(n.input)}, ${v(n.index)})`;
        default:
          return absurd(n);
      }
    })();
    vars[i] = names(n.path || n.op);
    body.push(`${vars[i]} = ${code}`);
  });
  const outs = net.outputs.map((o) => vars[o.ref]!);
  body.push(`return ${outs.length === 1 ? outs[0] : outs.join(', ')}`);
  if (errors.length > 0) return E.left(errors);

  // An optional argument (the generator's masks) defaults to None, meaning zeros of (N, ...shape).
  const sig = inputs.map((i) => (i.optional ? `${args.get(i)!}=None` : args.get(i)!));
  const batchOf = inputs.find((i) => !i.optional);
  const zerosFor = inputs
    .filter((i) => i.optional)
    .flatMap((i) =>
      batchOf === undefined
        ? []
        : [
            `if ${args.get(i)!} is None:`,
            `    ${args.get(i)!} = torch.zeros((${args.get(batchOf)!}.size(0), ${i.shape.join(', ')}), device=${args.get(batchOf)!}.device)`,
          ],
    );
  const outNames = net.outputs.map((o) => o.name);
  const lines = [
    `class ${cls}(Network):`,
    `    """${net.name}(${inputs.map((i) => i.name).join(', ')}) -> ${outNames.join(', ')}: ${parameterCount(net).toLocaleString('en-US')} parameters (${specName})."""`,
    '',
    `    name = ${pyStr(net.name)}`,
    `    inputs = ${pyTuple(inputs.map((i) => pyStr(i.name)))}`,
    `    # per-sample shapes; () with an int64 dtype for a domain index`,
    `    input_shapes = {${inputs.map((i) => `${pyStr(i.name)}: ${pyTuple(i.shape.map(String))}`).join(', ')}}`,
    `    index_inputs = ${pyTuple(inputs.filter((i) => i.dtype === 'index').map((i) => pyStr(i.name)))}`,
    `    outputs = ${pyTuple(outNames.map(pyStr))}`,
    `    init = ${pyStr(net.init)}`,
    `    optional_buffers = ${pyTuple(optional.map(pyStr))}`,
    '',
    '    def __init__(self):',
    '        super().__init__()',
    '        L = self._at = {}  # path -> module, for forward',
    ...indent(init, 2),
    '',
    `    def forward(self, ${sig.join(', ')}):`,
    '        L = self._at',
    ...indent(zerosFor, 2),
    ...indent(body, 2),
  ];
  return E.right({ cls, lines });
};

/**
 * One declared pipeline (dsl/pipelines.ts) as a module: its networks as members (state_dict keys
 * carry each network's `NAME.` prefix, as starspec's multi-network weights files do), its inputs in
 * declared order, its outputs as a tuple. A fold over the pipeline's expressions, written as the
 * objective's are (interpreters/torch/exprs.ts); structurally equal expressions are computed once.
 * What depends only on the weights (dsl/pipelines.ts `isConstant`: StarGAN v2's truncation target,
 * the mean style of 10,000 seeded codes) is computed once per set of weights and kept, as the tfjs
 * and ONNX folds keep it.
 */
const pipelineClass = (spec: Spec, p: Pipeline, cls: string, classes: ReadonlyMap<string, string>): Result<string[]> => {
  const errors: SpecError[] = [];
  const where = `pipelines.${p.name}`;
  const members = networksOf(p);
  const names = namer(['self', 'kept', 'torch', 'nn', 'F', 'ops', ...PRELUDE_NAMES]);
  const args = new Map(p.inputs.map((i) => [i.name, names(i.name)] as const));
  const first = args.get(p.inputs[0]?.name ?? '') ?? 'None';
  const attr = (net: string): string => (identifier(net) === net ? `self.${net}` : `self._modules[${pyStr(net)}]`);

  /** A body of straight-line code with its own memo (forward, or the constants method). */
  const body = (ctx: ExprContext, constant: (x: Expr) => string | null) => {
    const lines: string[] = [];
    const memo = new Map<string, string>();
    const calls = new Map<string, readonly string[]>();
    const put = (hint: string, code: string): string => {
      const v = names(hint);
      lines.push(`${v} = ${code}`);
      return v;
    };
    const emit = (x: Expr): string => {
      const k = canon(x);
      const hit = memo.get(k);
      if (hit !== undefined) return hit;
      const v = constant(x) ?? ((): string => {
        switch (x.e) {
          case 'data': {
            const a = args.get(x.field);
            if (a !== undefined) return a;
            errors.push(specError(where, `reads '${x.field}', which is not one of its inputs (${p.inputs.map((i) => i.name).join(', ')})`));
            return 'None';
          }
          case 'random':
            errors.push(specError(where, `reads random source '${x.name}', but a pipeline has no per-iteration random sources`, 'draw seeded values with drawNormal'));
            return 'None';
          case 'call': {
            const net = findNetwork(spec.networks, x.net);
            const outIndex = net?.outputs.findIndex((o) => o.name === x.output) ?? -1;
            if (net === undefined || outIndex < 0) {
              errors.push(specError(where, net === undefined ? `calls network '${x.net}', which the spec does not have` : `uses output '${x.output}' of ${x.net}, which has ${net.outputs.map((o) => o.name).join(', ')}`));
              return 'None';
            }
            const ck = canon({ ...x, output: '' });
            let outs = calls.get(ck);
            if (outs === undefined) {
              const feed = inputsOf(net).map((i) => {
                const a = x.inputs[i.name];
                if (a !== undefined) return emit(a);
                if (i.optional === true) return 'None'; // an optional argument left out: zeros
                errors.push(specError(where, `calls ${x.net} without its input '${i.name}'`));
                return 'None';
              });
              const vs = net.outputs.length === 1 ? [names(net.name)] : net.outputs.map((o) => names(`${net.name}_${o.name}`));
              lines.push(`${vs.join(', ')} = ${attr(net.name)}(${feed.join(', ')})`);
              calls.set(ck, (outs = vs));
            }
            return outs[outIndex]!;
          }
          default: {
            const [hint, code] = valueCode(x, emit, ctx);
            return put(hint, code);
          }
        }
      })();
      memo.set(k, v);
      return v;
    };
    return { lines, emit };
  };

  // The constants: maximal weight-only sub-expressions that compute something (a call inside).
  const device = 'self._device()';
  const held = body({ fill: () => 'None', placed: (code) => `${code}.to(${device})` }, () => null);
  const constants: string[] = [];
  const constantIndex = new Map<string, number>();
  const worthKeeping = (x: Expr): boolean => isConstant(x) && callsIn([x]).length > 0;
  const forward = body(
    {
      fill: (width, hot) => `ops.fill_on(${first}.size(0), ${width}, ${hot === null ? 'None' : hot}, ${first}.device)`,
      placed: (code) => `${code}.to(${first}.device)`,
    },
    (x) => {
      if (!worthKeeping(x)) return null;
      const k = canon(x);
      let i = constantIndex.get(k);
      if (i === undefined) {
        constantIndex.set(k, (i = constants.length));
        constants.push(held.emit(x));
      }
      return `kept[${i}]`;
    },
  );
  const results = p.outputs.map((o) => forward.emit(o.value));
  if (errors.length > 0) return E.left(errors);
  const indexInputs = p.inputs.filter((i) => i.dtype === 'index').map((i) => pyStr(i.name));
  return E.right([
    '',
    '',
    `class ${cls}(nn.Module):`,
    `    """Pipeline ${p.name}: ${p.doc}.`,
    '',
    "    state_dict keys carry each network's `NAME.` prefix, as starspec's multi-network weights files do."
      + (constants.length > 0 ? '\n    What depends only on the weights is computed once per set of weights (_constants)."""' : '"""'),
    '',
    `    inputs = ${pyTuple(p.inputs.map((i) => pyStr(i.name)))}`,
    `    index_inputs = ${pyTuple(indexInputs)}`,
    `    outputs = ${pyTuple(p.outputs.map((o) => pyStr(o.name)))}`,
    '',
    `    def __init__(self, ${members.map((m) => `${identifier(m)}=None`).join(', ')}):`,
    '        super().__init__()',
    ...members.map((m) => `        self.add_module(${pyStr(m)}, ${identifier(m)} if ${identifier(m)} is not None else ${classes.get(m)}())`),
    ...(constants.length === 0
      ? []
      : [
          '        self._kept = (None, ())',
          '',
          '    def _device(self):',
          '        return next(iter([*self.parameters(), *self.buffers()]), torch.empty(0)).device',
          '',
          '    def _constants(self):',
          '        """The weight-only values, recomputed when a parameter or buffer changes (load_state_dict, training)."""',
          '        key = tuple((t.data_ptr(), t._version) for t in [*self.parameters(), *self.buffers()])',
          '        if self._kept[0] != key:',
          '            with torch.no_grad():',
          ...indent(held.lines, 4),
          `            self._kept = (key, ${pyTuple(constants)})`,
          '        return self._kept[1]',
        ]),
    '',
    `    def forward(self, ${p.inputs.map((i) => args.get(i.name)!).join(', ')}):`,
    ...(constants.length > 0 ? ['        kept = self._constants()'] : []),
    ...indent(forward.lines, 2),
    `        return ${results.length === 1 ? results[0]! : results.join(', ')}`,
  ]);
};

/** The whole models.py. */
export const emitModels = (spec: Spec): Result<string> => {
  const errors: SpecError[] = [];
  const clsNames = namer([...PRELUDE_NAMES, 'ops', 'NETWORKS', 'PIPELINES', 'PARAMETERS', 'BUFFERS']);
  const classes = new Map(spec.networks.map((n) => [n.name, clsNames(className(n.name))] as const));
  const pipelineClasses = new Map(spec.pipelines.map((p) => [p.name, clsNames(className(p.name))] as const));
  const code: string[] = [];
  for (const net of spec.networks) {
    const r = networkClass(net, classes.get(net.name)!, spec.name);
    if (E.isLeft(r)) errors.push(...r.left);
    else code.push('', '', ...r.right.lines);
  }
  for (const p of spec.pipelines) {
    const r = pipelineClass(spec, p, pipelineClasses.get(p.name)!, classes);
    if (E.isLeft(r)) errors.push(...r.left);
    else code.push(...r.right);
  }
  if (errors.length > 0) return E.left(errors);
  const table = (name: string, rows: (n: Network) => readonly string[]): string[] => [
    `${name} = {`,
    ...spec.networks.map((n) => {
      const r = rows(n);
      return r.length === 0 ? `    ${pyStr(n.name)}: [],` : `    ${pyStr(n.name)}: [\n${r.map((x) => `        ${x},`).join('\n')}\n    ],`;
    }),
    '}',
  ];
  const text = [
    `"""The networks of ${spec.name} as PyTorch modules, written by \`starspec export-torch\` from the spec.`,
    '',
    "Every module sits at its spec path, so state_dict() keys are the spec's parameter and buffer names",
    '(the official PyTorch names for the built-in specs): load_state_dict(strict=True) takes the official',
    "checkpoints and starspec's weights files. Instance norms always use instance statistics; batch norms",
    'always run as in eval mode (their running statistics are loaded, never updated).',
    '"""',
    (code.some((l) => l.includes('ops.'))
      ? PRELUDE.replace('import torch.nn.functional as F\n', "import torch.nn.functional as F\n\nimport ops  # the export's ops.py: the expression helpers the pipelines use\n")
      : PRELUDE
    ).trimEnd(),
    ...code,
    '',
    '',
    '# Every network of the spec by name.',
    `NETWORKS = {${spec.networks.map((n) => `${pyStr(n.name)}: ${classes.get(n.name)}`).join(', ')}}`,
    '',
    "# Every declared pipeline by name (the spec's inference paths: run --net, export --net).",
    `PIPELINES = {${spec.pipelines.map((p) => `${pyStr(p.name)}: ${pipelineClasses.get(p.name)}`).join(', ')}}`,
    '',
    "# Each network's parameters in spec order (PyTorch's parameters(): trained, optimised, averaged by",
    "# EMA): (state_dict key, shape, role, fan-in). Roles and fan-ins decide fresh values (train.py's",
    "# init, as starspec's dsl/init.ts).",
    ...table('PARAMETERS', (n) => parameters(n).map((p) => `(${pyStr(p.key)}, ${pyTuple(p.shape.map(String))}, ${pyStr(p.role)}, ${p.fanIn})`)),
    '',
    "# Each network's used buffers (BatchNorm running statistics, HighPass's filter): loaded, saved and",
    '# read by forward, never trained: (state_dict key, shape, role, value); fresh ones are mean zeros,',
    '# variance ones, a constant its value (row-major).',
    ...table('BUFFERS', (n) =>
      stateDict(n)
        .filter((p) => !p.trainable)
        .map((p) => `(${pyStr(p.key)}, ${pyTuple(p.shape.map(String))}, ${pyStr(p.role)}, ${p.value === null ? 'None' : pyTuple(p.value.map(pyNum))})`),
    ),
    '',
  ].join('\n');
  return E.right(text);
};
