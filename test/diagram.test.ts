/**
 * Diagram interpreter: every built-in network renders to SVG (expanded and collapsed), labels
 * carry what they promise, shape errors come back as values naming the node.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as E from 'fp-ts/lib/Either.js';
import type { Result } from '../dsl/errors.ts';
import type { Network, Node } from '../dsl/ir.ts';
import { buildSpec } from '../dsl/settings.ts';
import { reachable } from '../dsl/walk.ts';
import { builtinSpecs } from '../specs/index.ts';
import { diagram, formatCount, renderSvg, toDot } from '../interpreters/diagram/index.ts';

const right = <A>(r: Result<A>): A => {
  if (E.isLeft(r)) assert.fail(`expected Right, got ${JSON.stringify(r.left)}`);
  return r.right;
};

const networksOf = (spec: string, overrides: Record<string, unknown> = {}): readonly Network[] =>
  right(buildSpec(builtinSpecs.get(spec)!, overrides)).networks;

/** Expected block names, derived independently: `X.<int>` path prefixes shared by 2+ nodes. */
const expectedBlocks = (net: Network): string[] => {
  const counts = new Map<string, number>();
  for (const n of net.nodes) {
    if (n.op === 'input') continue;
    const segs = n.path.split('.');
    for (let k = 2; k <= segs.length; k++)
      if (/^\d+$/.test(segs[k - 1]!)) {
        const p = segs.slice(0, k).join('.');
        counts.set(p, (counts.get(p) ?? 0) + 1);
      }
  }
  return [...counts].filter(([, c]) => c >= 2).map(([p]) => p);
};

const isSvg = (s: string): boolean => (s.startsWith('<?xml') || s.startsWith('<svg')) && s.includes('<svg') && s.trimEnd().endsWith('</svg>');
const drawnNodes = (svg: string): number => (svg.match(/class="node"/g) ?? []).length;
const unescapeXml = (s: string): string =>
  s
    .replace(/&#(\d+);/g, (_, d: string) => String.fromCodePoint(Number(d)))
    .replace(/&#x([0-9a-f]+);/gi, (_, h: string) => String.fromCodePoint(parseInt(h, 16)))
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&amp;/g, '&');
/** Text inside <text> elements (what is drawn), not tooltips. */
const texts = (svg: string): string[] =>
  [...svg.matchAll(/<text[^>]*>([^<]*)<\/text>/g)].map((m) => unescapeXml(m[1]!).replace(/\u00a0/g, ' ').trim());

const cases: Array<{ spec: string; net: Network; label: string }> = [
  ...['stargan-v1', 'stargan-v2'].flatMap((spec) => networksOf(spec).map((net) => ({ spec, net, label: net.name }))),
  // Other shapes of the same specs: joint-dataset labels; AFHQ-style residual decoder at 64 px.
  ...networksOf('stargan-v1', { dataset: 'Both', gRepeatNum: 2 })
    .filter((n) => n.name === 'generator')
    .map((net) => ({ spec: 'stargan-v1', net, label: `${net.name} (dataset=Both)` })),
  ...networksOf('stargan-v2', { wHpf: 0, imageSize: 64, numDomains: 3 })
    .filter((n) => n.name === 'generator' || n.name === 'mapping_network')
    .map((net) => ({ spec: 'stargan-v2', net, label: `${net.name} (wHpf=0, 64 px, 3 domains)` })),
];

describe('diagram: built-in networks', () => {
  for (const { spec, net, label } of cases) {
    it(`${spec} ${label}: expanded and collapsed SVGs`, async () => {
      const full = right(await diagram(net, { title: `${spec} · ${net.name}` }));
      const small = right(await diagram(net, { collapse: true }));
      assert.ok(isSvg(full), 'expanded output is an SVG document');
      assert.ok(isSvg(small), 'collapsed output is an SVG document');

      const fullText = texts(full);
      const smallText = texts(small);
      assert.ok(fullText.includes(`${spec} · ${net.name}`), 'title');
      // Every node of the expanded picture shows its path; every block is labelled in both.
      for (const n of net.nodes) if (n.op !== 'input') assert.ok(fullText.includes(n.path), `path ${n.path}`);
      for (const n of net.nodes) if (n.op === 'input') assert.ok(fullText.includes(`input ${n.name}`), `input ${n.name}`);
      const blocks = expectedBlocks(net);
      for (const b of blocks) {
        assert.ok(fullText.includes(b), `expanded block label ${b}`);
        assert.ok(smallText.includes(b), `collapsed block box ${b}`);
      }
      for (const o of net.outputs) {
        assert.ok(fullText.includes(`output ${o.name}`), `output ${o.name}`);
        assert.ok(smallText.includes(`output ${o.name}`), `collapsed output ${o.name}`);
      }
      // Collapsing draws fewer boxes and a smaller document whenever there is a block to fold.
      if (blocks.length > 0) {
        assert.ok(drawnNodes(small) < drawnNodes(full), `${drawnNodes(small)} < ${drawnNodes(full)} drawn nodes`);
        assert.ok(small.length < full.length, `collapsed ${small.length} < expanded ${full.length} chars`);
      } else assert.ok(small.length <= full.length);
    });
  }

  it('v2 generator: blocks with parameter totals, unused modules dashed with a note, style tags', () => {
    const gen = networksOf('stargan-v2').find((n) => n.name === 'generator')!;
    const dot = right(toDot(gen));
    assert.match(dot, /subgraph cluster_b\d+/);
    for (const b of ['encode.0', 'encode.6', 'decode.0', 'decode.6', 'to_rgb']) assert.ok(dot.includes(`<b>${b}</b>`), b);
    // Every encode/decode block and the sections are clusters labelled with their parameters.
    assert.ok((dot.match(/subgraph cluster_b/g) ?? []).length >= 15);
    assert.match(dot, /<b>encode<\/b><\/font><font[^>]*> {2}7 blocks · [\d.]+M params/);
    const dead = reachable(gen).filter((l) => !l).length;
    assert.ok(dead > 0, 'wHpf > 0 leaves the decode conv1x1 shortcuts unused');
    assert.equal((dot.match(/unused: kept for its parameters/g) ?? []).length, dead);
    assert.equal((dot.match(/style="rounded,filled,dashed"/g) ?? []).length, dead);
    // 14 AdaIN layers read the style: tags beside them instead of 14 long edges.
    assert.equal((dot.match(/^\s*t1_n\d+ \[/gm) ?? []).length, 14);
    const collapsed = right(toDot(gen, { collapse: true }));
    assert.match(collapsed, /unused \(params only\): shortcut_up, conv1x1/);
    assert.match(collapsed, /\(N, 512, 8, 8\) → \(N, 512, 16, 16\)/, 'a block shows its in → out shapes');
  });

  it('labels: op with hyperparameters, path, shape and parameter count', () => {
    const gen = networksOf('stargan-v1').find((n) => n.name === 'generator')!;
    const dot = right(toDot(gen));
    assert.ok(dot.includes('conv 4x4 s2 p1 · 64→128'));
    assert.ok(dot.includes('main.3'));
    assert.ok(dot.includes('(N, 128, 64, 64)'));
    assert.ok(dot.includes(`${formatCount(128 * 64 * 4 * 4)} params`));
    assert.equal(formatCount(999), '999');
    assert.equal(formatCount(1728), '1.73k');
    assert.equal(formatCount(43467395), '43.5M');
  });

  it('left-to-right layout renders too', async () => {
    const mapping = networksOf('stargan-v2').find((n) => n.name === 'mapping_network')!;
    const dot = right(toDot(mapping, { direction: 'LR', collapse: true }));
    assert.match(dot, /rankdir="LR"/);
    assert.ok(isSvg(right(await renderSvg(dot))));
  });
});

describe('diagram: errors are values', () => {
  it('a shape error returns Left naming the node path', async () => {
    const gen = networksOf('stargan-v2').find((n) => n.name === 'generator')!;
    const broken: Network = {
      ...gen,
      nodes: gen.nodes.map((n): Node => (n.path === 'decode.3.conv1' && n.op === 'conv2d' ? { ...n, inChannels: n.inChannels + 1 } : n)),
    };
    const r = await diagram(broken);
    assert.ok(E.isLeft(r));
    assert.ok(r.left.some((e) => e.path.includes('decode.3.conv1')), JSON.stringify(r.left));
    assert.ok(E.isLeft(toDot(broken, { collapse: true })));
  });

  it('settings that break shapes: the v1 discriminator downsamples a 32 px image too often', async () => {
    const d = networksOf('stargan-v1', { imageSize: 32 }).find((n) => n.name === 'discriminator')!;
    const r = await diagram(d);
    assert.ok(E.isLeft(r));
    assert.ok(r.left.some((e) => e.path === 'discriminator/main.10'), JSON.stringify(r.left));
  });

  it('Graphviz errors come back as Left', async () => {
    const r = await renderSvg('digraph { a -> ');
    assert.ok(E.isLeft(r));
    assert.equal(r.left[0]!.path, 'graphviz');
  });

  it('odd names are escaped; a standalone unused node is drawn and noted', async () => {
    const net: Network = {
      name: 'we"ird <net> & co',
      nodes: [
        { op: 'input', path: 'x&<', name: 'x&<', dtype: 'float32', shape: [4], optional: false },
        { op: 'linear', path: 'fc."a"<b>', input: 0, inFeatures: 4, outFeatures: 2, bias: true },
        { op: 'linear', path: 'spare\\fc', input: 0, inFeatures: 4, outFeatures: 3, bias: false },
      ],
      outputs: [{ name: 'y<&>', ref: 1 }],
      ignoredBuffers: [],
      init: 'he',
    };
    const svg = right(await diagram(net));
    assert.ok(isSvg(svg));
    const drawn = texts(svg);
    assert.ok(drawn.includes('fc."a"<b>'), 'escaped path survives the round trip');
    assert.ok(drawn.includes('spare\\fc'));
    assert.ok(drawn.includes('unused: kept for its parameters'));
    assert.ok(drawn.includes('output y<&>'));
    assert.ok(drawn.includes('we"ird <net> & co'));
  });
});
