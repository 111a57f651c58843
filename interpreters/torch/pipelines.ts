/**
 * The StarGAN v2 deployment pipelines models.py writes as modules (the two ways the official code
 * samples). The same plans live in interpreters/onnx/pipelines.ts; interpreters do not import each
 * other, and the plans are moving into the IR, so this is a deliberate, temporary second copy of
 * two small records: when the IR carries pipelines, read them from the spec instead.
 */
export interface Feed {
  readonly from: 'graph' | 'stage';
  readonly name: string;
  readonly stage: number;
  readonly output: string;
}

export interface PipelinePlan {
  readonly name: string;
  readonly doc: string;
  readonly inputs: readonly string[];
  readonly stages: ReadonlyArray<{ readonly net: string; readonly feed: Readonly<Record<string, Feed>> }>;
  readonly outputs: ReadonlyArray<{ readonly name: string; readonly stage: number; readonly output: string }>;
}

const graph = (name: string): Feed => ({ from: 'graph', name, stage: -1, output: '' });
const stage = (s: number, output: string): Feed => ({ from: 'stage', name: '', stage: s, output });

export const PIPELINES: readonly PipelinePlan[] = [
  {
    name: 'latent_synthesis',
    doc: 'latent-guided synthesis: s = mapping_network(z, y); out = generator(x, s)',
    inputs: ['x', 'z', 'y'],
    stages: [
      { net: 'mapping_network', feed: { z: graph('z'), y: graph('y') } },
      { net: 'generator', feed: { x: graph('x'), s: stage(0, 'out') } },
    ],
    outputs: [{ name: 'out', stage: 1, output: 'out' }],
  },
  {
    name: 'reference_synthesis',
    doc: 'reference-guided synthesis: s = style_encoder(x_ref, y); out = generator(x, s)',
    inputs: ['x', 'x_ref', 'y'],
    stages: [
      { net: 'style_encoder', feed: { x: graph('x_ref'), y: graph('y') } },
      { net: 'generator', feed: { x: graph('x'), s: stage(0, 'out') } },
    ],
    outputs: [{ name: 'out', stage: 1, output: 'out' }],
  },
];
