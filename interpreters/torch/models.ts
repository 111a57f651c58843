/**
 * models.py: every network of a spec as a PyTorch `nn.Module`, written as plain Python by a total
 * fold over the IR's node union.
 *
 * - `__init__` places one module per parametric node at the node's path (containers for the path's
 *   prefixes), so `state_dict()` keys are exactly the spec's parameter keys (dsl/params.ts: the
 *   official names for the built-in specs). Nodes that share a path share the module (as the tfjs
 *   interpreter shares parameters by key).
 * - `forward` takes the inputs in the network's order and computes only the nodes some output
 *   depends on, one line per node (an unused branch keeps its parameters, as in the official code).
 * - Buffers official checkpoints carry and computation ignores (v1 InstanceNorm running statistics,
 *   `num_batches_tracked`, v2 `hpf.filter`) are registered, so `load_state_dict(strict=True)` takes
 *   an official checkpoint; a file without them (starspec's weights files) loads strictly too: the
 *   absent ones are filled in, never used.
 */
import * as E from 'fp-ts/lib/Either.js';
import { absurd, specError, type Result, type SpecError } from '../../dsl/errors.ts';
import type { Network, Node, Spec } from '../../dsl/ir.ts';
import { buffersOfNode, paramsOfNode, parameterCount, parameters } from '../../dsl/params.ts';
import { inputsOf, reachable } from '../../dsl/walk.ts';
import { PIPELINES } from './pipelines.ts';
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

/** The constructor expression of a parametric node's module, or null for a parameter-free node. */
const moduleOf = (n: Node): string | null => {
  switch (n.op) {
    case 'conv2d':
      return `nn.Conv2d(${n.inChannels}, ${n.outChannels}, ${n.kernel}, stride=${n.stride}, padding=${n.padding}, bias=${n.bias ? 'True' : 'False'})`;
    case 'convTranspose2d':
      return `nn.ConvTranspose2d(${n.inChannels}, ${n.outChannels}, ${n.kernel}, stride=${n.stride}, padding=${n.padding}, bias=${n.bias ? 'True' : 'False'})`;
    case 'instanceNorm':
      return n.affine || n.runningStats
        ? `InstanceNorm(${n.channels}, affine=${n.affine ? 'True' : 'False'}, eps=${pyNum(n.eps)}, running_stats=${n.runningStats ? 'True' : 'False'})`
        : null;
    case 'adain':
      return `AdaIN(${n.styleDim}, ${n.channels}, eps=${pyNum(n.eps)})`;
    case 'linear':
      return `nn.Linear(${n.inFeatures}, ${n.outFeatures}, bias=${n.bias ? 'True' : 'False'})`;
    case 'input':
    case 'relu':
    case 'leakyRelu':
    case 'tanh':
    case 'avgPool':
    case 'upsampleNearest':
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

/** One network as a class. */
const networkClass = (net: Network, cls: string, specName: string): Result<NetCode> => {
  const errors: SpecError[] = [];
  const where = (n: Node): string => `${net.name}/${n.path}`;
  const live = reachable(net);
  const inputs = inputsOf(net);
  const argNames = namer(['self', 'L', 'torch', 'nn', 'F', 'math']);
  const args = new Map(inputs.map((i) => [i, argNames(i.name)] as const));

  // __init__: one module per parametric path.
  const init: string[] = [];
  const modules = new Map<string, string>();
  for (const n of net.nodes) {
    const m = moduleOf(n);
    if (m === null) continue;
    if (n.path.split('.').some((p) => p === ''))
      errors.push(specError(where(n), `path '${n.path}' has an empty component`, 'a PyTorch module path is names joined by dots'));
    const seen = modules.get(n.path);
    if (seen === undefined) {
      modules.set(n.path, m);
      init.push(`L[${pyStr(n.path)}] = put(self, ${pyStr(n.path)}, ${m})`);
    } else if (seen !== m)
      errors.push(specError(where(n), `path '${n.path}' names two different layers (${seen} and ${m})`, 'give each layer its own path'));
  }
  const optional = [...new Set([...net.nodes.flatMap(buffersOfNode), ...net.ignoredBuffers])];
  for (const b of net.ignoredBuffers) init.push(`buffer(self, ${pyStr(b)}, torch.zeros(0))  # ignored by computation`);

  // forward: one line per live node.
  const vars: string[] = net.nodes.map(() => '');
  const body: string[] = [];
  const names = namer([...args.values(), 'self', 'L', 'torch', 'nn', 'F', 'math', 'put', 'buffer', 'as_index', 'concat_label', 'select']);
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
        case 'upsampleNearest':
          return `F.interpolate(${v(n.input)}, scale_factor=${n.scale}, mode='nearest')`;
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

  const sig = inputs.map((i) => args.get(i)!);
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
    ...indent(body, 2),
  ];
  return E.right({ cls, lines });
};

/** Deployment pipelines whose networks the spec has (StarGAN v2: latent and reference synthesis). */
const pipelineClasses = (spec: Spec, classes: ReadonlyMap<string, string>): string[] => {
  const out: string[] = [];
  for (const p of PIPELINES) {
    const nets = p.stages.map((s) => spec.networks.find((n) => n.name === s.net));
    if (nets.some((n) => n === undefined)) continue;
    const fits = p.stages.every((s, k) => {
      const ins = inputsOf(nets[k]!).map((i) => i.name);
      return ins.length === Object.keys(s.feed).length && ins.every((i) => s.feed[i] !== undefined);
    });
    if (!fits) continue;
    const members = [...new Set(p.stages.map((s) => s.net))];
    const attr = (net: string): string => (identifier(net) === net ? `self.${net}` : `self._modules[${pyStr(net)}]`);
    const body: string[] = [];
    const stageVars = p.stages.map((s, k) => nets[k]!.outputs.map((o) => identifier(`${o.name}_${k}`)));
    p.stages.forEach((s, k) => {
      const feed = inputsOf(nets[k]!).map((i) => {
        const src = s.feed[i.name]!;
        return src.from === 'graph' ? identifier(src.name) : stageVars[src.stage]![nets[src.stage]!.outputs.findIndex((o) => o.name === src.output)]!;
      });
      body.push(`${stageVars[k]!.join(', ')} = ${attr(s.net)}(${feed.join(', ')})`);
    });
    const results = p.outputs.map((o) => stageVars[o.stage]![nets[o.stage]!.outputs.findIndex((x) => x.name === o.output)]!);
    body.push(`return ${results.join(', ')}`);
    out.push(
      '',
      '',
      `class ${className(p.name)}(nn.Module):`,
      `    """${p.doc}. state_dict keys carry each network's \`NAME.\` prefix, as starspec's multi-network weights files do."""`,
      '',
      `    inputs = ${pyTuple(p.inputs.map(pyStr))}`,
      `    outputs = ${pyTuple(p.outputs.map((o) => pyStr(o.name)))}`,
      '',
      `    def __init__(self, ${members.map((m) => `${identifier(m)}=None`).join(', ')}):`,
      '        super().__init__()',
      ...members.map((m) => `        self.add_module(${pyStr(m)}, ${identifier(m)} if ${identifier(m)} is not None else ${classes.get(m)}())`),
      '',
      `    def forward(self, ${p.inputs.map(identifier).join(', ')}):`,
      ...indent(body, 2),
    );
  }
  return out;
};

/** The whole models.py. */
export const emitModels = (spec: Spec): Result<string> => {
  const errors: SpecError[] = [];
  const clsNames = namer(['Tree', 'InstanceNorm', 'AdaIN', 'Network', ...PIPELINES.map((p) => className(p.name))]);
  const classes = new Map(spec.networks.map((n) => [n.name, clsNames(className(n.name))] as const));
  const code: string[] = [];
  for (const net of spec.networks) {
    const r = networkClass(net, classes.get(net.name)!, spec.name);
    if (E.isLeft(r)) errors.push(...r.left);
    else code.push('', '', ...r.right.lines);
  }
  if (errors.length > 0) return E.left(errors);
  const table = spec.networks.map(
    (n) =>
      `    ${pyStr(n.name)}: [\n${parameters(n)
        .map((p) => `        (${pyStr(p.key)}, ${pyTuple(p.shape.map(String))}, ${pyStr(p.role)}, ${p.fanIn}),`)
        .join('\n')}\n    ],`,
  );
  const text = [
    `"""The networks of ${spec.name} as PyTorch modules, written by \`starspec export-torch\` from the spec.`,
    '',
    "Every module sits at its spec path, so state_dict() keys are the spec's parameter names (the",
    'official PyTorch names for the built-in specs): load_state_dict(strict=True) takes the official',
    "checkpoints and starspec's weights files. Instance norms always use instance statistics.",
    '"""',
    PRELUDE.trimEnd(),
    ...code,
    ...pipelineClasses(spec, classes),
    '',
    '',
    '# Every network of the spec by name.',
    `NETWORKS = {${spec.networks.map((n) => `${pyStr(n.name)}: ${classes.get(n.name)}`).join(', ')}}`,
    '',
    "# Each network's parameters in spec order: (state_dict key, shape, role, fan-in). Roles and fan-ins",
    "# decide fresh values (train.py's init, as starspec's io/init.ts).",
    'PARAMETERS = {',
    ...table,
    '}',
    '',
  ].join('\n');
  return E.right(text);
};

/** Parameter keys per network (for tests and the emitters). */
export const parameterKeys = (net: Network): readonly string[] => net.nodes.flatMap(paramsOfNode).map((p) => p.key);
