/**
 * Diagram interpreter: a network drawn as an SVG picture.
 *
 *   const svg = await diagram(net, { collapse: true });   // Result<string>
 *
 * `toDot` (pure, DOT text) and `renderSvg` (Graphviz wasm) are exported for callers who want the
 * DOT source or their own Graphviz.
 */
import * as E from 'fp-ts/lib/Either.js';
import type { Result } from '../../dsl/errors.ts';
import type { Network } from '../../dsl/ir.ts';
import { toDot, withFontFallbacks, type DotOptions } from './dot.ts';
import { renderSvg } from './render.ts';

export { toDot, withFontFallbacks, viewOf, formatCount, PALETTE, type DotOptions, type Family, type OpView } from './dot.ts';
export { renderSvg } from './render.ts';

export type DiagramOptions = DotOptions;

/** The network as an SVG document; shape errors (with node paths) or Graphviz errors as Left. */
export const diagram = async (net: Network, opts: DiagramOptions = {}): Promise<Result<string>> => {
  const dot = toDot(net, opts);
  if (E.isLeft(dot)) return dot;
  return E.map(withFontFallbacks)(await renderSvg(dot.right));
};
