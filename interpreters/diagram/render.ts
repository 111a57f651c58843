/**
 * Diagram interpreter, part 2: DOT to SVG with Graphviz compiled to WebAssembly (works offline).
 * Graphviz errors (a DOT syntax error, a layout failure) come back as values, never as throws.
 */
import * as E from 'fp-ts/lib/Either.js';
import { Graphviz } from '@hpcc-js/wasm-graphviz';
import { specError, type Result } from '../../dsl/errors.ts';

let loading: Promise<Graphviz> | null = null;

/** The wasm module is loaded once per process and shared. */
const graphviz = (): Promise<Graphviz> => {
  if (loading === null) {
    loading = Graphviz.load();
    // A failed load is not cached: the next call retries.
    loading.catch(() => {
      loading = null;
    });
  }
  return loading;
};

const message = (e: unknown): string => (e instanceof Error ? e.message : String(e));

/** Lay out a DOT graph with `dot` and return the SVG document (starts with `<?xml`). */
export const renderSvg = async (dot: string): Promise<Result<string>> => {
  let gv: Graphviz;
  try {
    gv = await graphviz();
  } catch (e) {
    return E.left([specError('graphviz', `could not load Graphviz (wasm): ${message(e)}`)]);
  }
  try {
    const svg = gv.layout(dot, 'svg', 'dot');
    if (!svg.includes('<svg'))
      return E.left([specError('graphviz', 'Graphviz produced no SVG', 'the DOT source is probably malformed')]);
    return E.right(svg);
  } catch (e) {
    return E.left([specError('graphviz', `layout failed: ${message(e)}`, 'the DOT source is probably malformed')]);
  }
};
